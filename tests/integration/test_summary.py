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

import pandas as pd
import pytest
from tests.integration.test_dashboard import filled  # noqa: F401 - the fixture
from tests.services import free_port
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
    """Facts every check passes on; ``changes`` override them (the dataclass's own fields)."""
    facts = Facts(
        ticker="AAA",
        today="2024-03-05",
        forecast_version="3",
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
        test_vs_naive="DM-HLN",
        p_value_vs_naive=0.012,
        alpha=0.05,
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
        "it beat naive, p = 0.012 (DM-HLN)",
        "last 20 scored",
        "ok since 2024-02-01",
    ):
        assert part in text, (part, text)
    assert text.endswith("Trust: usable today; every check passed.")


@pytest.mark.parametrize(
    ("changes", "trust", "concern"),
    [
        ({"status": "drift"}, "low", "monitoring reports drift"),
        ({"live_rmse": 1.2}, "low", "did worse than the naive forecast"),
        ({"target_closed": True}, "low", "forecasts 2024-03-05, a session already closed"),
        ({"skill_vs_naive": -0.18}, "low", "backtest was worse than the naive forecast"),
        ({"p_value_vs_naive": None}, "caution", "no significance test says it beats the naive forecast"),
        ({"live_coverage": 0.7}, "caution", "held the actual close 70% of the time, not 90%"),
        ({"status": "watch"}, "caution", "on watch"),
        ({"forecast_version": "2"}, "caution", "made by v2, not the champion v3"),
        ({"champion_version": None}, "caution", "no champion is registered"),
        (
            {"status": "unknown", "live_scored": 3, "live_rmse": None, "live_naive_rmse": None},
            "caution",
            "not yet checked live (3 of 20 forecasts scored)",
        ),
        ({"status": None, "live_scored": 0, "live_rmse": None}, "caution", "not yet checked live"),
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
    assert "no candidate beat naive significantly at alpha = 0.05: naive serves." in text
    empty = Facts(ticker="ZZZ", today="2024-03-05")
    assert verdict(empty)[0] == "none"
    assert "Run `stockcast run`" in verdict(empty)[2]


def test_the_summary_is_written_from_the_stored_forecast_the_champion_and_monitoring(filled):  # noqa: F811
    log = views.forecast_log(filled, "AAA")
    latest = views.latest_forecast(log)
    # Before the target session closes: the forecast is still ahead.
    filled.set_clock(datetime.combine(latest["target_date"], datetime.min.time(), UTC) + timedelta(hours=12))
    [summary] = summarize(filled, ["AAA"])
    facts = summary.facts
    champion = filled.registry.champion("AAA")
    assert (facts.forecast, facts.as_of, facts.champion_version, facts.forecast_version) == (
        latest["predicted_close"],
        str(latest["as_of"]),
        champion.version,
        champion.version,
    )
    assert not facts.target_closed
    # The live figures are monitoring's, so the two never disagree.
    monitored = filled.store.load_monitoring("AAA").iloc[-1]
    assert facts.status == monitored["status"] and facts.live_scored == monitored["evaluated"]
    if pd.notna(monitored["rolling_rmse"]):
        assert facts.live_rmse == pytest.approx(monitored["rolling_rmse"])
    assert f"{latest['predicted_close']:,.2f}" in summary.text and summary.written_by == "template"
    # The gate's p-value travels from the registry into the sentence about the champion.
    p_value = float(champion.tags["p_value_vs_naive"])
    assert facts.p_value_vs_naive == pytest.approx(p_value) and p_value < 0.05
    shown = f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"
    assert f"it beat naive, p = {shown} (DM-HLN)" in summary.text

    # After it closed with no newer prices, the forecast is of a day gone: low trust, and why.
    filled.set_clock(datetime.combine(latest["target_date"], datetime.min.time(), UTC) + timedelta(days=1))
    [later] = summarize(filled, ["AAA"])
    assert later.trust == "low" and "a session already closed" in later.text


def test_the_quoted_forecast_is_the_daily_runs_not_one_served_beside_it(filled):  # noqa: F811
    batch = views.latest_forecast(views.forecast_log(filled, "AAA"))
    filled.store.log_forecasts(
        [
            {
                **batch,
                "request_id": "served-by-an-older-version",
                "origin": "api",
                "model_version": "0",
                "predicted_close": batch["predicted_close"] * 2,
                "created_at": datetime.now(UTC),
            }
        ]
    )
    [summary] = summarize(filled, ["AAA"])
    assert summary.facts.forecast == batch["predicted_close"]
    assert summary.facts.forecast_version == batch["model_version"]


def test_the_command_prints_the_text_and_its_facts(filled):  # noqa: F811
    result = CliRunner().invoke(app, ["summary", "AAA", "--json"])
    assert result.exit_code == 0, result.output
    [printed] = json.loads(result.output)
    assert printed["ticker"] == "AAA" and printed["facts"]["champion_version"] == "1"
    assert printed["text"].startswith("AAA: the close on ")
    plain = CliRunner().invoke(app, ["summary"])
    assert plain.exit_code == 0 and plain.output.startswith("AAA: the close on ")


class ChatServer:
    """An OpenAI-compatible chat endpoint on loopback that records what it is sent. ``answer``
    None sends a null content; ``location`` answers with a redirect there instead."""

    def __init__(
        self,
        status: int = 200,
        answer: str | None = "In short: about 101 tomorrow; trust it.",
        location: str | None = None,
    ):
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length).decode(),
                    }
                )

            def do_GET(self) -> None:
                self._record()
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                self._record()
                if location is not None:
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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


