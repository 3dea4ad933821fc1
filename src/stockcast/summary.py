"""Plain-language summaries: per ticker, what stockcast forecasts and whether to trust it today.

The text is written from a template over facts read from the store and the registry (the
latest forecast and interval, the champion against the naive forecast on the backtest and
live, monitoring status and what changed). The live figures and the status are monitoring's
own (one scored forecast per day, against the backtest of the version that made it), so the
summary never contradicts `stockcast monitor`. When an OpenAI-compatible endpoint and model are
configured, a language model may rewrite the template's text in plainer words; it is sent only
that text and the facts it came from (numbers and dates, never a setting or a secret), the
trust verdict is always the template's own sentence, appended after the rewrite, and any
failure falls back to the template. Off by default; nothing requires it.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stockcast import views

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.settings import Settings

log = logging.getLogger(__name__)

COVERAGE_SHORTFALL = 0.10  # live coverage this far under the nominal level is a concern
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
    target_closed: bool = False  # the forecast session has already closed: no newer data came in
    forecast_version: str | None = None
    champion_version: str | None = None
    champion_kind: str | None = None
    backtest_rmse: float | None = None
    backtest_naive_rmse: float | None = None
    skill_vs_naive: float | None = None
    test_vs_naive: str | None = None  # the gate's test of the champion against naive
    p_value_vs_naive: float | None = None
    alpha: float | None = None
    live_scored: int = 0
    live_window: int = 20  # scored forecasts monitoring needs before it judges
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
    # The longer horizons' forecasts of the same day: horizon, target_date, forecast, lower,
    # upper, level, and their live coverage once monitoring has scored enough of them.
    further: list[dict[str, Any]] = field(default_factory=list)


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
    from stockcast.calendars import is_session_closed

    now = context.now()
    facts = Facts(ticker=ticker, today=now.date().isoformat(), live_window=context.settings.drift_window)
    shortest, *longer = context.settings.horizons
    latest = views.latest_forecast(views.forecast_log(context, ticker, horizon=shortest))
    if latest is not None:
        facts.forecast = float(latest["predicted_close"])
        facts.lower, facts.upper = float(latest["lower"]), float(latest["upper"])
        facts.level = float(latest["level"])
        facts.last_close = latest.get("last_close")
        facts.as_of, facts.target_date = _day(latest["as_of"]), _day(latest["target_date"])
        facts.target_closed = is_session_closed(ticker, latest["target_date"], now)
        facts.forecast_version = str(latest["model_version"])
    if latest is not None:
        facts.further = _further(context, ticker, longer, latest["as_of"])
    champion = views.version_summary(context.registry.champion(ticker, shortest))
    if champion is not None:
        facts.champion_version, facts.champion_kind = champion["version"], champion["kind"]
        facts.backtest_rmse, facts.backtest_naive_rmse = champion["rmse"], champion["naive_rmse"]
        facts.skill_vs_naive = champion["skill_vs_naive"]
        facts.test_vs_naive, facts.p_value_vs_naive = champion["test_vs_naive"], champion["p_value_vs_naive"]
        facts.alpha = champion["alpha"]
        decisions = context.store.load_decisions(ticker, shortest)
        promoted = decisions.loc[
            decisions["promoted"].astype(bool) & (decisions["challenger_version"] == champion["version"])
        ]
        if not promoted.empty:
            decision = promoted.iloc[-1]
            facts.promoted_on = _day(decision["decided_at"])
            facts.replaced_version = views.clean(decision.get("champion_version"))
    rows = context.store.load_monitoring(ticker, horizon=shortest).to_dict(orient="records")
    if rows:
        latest_row = views.monitoring_summary(rows)
        facts.status = latest_row["status"]
        facts.status_reason = latest_row.get("reason")
        facts.drifted_features = latest_row["drifted_features"]
        facts.live_scored = int(latest_row["evaluated"])
        facts.live_rmse = latest_row.get("rolling_rmse")
        facts.live_naive_rmse = latest_row.get("rolling_naive_rmse")
        facts.live_coverage = latest_row.get("coverage")
        since = rows[-1]
        for row in reversed(rows[:-1]):
            if row["status"] != facts.status:
                facts.previous_status = row["status"]
                break
            since = row
        facts.status_since = _day(since["as_of"])
    return facts


def _further(context: Context, ticker: str, horizons: list[int], as_of: Any) -> list[dict[str, Any]]:
    """The forecasts of the longer horizons made on ``as_of``, with their live coverage."""
    found = []
    for horizon in horizons:
        latest = views.latest_forecast(views.forecast_log(context, ticker, horizon=horizon))
        if latest is None or _day(latest["as_of"]) != _day(as_of):
            continue
        verdicts = context.store.load_monitoring(ticker, latest_only=True, horizon=horizon)
        coverage = views.clean(verdicts["coverage"].iloc[-1]) if not verdicts.empty else None
        found.append(
            {
                "horizon": horizon,
                "target_date": _day(latest["target_date"]),
                "forecast": float(latest["predicted_close"]),
                "lower": float(latest["lower"]),
                "upper": float(latest["upper"]),
                "level": float(latest["level"]),
                "live_coverage": coverage,
            }
        )
    return found


def _p_value(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def judge(facts: Facts) -> tuple[str, list[str]]:
    """The trust verdict ("none", "low", "caution" or "usable") and the reasons to doubt
    today's forecast, most serious first. "Usable" needs every check to have been made."""
    if facts.forecast is None:
        return "none", []
    serious, minor = [], []
    if facts.target_closed:
        serious.append(
            f"it forecasts {facts.target_date}, a session already closed: no newer prices have come in"
        )
    if facts.status == "drift":
        serious.append("monitoring reports drift")
    if facts.skill_vs_naive is not None and facts.skill_vs_naive < 0:
        serious.append("its backtest was worse than the naive forecast (it was promoted by hand)")
    elif facts.champion_kind not in (None, "naive") and facts.p_value_vs_naive is None:
        minor.append(
            "no significance test says it beats the naive forecast (promoted by hand or before the tests)"
        )
    if (
        facts.live_rmse is not None
        and facts.live_naive_rmse is not None
        and facts.live_rmse > facts.live_naive_rmse
    ):
        serious.append("over the last scored forecasts it did worse than the naive forecast")
    if facts.champion_version is None:
        minor.append("no champion is registered")
    elif facts.forecast_version is not None and facts.forecast_version != facts.champion_version:
        minor.append(
            f"the latest forecast was made by v{facts.forecast_version}, not the champion "
            f"v{facts.champion_version}: run `stockcast predict`"
        )
    if (
        facts.live_coverage is not None
        and facts.level is not None
        and facts.live_coverage < facts.level - COVERAGE_SHORTFALL
    ):
        minor.append(
            f"its intervals held the actual close {facts.live_coverage:.0%} of the time, not {facts.level:.0%}"
        )
    for further in facts.further:
        coverage = further["live_coverage"]
        if coverage is not None and coverage < further["level"] - COVERAGE_SHORTFALL:
            minor.append(
                f"its {further['horizon']}-session intervals held the actual close {coverage:.0%} of the "
                f"time, not {further['level']:.0%}"
            )
    if facts.status == "watch":
        minor.append("monitoring has it on watch")
    elif facts.status in (None, "unknown"):
        minor.append(
            f"not yet checked live ({facts.live_scored} of {facts.live_window} forecasts scored)"
            if facts.live_rmse is None
            else "monitoring could not judge it"
        )
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
        f"a {facts.level:.0%} interval runs from {_money(facts.lower)} to {_money(facts.upper)}."
    )
    if facts.further:
        sentences.append(
            "Further out: "
            + "; ".join(
                f"{each['horizon']} sessions ahead ({each['target_date']}) {_money(each['forecast'])}, "
                f"{each['level']:.0%} interval {_money(each['lower'])} to {_money(each['upper'])}"
                for each in facts.further
            )
            + "."
        )
    if facts.champion_version is not None:
        if facts.champion_kind == "naive":
            level = f" at alpha = {facts.alpha:g}" if facts.alpha is not None else ""
            sentences.append(
                f"The model in use (v{facts.champion_version}) is the naive forecast itself (tomorrow closes "
                f"where today did): no candidate beat naive significantly{level}: naive serves."
            )
        elif facts.skill_vs_naive is not None:
            better = "better" if facts.skill_vs_naive >= 0 else "worse"
            evidence = (
                f"; it beat naive, p = {_p_value(facts.p_value_vs_naive)} ({facts.test_vs_naive})"
                if facts.p_value_vs_naive is not None
                else ""
            )
            sentences.append(
                f"The model in use (v{facts.champion_version}, {facts.champion_kind}) had backtest errors "
                f"{abs(facts.skill_vs_naive):.1%} {better} than the naive forecast "
                f"(RMSE {_money(facts.backtest_rmse)} against {_money(facts.backtest_naive_rmse)}){evidence}."
            )
        if facts.promoted_on:
            replaced = f", replacing v{facts.replaced_version}" if facts.replaced_version else ""
            sentences.append(f"It became champion on {facts.promoted_on}{replaced}.")
    if facts.live_rmse is not None:
        sentences.append(
            f"Over the last {facts.live_window} scored forecasts the RMSE was {_money(facts.live_rmse)} "
            f"against {_money(facts.live_naive_rmse)} for the naive forecast, and the interval held "
            f"the actual close {facts.live_coverage:.0%} of the time."
        )
    elif facts.live_scored:
        sentences.append(
            f"Only {facts.live_scored} of the {facts.live_window} scored forecasts monitoring needs so far."
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
    sentences.append(verdict_sentence(trust, concerns))
    return " ".join(sentences)


def verdict_sentence(trust: str, concerns: list[str]) -> str:
    return {
        "usable": "Trust: usable today; every check passed.",
        "caution": "Trust: with caution: " + "; ".join(concerns) + ".",
        "low": "Trust: low: " + "; ".join(concerns) + ".",
    }[trust]


def rewriter_configured(settings: Settings) -> bool:
    """An endpoint and a model name; a key only when the endpoint wants one (local servers often
    do not)."""
    return bool(settings.summary_llm_url and settings.summary_llm_model)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would repeat the request, Authorization header included, wherever a redirect
    points; the endpoint is the configured one or none."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def rewrite(settings: Settings, text: str, facts: Facts) -> str:
    """Ask an OpenAI-compatible chat endpoint to say the same in plainer words."""
    if not (settings.summary_llm_url and settings.summary_llm_model):
        raise ValueError("no language model is configured (STOCKCAST_SUMMARY_LLM_URL and _MODEL)")
    body = {
        "model": settings.summary_llm_model,
        "temperature": 0,
        "messages": [
            {
                "role": "system",
                "content": (
                    "Rewrite the forecast summary for a reader who is not a statistician, in at most "
                    "four sentences. Keep every number and date exactly; add no facts and no advice."
                ),
            },
            {"role": "user", "content": json.dumps({"summary": text, "facts": asdict(facts)})},
        ],
    }
    headers = {"Content-Type": "application/json"}
    if settings.summary_llm_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.summary_llm_api_key.get_secret_value()}"
    # The URL is the operator's setting, checked to be https (or http on loopback) when settings load.
    request = urllib.request.Request(  # noqa: S310  # nosec B310
        settings.summary_llm_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    with _OPENER.open(request, timeout=settings.summary_llm_timeout_seconds) as answer:
        payload = json.loads(answer.read())
    rewritten = payload["choices"][0]["message"]["content"]
    if not isinstance(rewritten, str) or not rewritten.strip():
        raise ValueError("the model answered with no text")
    return rewritten.strip()


def summarize(context: Context, tickers: list[str], use_llm: bool | None = None) -> list[Summary]:
    """A summary per ticker; ``use_llm`` None: rewrite when an endpoint is configured. The
    model rewrites the facts' sentences only; the trust verdict is the template's, appended."""
    settings = context.settings
    if use_llm and not rewriter_configured(settings):
        from stockcast.settings import SettingsError

        raise SettingsError(
            "--llm needs a language model: set STOCKCAST_SUMMARY_LLM_URL and STOCKCAST_SUMMARY_LLM_MODEL"
        )
    rewriting = rewriter_configured(settings) if use_llm is None else use_llm
    summaries = []
    for ticker in tickers:
        facts = gather(context, ticker)
        trust, concerns = judge(facts)
        text = template_text(facts, concerns, trust)
        summary = Summary(ticker, text, trust, concerns, facts)
        if rewriting and facts.forecast is not None:
            verdict = verdict_sentence(trust, concerns)
            try:
                plain = rewrite(settings, text.removesuffix(verdict).rstrip(), facts)
            except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError, TypeError) as error:
                log.warning(
                    "summary of %s: the language model failed (%s); the template's text is kept",
                    ticker,
                    error,
                )
                unreachable = isinstance(error, OSError) and not isinstance(error, urllib.error.HTTPError)
                if unreachable or isinstance(error, http.client.HTTPException):
                    rewriting = False  # the other tickers would each wait the timeout again
            else:
                summary.text, summary.written_by = f"{plain} {verdict}", "llm"
        summaries.append(summary)
    return summaries
