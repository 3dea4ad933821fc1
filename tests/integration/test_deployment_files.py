"""The deployment files, checked without a Docker engine: the compose file against the Compose
specification's schema and against the settings it feeds, the Dockerfile's shape, and the
GitHub workflows against their schema."""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import typer
import yaml

from stockcast.cli import app
from stockcast.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def vendored_schema(name: str) -> dict[str, Any]:
    """A schema as check-jsonschema ships it (no network needed)."""
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(f"{name}.json").read_text()
    return json.loads(text)


def validate(document: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def interpolated(text: str, values: dict[str, str]) -> str:
    """The compose file as Compose would see it with ``values`` in the environment."""

    def value(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        return values.get(name, default if kind == "-" else "x")

    return VARIABLE.sub(value, text)


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict[str, Any]:
    values = {
        "POSTGRES_PASSWORD": "postgres-secret-1",
        "MINIO_ROOT_USER": "stockcast",
        "MINIO_ROOT_PASSWORD": "minio-secret-123",
        "GRAFANA_ADMIN_PASSWORD": "grafana-secret-1",
        "STOCKCAST_API_KEYS": "a-long-enough-api-key-for-tests",
    }
    return yaml.safe_load(interpolated(raw, values))


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_file_follows_the_compose_specification(compose):
    assert validate(compose, vendored_schema("compose-spec")) == []


def test_every_variable_the_compose_file_reads_is_documented_in_env_example(raw):
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    missing = {name for name, _, _ in VARIABLE.findall(raw)} - documented
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_every_stockcast_variable_is_a_setting_and_the_values_load(compose, monkeypatch):
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None:  # AliasChoices: every name the setting answers to
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(f"STOCKCAST_{name.upper()}")
    for service_name, service in compose["services"].items():
        env = environment_of(service)
        unknown = {key for key in env if key.startswith("STOCKCAST_") and key not in names}
        assert not unknown, f"{service_name}: no such setting {sorted(unknown)}"
        if any(key.startswith("STOCKCAST_") for key in env):
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            settings = load_settings()  # the values parse as the service would see them
            assert settings.data_dir == Path("/data")
            for key in env:
                monkeypatch.delenv(key)


def test_services_reach_each_other_where_the_settings_say(compose):
    services = compose["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing service {needed}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    api = environment_of(services["api"])
    command = services["api"]["command"]
    assert command[command.index("--port") + 1] == str(Settings.model_fields["port"].default)
    # The database is the postgres service, in a database it creates.
    created = {"stockcast"} | set(
        re.findall(r"CREATE DATABASE (\w+)", (DEPLOY / "postgres" / "init.sql").read_text())
    )
    assert environment_of(services["postgres"])["POSTGRES_DB"] == "stockcast"
    for url in (
        api["STOCKCAST_DATABASE_URL"],
        next(
            arg.split("=", 1)[1]
            for arg in services["mlflow"]["command"]
            if arg.startswith("--backend-store-uri=")
        ),
        environment_of(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"],
    ):
        parts = urlsplit(url)
        assert parts.hostname == "postgres" and parts.port == 5432 and parts.path.lstrip("/") in created, url
    # MLflow: the address clients use is one the server listens on and accepts as Host.
    tracking = urlsplit(api["MLFLOW_TRACKING_URI"])
    mlflow_args = dict(
        arg.lstrip("-").split("=", 1) for arg in services["mlflow"]["command"] if arg.startswith("--")
    )
    assert tracking.hostname == "mlflow" and str(tracking.port) == mlflow_args["port"]
    assert f"mlflow:{tracking.port}" in mlflow_args["allowed-hosts"].split(",")
    # S3: the endpoint is MinIO's, the bucket the one minio-init creates.
    assert urlsplit(api["STOCKCAST_S3_ENDPOINT_URL"]).hostname == "minio"
    bucket = urlsplit(api["STOCKCAST_ARTIFACT_ROOT"]).hostname
    assert f"local/{bucket}" in services["minio-init"]["entrypoint"][-1]
    assert mlflow_args["artifacts-destination"].startswith(f"s3://{bucket}/")
    # Feast online store, Pushgateway, Prefect: services of this file.
    assert urlsplit(api["STOCKCAST_FEAST_ONLINE_STORE"]).hostname in services
    assert urlsplit(api["STOCKCAST_PUSHGATEWAY_URL"]).hostname in services
    assert urlsplit(api["PREFECT_API_URL"]).hostname in services
    # Prometheus scrapes the API and the Pushgateway where they listen; Grafana reads Prometheus.
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert f"api:{command[command.index('--port') + 1]}" in targets
    assert urlsplit(api["STOCKCAST_PUSHGATEWAY_URL"]).netloc in targets
    # Prometheus sends its alerts to the Alertmanager service, where that listens.
    alertmanagers = {
        target
        for manager in scrape["alerting"]["alertmanagers"]
        for config in manager["static_configs"]
        for target in config["targets"]
    }
    assert alertmanagers == {"alertmanager:9093"}
    assert "alertmanager" in services["prometheus"]["depends_on"]
    dockerfile = (DEPLOY / services["alertmanager"]["build"]["context"] / "Dockerfile").read_text()
    assert (
        "--web.listen-address=:9093" in dockerfile
        and "127.0.0.1:9093:9093" in services["alertmanager"]["ports"]
    )
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert urlsplit(datasource["datasources"][0]["url"]).hostname == "prometheus"


def test_images_are_pinned_and_match_the_versions_the_code_uses(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if image.startswith(("stockcast:", "stockcast-")):  # ours: the app, Alertmanager from Debian
            assert "build" in service, f"{name} runs our image without building it"
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    prefect = compose["services"]["prefect-server"]["image"]
    assert prefect.split(":")[1].startswith(version("prefect") + "-"), prefect


def _cli_commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    found: dict[str, Any] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        found[name] = command
        if hasattr(command, "commands"):
            found |= {f"{name} {sub}": child for sub, child in command.commands.items()}
    return found


def test_every_stockcast_command_the_services_run_exists_with_its_options(compose):
    commands = _cli_commands()
    for name, service in compose["services"].items():
        argv = service.get("command")
        if not argv or argv[0] != "stockcast":
            continue
        words = [word for word in argv[1:] if not word.startswith("-")]
        key = " ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
        assert key in commands, f"{name}: no command `stockcast {key}`"
        options = {option for parameter in commands[key].params for option in getattr(parameter, "opts", [])}
        options |= {
            option
            for parameter in commands[key].params
            for option in getattr(parameter, "secondary_opts", [])
        }
        for word in argv[1:]:
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"{name}: `stockcast {key}` has no option {word}"


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\w+))?", text, re.MULTILINE)
    assert len(stages) >= 2
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK\s", text, re.MULTILINE)
    exposed = set(" ".join(re.findall(r"^EXPOSE\s+(.+)$", text, re.MULTILINE)).split())
    assert {"8000", "8501"} <= exposed
    assert "requirements.lock" in text  # the pinned set, as on every other machine


def workflow_yaml(path: Path) -> Any:
    """A workflow as GitHub reads it: YAML 1.1 would turn the ``on`` key into True."""
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def test_github_workflows_follow_their_schema_and_run_the_projects_commands():
    schema = vendored_schema("github-workflows")
    workflows = {path.stem: workflow_yaml(path) for path in (ROOT / ".github" / "workflows").glob("*.yml")}
    assert {"ci", "retrain"} <= set(workflows)
    for name, workflow in workflows.items():
        assert validate(workflow, schema) == [], name
    steps = [step.get("run", "") for job in workflows["ci"]["jobs"].values() for step in job["steps"]]
    assert "make lint" in steps and "make test" in steps
    retrain = workflows["retrain"]
    assert retrain["on"]["schedule"][0]["cron"]
    runs = "\n".join(step.get("run", "") for step in retrain["jobs"]["retrain"]["steps"])
    commands = _cli_commands()
    for line in runs.splitlines():
        words = shlex.split(line.strip())
        if words and words[0] == ".venv/bin/stockcast":
            names = [word for word in words[1:] if not word.startswith("-")]
            assert " ".join(names[:2]) in commands or names[0] in commands, line


def test_airflow_is_an_alternative_profile_to_prefect(compose):
    """One orchestrator at a time: Prefect's services under `prefect` (the default in
    .env.example), Airflow's under `airflow`, built from its own Dockerfile on top of the
    stockcast image, its DAGs those of deploy/airflow/dags, its metadata in a database that
    init.sql creates."""
    services = compose["services"]
    profiles = {name: tuple(service.get("profiles", ())) for name, service in services.items()}
    assert {name for name, found in profiles.items() if found == ("prefect",)} == {"prefect-server", "worker"}
    airflow = {name for name, found in profiles.items() if found == ("airflow",)}
    assert airflow == {"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"}
    assert re.search(r"^COMPOSE_PROFILES=prefect$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    for name in airflow:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/airflow/Dockerfile"
        env = environment_of(service)
        assert env["STOCKCAST_DATABASE_URL"] == environment_of(services["api"])["STOCKCAST_DATABASE_URL"]
        database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path.lstrip("/")
        assert f"CREATE DATABASE {database};" in (DEPLOY / "postgres" / "init.sql").read_text()
        assert name == "airflow-init" or services[name]["depends_on"] == {
            "airflow-init": {"condition": "service_completed_successfully"}
        }
    dockerfile = (DEPLOY / "airflow" / "Dockerfile").read_text()
    assert "COPY deploy/airflow/dags /opt/airflow/dags" in dockerfile
    assert "-r /tmp/airflow.lock" in dockerfile and "COPY deploy/airflow/requirements.lock" in dockerfile
    lock = (DEPLOY / "airflow" / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow==3\.", lock, re.MULTILINE) and "://" not in lock
