"""Plain-language summaries: per ticker, what stockcast forecasts and whether to trust it today.

The text is written from a template over facts read from the store and the registry (the
latest forecast and interval, the champion against the naive forecast on the backtest and
live, monitoring status and what changed). When an OpenAI-compatible endpoint, model and key
are configured, a language model may rewrite the template's text in plainer words; it is sent
only that text and the facts it came from (numbers and dates, never a setting or a secret),
and any failure falls back to the template. Off by default; nothing requires it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from stockcast import views

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.settings import Settings

log = logging.getLogger(__name__)

# Beyond these, a concern is raised: live errors this many times the backtest's, coverage this
# far under the nominal level, data this many days older than today.
LIVE_RATIO_CONCERN = 1.25
COVERAGE_SHORTFALL = 0.10
STALE_DAYS = 5
LIVE_MINIMUM = 5  # scored forecasts before live figures are quoted
DRIFTED_SHOWN = 4


@dataclass
class Facts:
    ticker: str
    today: str
    forecast: float | None = None
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    last_close: float | None = None
    as_of: str | None = None
    target_date: str | None = None
    champion_version: str | None = None
    champion_kind: str | None = None
    backtest_rmse: float | None = None
    backtest_naive_rmse: float | None = None
    skill_vs_naive: float | None = None
    live_scored: int = 0
    live_rmse: float | None = None
    live_naive_rmse: float | None = None
    live_coverage: float | None = None
    status: str | None = None
    status_since: str | None = None
    previous_status: str | None = None
    status_reason: str | None = None
    drifted_features: list[str] = field(default_factory=list)
    promoted_on: str | None = None
    replaced_version: str | None = None


@dataclass
class Summary:
    ticker: str
    text: str
    trust: str  # "usable", "caution", "low" or "none"
    concerns: list[str]
    facts: Facts
    written_by: str = "template"


def _day(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:10]


def gather(context: Context, ticker: str) -> Facts:
    """Everything a summary says, read once from the store and the registry."""
    today = context.now().date()
    facts = Facts(ticker=ticker, today=today.isoformat())
    log_frame = views.forecast_log(context, ticker)
    latest = views.latest_forecast(log_frame)
    if latest is not None:
        facts.forecast = float(latest["predicted_close"])
        facts.lower, facts.upper = float(latest["lower"]), float(latest["upper"])
        facts.level = float(latest["level"])
        facts.last_close = latest.get("last_close")
        facts.as_of, facts.target_date = _day(latest["as_of"]), _day(latest["target_date"])
        scored = log_frame.dropna(subset=["actual_close"]).tail(20)
        facts.live_scored = len(scored)
        if len(scored) >= LIVE_MINIMUM:
            errors = scored["actual_close"] - scored["predicted_close"]
            facts.live_rmse = float((errors**2).mean() ** 0.5)
            facts.live_naive_rmse = float((scored["naive_error"] ** 2).mean() ** 0.5)
            facts.live_coverage = float(scored["covered"].astype(float).mean())
    champion = views.version_summary(context.registry.champion(ticker))
    if champion is not None:
        facts.champion_version, facts.champion_kind = champion["version"], champion["kind"]
        facts.backtest_rmse, facts.backtest_naive_rmse = champion["rmse"], champion["naive_rmse"]
        facts.skill_vs_naive = champion["skill_vs_naive"]
        for decision in views.recent_decisions(context, ticker):
            if decision["promoted"] and decision["challenger_version"] == champion["version"]:
                facts.promoted_on = _day(decision["decided_at"])
                facts.replaced_version = decision.get("champion_version")
                break
    rows = context.store.load_monitoring(ticker).to_dict(orient="records")
    if rows:
        latest_row = rows[-1]
        facts.status = latest_row["status"]
        facts.status_reason = views.clean(latest_row.get("reason"))
        facts.drifted_features = json.loads(latest_row.get("drifted_features") or "[]")
        since = latest_row
        for row in reversed(rows[:-1]):
            if row["status"] != facts.status:
                facts.previous_status = row["status"]
                break
            since = row
        facts.status_since = _day(since["as_of"])
    return facts


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def judge(facts: Facts) -> tuple[str, list[str]]:
    """The trust verdict ("none", "low", "caution" or "usable") and the reasons to doubt
    today's forecast, most serious first."""
    if facts.forecast is None:
        return "none", []
    serious, minor = [], []
    if (
        facts.as_of is not None
        and (date.fromisoformat(facts.today) - date.fromisoformat(facts.as_of)).days > STALE_DAYS
    ):
        serious.append(f"the latest data is from {facts.as_of}, so this forecasts a session long past")
    if facts.status == "drift":
        serious.append("monitoring reports drift")
    if (
        facts.live_rmse is not None
        and facts.live_naive_rmse is not None
        and facts.live_rmse > facts.live_naive_rmse
    ):
        serious.append("over the last scored forecasts it did worse than the naive forecast")
    if (
        facts.live_rmse is not None
        and facts.backtest_rmse
        and facts.live_rmse > LIVE_RATIO_CONCERN * facts.backtest_rmse
    ):
        minor.append(f"live errors are {facts.live_rmse / facts.backtest_rmse:.1f}x the backtest's")
    if (
        facts.live_coverage is not None
        and facts.level is not None
        and facts.live_coverage < facts.level - COVERAGE_SHORTFALL
    ):
        minor.append(
            f"its intervals held the actual close {facts.live_coverage:.0%} of the time, not {facts.level:.0%}"
        )
    if facts.status == "watch":
        minor.append("monitoring has it on watch")
    trust = "low" if serious else "caution" if minor else "usable"
    return trust, serious + minor


