"""`stockcast summary`: the text is written from what the store and the registry hold, its
trust verdict follows the checks, and an optional OpenAI-compatible model (a real HTTP server
on loopback here) only rewrites it, is sent no secret, and is never needed."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.integration.test_dashboard import filled  # noqa: F401 - the fixture
from typer.testing import CliRunner

from stockcast import views
from stockcast.cli import app
from stockcast.settings import load_settings
from stockcast.summary import Facts, judge, summarize, template_text

KEY = "sk-test-summary-key-0123456789"
OTHER_SECRETS = {
    "api_keys": "api-key-never-sent-0123456789",
    "aws_secret_access_key": "aws-secret-never-sent-01234",
}


def good_facts(**changes: Any) -> Facts:
    facts = Facts(
        ticker="AAA",
        today="2024-03-05",
        forecast=101.0,
        lower=99.0,
        upper=103.0,
        level=0.9,
        last_close=100.0,
        as_of="2024-03-04",
        target_date="2024-03-05",
        champion_version="3",
        champion_kind="ridge",
        backtest_rmse=1.0,
        backtest_naive_rmse=1.1,
        skill_vs_naive=0.09,
        live_scored=20,
        live_rmse=1.05,
        live_naive_rmse=1.1,
        live_coverage=0.9,
        status="ok",
        status_since="2024-02-01",
    )
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def verdict(facts: Facts) -> tuple[str, list[str], str]:
    trust, concerns = judge(facts)
    return trust, concerns, template_text(facts, concerns, trust)


def test_a_model_that_checks_out_reads_as_usable_with_its_numbers():
    trust, concerns, text = verdict(good_facts())
    assert (trust, concerns) == ("usable", [])
    for part in (
        "101.00",
        "+1.0% from the close of 100.00 on 2024-03-04",
        "99.00 to 103.00",
        "90%",
        "v3, ridge",
        "9.0% better than the naive forecast",
        "last 20 scored",
        "ok since 2024-02-01",
    ):
        assert part in text, (part, text)
    assert text.endswith("Trust: usable today; nothing in the checks argues against it.")


@pytest.mark.parametrize(
    ("changes", "trust", "concern"),
    [
        ({"status": "drift"}, "low", "monitoring reports drift"),
        ({"live_rmse": 1.2}, "low", "did worse than the naive forecast"),
        ({"as_of": "2024-02-01", "target_date": "2024-02-02"}, "low", "the latest data is from 2024-02-01"),
        ({"live_coverage": 0.7}, "caution", "held the actual close 70% of the time, not 90%"),
        ({"live_rmse": 1.08, "live_naive_rmse": 1.3, "backtest_rmse": 0.8}, "caution", "1.4x the backtest"),
        ({"status": "watch"}, "caution", "on watch"),
    ],
)
def test_each_check_that_fails_is_named_and_lowers_the_trust(changes, trust, concern):
    found, concerns, text = verdict(good_facts(**changes))
    assert found == trust
    assert any(concern in item for item in concerns), concerns
    assert concern in text


def test_a_naive_champion_and_an_empty_store_are_said_plainly():
    _, _, text = verdict(good_facts(champion_kind="naive", skill_vs_naive=0.0))
    assert "is the naive forecast itself" in text
    empty = Facts(ticker="ZZZ", today="2024-03-05")
    assert verdict(empty)[0] == "none"
    assert "Run `stockcast run`" in verdict(empty)[2]


def test_the_summary_is_written_from_the_stored_forecast_and_the_champion(filled):  # noqa: F811
    log = views.forecast_log(filled, "AAA")
    latest = views.latest_forecast(log)
    filled.set_clock(datetime.combine(latest["target_date"], datetime.min.time(), UTC) + timedelta(hours=12))
    [summary] = summarize(filled, ["AAA"])
    facts = summary.facts
    champion = filled.registry.champion("AAA")
    assert (facts.forecast, facts.as_of, facts.champion_version) == (
        latest["predicted_close"],
        str(latest["as_of"]),
        champion.version,
    )
    scored = log.dropna(subset=["actual_close"]).tail(20)
    assert facts.live_scored == len(scored) == 20
    expected_rmse = float((((scored["actual_close"] - scored["predicted_close"]) ** 2).mean()) ** 0.5)
    assert facts.live_rmse == pytest.approx(expected_rmse)
    assert facts.status == filled.store.load_monitoring("AAA").iloc[-1]["status"]
    assert f"{latest['predicted_close']:,.2f}" in summary.text and summary.written_by == "template"
    assert ("did worse than the naive forecast" in " ".join(summary.concerns)) == (
        facts.live_rmse > facts.live_naive_rmse
    )


def test_the_command_prints_the_text_and_its_facts(filled):  # noqa: F811
    result = CliRunner().invoke(app, ["summary", "AAA", "--json"])
    assert result.exit_code == 0, result.output
    [printed] = json.loads(result.output)
    assert printed["ticker"] == "AAA" and printed["facts"]["champion_version"] == "1"
    assert printed["text"].startswith("AAA: the close on ")
    plain = CliRunner().invoke(app, ["summary"])
    assert plain.exit_code == 0 and plain.output.startswith("AAA: the close on ")


class ChatServer:
    """An OpenAI-compatible chat endpoint on loopback that records what it is sent."""

    def __init__(self, status: int = 200, answer: str = "In short: about 101 tomorrow; trust it."):
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
                )
                reply = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": answer}}]}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat():
    servers: list[ChatServer] = []

    def start(**options: Any) -> ChatServer:
        servers.append(ChatServer(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def with_llm(context, url: str) -> None:
    context.settings = load_settings(
        tickers="AAA",
        summary_llm_url=url,
        summary_llm_model="small-model",
        summary_llm_api_key=KEY,
        **OTHER_SECRETS,
    )


def test_a_configured_model_rewrites_the_text_and_is_sent_no_secret(filled, chat):  # noqa: F811
    server = chat()
    template = summarize(filled, ["AAA"])[0].text
    with_llm(filled, server.url)
    [summary] = summarize(filled, ["AAA"])
    assert (summary.text, summary.written_by) == ("In short: about 101 tomorrow; trust it.", "llm")
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    sent = json.loads(request["body"])
    assert (
        sent["model"] == "small-model" and json.loads(sent["messages"][1]["content"])["summary"] == template
    )
    for secret in (KEY, *OTHER_SECRETS.values()):
        assert secret not in request["body"]
    assert summarize(filled, ["AAA"], use_llm=False)[0].written_by == "template"


def test_a_failing_model_leaves_the_template_text(filled, chat, caplog):  # noqa: F811
    server = chat(status=500)
    template = summarize(filled, ["AAA"])[0].text
    with_llm(filled, server.url)
    with caplog.at_level(logging.WARNING, logger="stockcast.summary"):
        [summary] = summarize(filled, ["AAA"])
    assert (summary.text, summary.written_by) == (template, "template")
    assert "the template's text is kept" in caplog.text and KEY not in caplog.text
