"""No secret in what stockcast prints or logs: API keys, database passwords and S3 credentials
given to it must not appear in its output, its access log or its error messages."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient
from tests.e2e.test_daily_cycle import run_cli
from tests.integration.test_production_services import _s3_keys
from tests.services import free_port

from stockcast.settings import load_settings

API_KEY = "correct-horse-battery-staple-42"
WRONG_KEY = "wrong-horse-battery-staple-0042"
PASSWORD = "pg-Secret-Passw0rd"
AWS_SECRET = "aws-Secret-Access-Key-1234567890"


def test_api_keys_never_reach_the_access_log_or_the_answers(tmp_path, caplog, capsys):
    from stockcast.serving.app import create_app

    settings = load_settings(data_dir=tmp_path / "data", tickers="AAA", api_keys=API_KEY)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as client:
        answers = [
            client.post("/train", json={"tickers": ["AAA"]}, headers={"X-API-Key": WRONG_KEY}),
            client.post("/train", json={"tickers": ["ZZZ"]}, headers={"Authorization": f"Bearer {API_KEY}"}),
            client.get("/predict/AAA", headers={"X-API-Key": API_KEY}),
            client.get("/ready"),
        ]
    assert answers[0].status_code == 403 and answers[1].status_code == 404
    seen = caplog.text + capsys.readouterr().err + "".join(answer.text for answer in answers)
    assert "request" in seen  # the access log was captured
    for secret in (API_KEY, WRONG_KEY):
        assert secret not in seen
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())


def test_database_passwords_stay_out_of_command_output_and_errors(tmp_path):
    port = free_port()  # nothing listens here: the command fails, and says why without it
    env = {
        "STOCKCAST_DATA_DIR": str(tmp_path / "data"),
        "STOCKCAST_DATABASE_URL": f"postgresql+psycopg://stockcast:{PASSWORD}@127.0.0.1:{port}/stockcast",
        "STOCKCAST_DATABASE_TIMEOUT_SECONDS": "1",  # refused at once; no need to keep trying
    }
    for command in (["db", "current"], ["db", "upgrade", "--no-mlflow"], ["models", "list"]):
        result = run_cli(*command, env=env)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "error" in output.lower() and str(port) in output, command
        assert PASSWORD not in output, command


def _files_holding(folder, secret: str) -> list[str]:
    return [
        str(path) for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()
    ]


def test_s3_credentials_stay_out_of_output_logs_and_artifacts_while_writing_to_s3(s3_server, tmp_path):
    """Ingestion and the feature table really written to moto's S3 server with these
    credentials (the only ones the commands can find), verbose logging on; neither the output,
    nor a file stockcast keeps, nor an object it wrote holds the secret. With the endpoint down
    the command fails, and its reason names the store, not the credentials."""
    import boto3
    from tests.services import ACCESS_KEY, SECRET_KEY

    bucket = s3_server.create_bucket()
    env = {
        "STOCKCAST_DATA_DIR": str(tmp_path / "data"),
        "STOCKCAST_SOURCE": "sample",
        "STOCKCAST_START_DATE": "2012-01-01",
        "STOCKCAST_TICKERS": "IBM",
        "STOCKCAST_ARTIFACT_ROOT": f"s3://{bucket}/stockcast",
        "STOCKCAST_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": "stockcast-secrets-test",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
    }
    outputs = []
    for command in (["--verbose", "ingest"], ["--verbose", "features"]):
        result = run_cli(*command, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "raw batch kept at s3://" in outputs[0]

    keys = _s3_keys(s3_server, bucket)
    assert [key for key in keys if key.startswith("stockcast/raw/prices/")], keys
    assert [key for key in keys if key.startswith("stockcast/features/")], keys
    client = boto3.client(
        "s3", endpoint_url=s3_server.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    for key in keys:
        assert AWS_SECRET.encode() not in client.get_object(Bucket=bucket, Key=key)["Body"].read(), key
    assert not _files_holding(tmp_path / "data", AWS_SECRET)

    nowhere = f"http://127.0.0.1:{free_port()}"  # refused at once: botocore need not retry
    down = run_cli(
        "--verbose", "ingest", env={**env, "STOCKCAST_S3_ENDPOINT_URL": nowhere, "AWS_MAX_ATTEMPTS": "1"}
    )
    assert down.returncode == 1 and f"artifact store s3://{bucket}/stockcast unavailable" in down.stderr
    outputs.append(down.stdout + down.stderr)
    for output in outputs:
        assert AWS_SECRET not in output


def test_db_commands_show_the_database_with_its_password_hidden(postgres_server, tmp_path):
    name = postgres_server.create_database()
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{postgres_server.port}/{name}"
    result = run_cli("db", "upgrade", "--no-mlflow", env={"STOCKCAST_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "postgres:***@127.0.0.1" in result.stdout and PASSWORD not in result.stdout + result.stderr
    postgres_server.drop_database(name)