def with_llm(context, url: str, key: str | None = KEY) -> None:
    keyed = {"summary_llm_api_key": key} if key else {}
    context.settings = load_settings(
        tickers="AAA", summary_llm_url=url, summary_llm_model="small-model", **keyed, **OTHER_SECRETS
    )


def test_a_configured_model_rewrites_the_facts_but_not_the_verdict_and_is_sent_no_secret(filled, chat):  # noqa: F811
    server = chat()
    template = summarize(filled, ["AAA"])[0]
    with_llm(filled, server.url)
    [summary] = summarize(filled, ["AAA"])
    verdict = template.text[template.text.index("Trust: ") :]
    # The model's "trust it" does not replace the checks' verdict: that sentence is the template's.
    assert summary.text == f"In short: about 101 tomorrow; trust it. {verdict}"
    assert (summary.written_by, summary.trust) == ("llm", template.trust)
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    sent = json.loads(request["body"])
    assert sent["model"] == "small-model"
    assert (
        json.loads(sent["messages"][1]["content"])["summary"] == template.text.removesuffix(verdict).rstrip()
    )
    for secret in (KEY, *OTHER_SECRETS.values()):
        assert secret not in request["body"]
    assert summarize(filled, ["AAA"], use_llm=False)[0].written_by == "template"
    with_llm(filled, server.url, key=None)  # a local server wants no key: none is sent
    assert summarize(filled, ["AAA"])[0].written_by == "llm"
    assert "Authorization" not in server.requests[-1]["headers"]


@pytest.mark.parametrize(
    "options",
    [{"status": 500}, {"answer": None}, {"answer": "  "}, {"location": "/elsewhere"}],
    ids=["server error", "null content", "blank content", "redirect"],
)
def test_a_failing_model_leaves_the_template_text(filled, chat, caplog, options):  # noqa: F811
    server = chat(**options)
    template = summarize(filled, ["AAA"])[0].text
    with_llm(filled, server.url)
    with caplog.at_level(logging.WARNING, logger="stockcast.summary"):
        [summary] = summarize(filled, ["AAA"])
    assert (summary.text, summary.written_by) == (template, "template")
    assert "the template's text is kept" in caplog.text and KEY not in caplog.text
    assert [request["path"] for request in server.requests] == [
        "/v1/chat/completions"
    ]  # no redirect followed


def test_an_unreachable_model_is_asked_once_not_once_per_ticker(filled, caplog):  # noqa: F811
    with_llm(filled, f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="stockcast.summary"):
        summaries = summarize(filled, ["AAA", "AAA", "AAA"])
    assert [summary.written_by for summary in summaries] == ["template"] * 3
    assert caplog.text.count("the language model failed") == 1


def test_language_model_settings_are_checked_and_llm_needs_one(filled):  # noqa: F811
    from stockcast.settings import SettingsError

    with pytest.raises(SettingsError, match="https"):
        load_settings(
            summary_llm_url="http://models.example/v1", summary_llm_model="m", summary_llm_api_key=KEY
        )
    with pytest.raises(SettingsError, match="go together"):
        load_settings(summary_llm_url="https://models.example/v1")
    result = CliRunner().invoke(app, ["summary", "AAA", "--llm"])
    assert result.exit_code == 1 and "STOCKCAST_SUMMARY_LLM_URL" in result.output
