"""The feature store's configuration follows the settings; no password lands in a file."""

from __future__ import annotations

import yaml

from stockcast.features.feature_store import ONLINE_PASSWORD_VARIABLE, feast_config, render_config
from stockcast.settings import load_settings


def test_default_is_sqlite_under_the_data_folder_with_duckdb_offline(isolated_environment):
    config = feast_config(load_settings(), secrets_inline=True)
    assert config["online_store"] == {
        "type": "sqlite",
        "path": str(isolated_environment / "data" / "feast" / "online.db"),
    }
    assert config["offline_store"]["type"] == "duckdb"


def test_redis_is_a_settings_change():
    config = feast_config(load_settings(feast_online_store="redis://127.0.0.1:6380/2"), secrets_inline=True)
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6380,db=2"}


def test_postgres_password_stays_out_of_the_generated_file():
    settings = load_settings(feast_online_store="postgresql://feast:s3cr%40t@127.0.0.1:5433/features")
    in_process = feast_config(settings, secrets_inline=True)["online_store"]
    assert in_process["password"] == "s3cr@t"
    assert (in_process["host"], in_process["port"], in_process["database"]) == ("127.0.0.1", 5433, "features")
    written = render_config(settings)
    assert "s3cr" not in written
    assert yaml.safe_load(written)["online_store"]["password"] == f"${{{ONLINE_PASSWORD_VARIABLE}}}"


def test_generated_file_is_valid_feast_configuration(tmp_path):
    from stockcast.features.feature_store import import_feast

    import_feast()
    from feast.repo_config import RepoConfig

    raw = yaml.safe_load(render_config(load_settings(feast_online_store="redis://127.0.0.1:6379")))
    config = RepoConfig(repo_path=tmp_path, **raw)
    assert config.online_store.type == "redis"


def test_importing_feast_leaves_metrics_in_memory():
    import os
    import subprocess
    import sys

    probe = (
        "import os; from stockcast.features.feature_store import import_feast; import_feast(); "
        "import prometheus_client.values as v; "
        "print(v.ValueClass.__name__, os.environ.get('PROMETHEUS_MULTIPROC_DIR'))"
    )
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PROMETHEUS_MULTIPROC")
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=environment
    )
    assert out.stdout.split() == ["MutexValue", "None"]