def template_text(facts: Facts, concerns: list[str], trust: str) -> str:
    t = facts.ticker
    if facts.forecast is None:
        if facts.champion_version is None:
            return f"{t}: nothing to summarise yet. Run `stockcast run` to train a model and log a forecast."
        return f"{t}: champion v{facts.champion_version} is registered but no forecast is logged yet: run `stockcast predict`."
    sentences = []
    move = ""
    if facts.last_close:
        change = facts.forecast / facts.last_close - 1
        move = f", {change:+.1%} from the close of {_money(facts.last_close)} on {facts.as_of}"
    sentences.append(
        f"{t}: the close on {facts.target_date} is forecast at {_money(facts.forecast)}{move}; "
        f"a {facts.level or 0:.0%} interval runs from {_money(facts.lower)} to {_money(facts.upper)}."
    )
    if facts.champion_version is not None:
        if facts.champion_kind == "naive":
            sentences.append(
                f"The model in use (v{facts.champion_version}) is the naive forecast itself: no candidate beat "
                '"tomorrow closes where today did" on the backtest.'
            )
        elif facts.skill_vs_naive is not None:
            better = "better" if facts.skill_vs_naive >= 0 else "worse"
            sentences.append(
                f"The model in use (v{facts.champion_version}, {facts.champion_kind}) had backtest errors "
                f"{abs(facts.skill_vs_naive):.1%} {better} than the naive forecast "
                f"(RMSE {_money(facts.backtest_rmse)} against {_money(facts.backtest_naive_rmse)})."
            )
        if facts.promoted_on:
            replaced = f", replacing v{facts.replaced_version}" if facts.replaced_version else ""
            sentences.append(f"It became champion on {facts.promoted_on}{replaced}.")
    if facts.live_rmse is not None:
        sentences.append(
            f"On its last {facts.live_scored} scored forecasts the RMSE was {_money(facts.live_rmse)} "
            f"against {_money(facts.live_naive_rmse)} for the naive forecast, and the interval held "
            f"the actual close {facts.live_coverage:.0%} of the time."
        )
    elif facts.live_scored:
        sentences.append(
            f"Only {facts.live_scored} forecast(s) have been scored so far: too few to judge live."
        )
    if facts.status is not None:
        status = f"Monitoring status: {facts.status} since {facts.status_since}"
        if facts.previous_status:
            status += f" (before that: {facts.previous_status})"
        if facts.status != "ok" and facts.status_reason:
            status += f", {facts.status_reason.rstrip('.')}"
        if facts.drifted_features:
            shown = ", ".join(facts.drifted_features[:DRIFTED_SHOWN])
            more = len(facts.drifted_features) - DRIFTED_SHOWN
            status += f"; drifted features: {shown}" + (f" and {more} more" if more > 0 else "")
        sentences.append(status + ".")
    verdicts = {
        "usable": "Trust: usable today; nothing in the checks argues against it.",
        "caution": "Trust: with caution: " + "; ".join(concerns) + ".",
        "low": "Trust: low: " + "; ".join(concerns) + ".",
    }
    sentences.append(verdicts[trust])
    return " ".join(sentences)


def rewriter_configured(settings: Settings) -> bool:
    return bool(settings.summary_llm_url and settings.summary_llm_model and settings.summary_llm_api_key)


def rewrite(settings: Settings, text: str, facts: Facts) -> str:
    """Ask an OpenAI-compatible chat endpoint to say the same in plainer words."""
    assert settings.summary_llm_url and settings.summary_llm_model and settings.summary_llm_api_key
    body = {
        "model": settings.summary_llm_model,
        "temperature": 0,
        "messages": [
            {
                "role": "system",
                "content": (
                    "Rewrite the forecast summary for a reader who is not a statistician, in at most "
                    "five sentences. Keep every number, date and the trust verdict exactly; add no facts."
                ),
            },
            {"role": "user", "content": json.dumps({"summary": text, "facts": asdict(facts)})},
        ],
    }
    # The URL is the operator's setting, checked to be http(s) when settings load.
    request = urllib.request.Request(  # noqa: S310  # nosec B310
        settings.summary_llm_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.summary_llm_api_key.get_secret_value()}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=settings.summary_llm_timeout_seconds) as answer:  # noqa: S310  # nosec B310
        payload = json.loads(answer.read())
    rewritten = str(payload["choices"][0]["message"]["content"]).strip()
    if not rewritten:
        raise ValueError("the model answered with no text")
    return rewritten


def summarize(context: Context, tickers: list[str], use_llm: bool | None = None) -> list[Summary]:
    """A summary per ticker; ``use_llm`` None: rewrite when an endpoint is configured."""
    settings = context.settings
    rewriting = (
        rewriter_configured(settings) if use_llm is None else use_llm and rewriter_configured(settings)
    )
    summaries = []
    for ticker in tickers:
        facts = gather(context, ticker)
        trust, concerns = judge(facts)
        summary = Summary(ticker, template_text(facts, concerns, trust), trust, concerns, facts)
        if rewriting and facts.forecast is not None:
            try:
                summary.text, summary.written_by = rewrite(settings, summary.text, facts), "llm"
            except (OSError, urllib.error.URLError, ValueError, KeyError, IndexError, TypeError) as error:
                log.warning(
                    "summary of %s: the language model failed (%s); the template's text is kept",
                    ticker,
                    error,
                )
        summaries.append(summary)
    return summaries
