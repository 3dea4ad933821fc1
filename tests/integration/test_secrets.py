"""No secret in what stockcast prints or logs: API keys, database passwords and S3 credentials
given to it must not appear in its output, its access log or its error messages."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient
from tests.e2e.test_daily_cycle import run_cli
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


def test_database_passwords_and_s3_secrets_stay_out_of_command_output_and_errors(tmp_path):
    port = free_port()  # nothing listens here: the command fails, and says why without them
    env = {
        "STOCKCAST_DATA_DIR": str(tmp_path / "data"),
        "STOCKCAST_DATABASE_URL": f"postgresql+psycopg://stockcast:{PASSWORD}@127.0.0.1:{port}/stockcast",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_ACCESS_KEY_ID": "stockcast-test",
    }
    for command in (["db", "current"], ["db", "upgrade", "--no-mlflow"], ["models", "list"]):
        result = run_cli(*command, env=env)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "error" in output.lower()
        assert PASSWORD not in output and AWS_SECRET not in output, command


def test_db_commands_show_the_database_with_its_password_hidden(postgres_server, tmp_path):
    name = postgres_server.create_database()
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{postgres_server.port}/{name}"
    result = run_cli("db", "upgrade", "--no-mlflow", env={"STOCKCAST_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "postgres:***@127.0.0.1" in result.stdout and PASSWORD not in result.stdout + result.stderr
    postgres_server.drop_database(name)
