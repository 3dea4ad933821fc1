"""Replay: months of production in minutes, over historical bars.

Each simulated session runs ``run_cycle``, the code `stockcast run` runs, with the context's
clock set to half an hour after that session's close: ingestion sees the bars up to that day
(a later bar does not exist yet for it), the day's forecast is made and logged, yesterday's is
scored, the tickers are monitored and drifted ones retrained through the promotion gate.
Nothing is faked globally; the clock is the one ``Context.now`` every stage already reads.

A replay works in a directory of its own (its own database, registry, feature store and
artifacts), so it never touches production data.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stockcast.settings import CACHE_FOLDER, Settings

if TYPE_CHECKING:
    from stockcast.context import Context

log = logging.getLogger(__name__)
MARKER = ".stockcast-replay"


class ReplayError(ValueError):
    """A replay cannot start; the message says why."""


@dataclass
class TickerSummary:
    ticker: str
    scored: int
    rmse: float | None
    naive_rmse: float | None
    coverage: float | None
    drift_days: list[str]
    drift_retrains: int
    scheduled_retrains: int
    promotions: int  # retrainings whose version became champion (a refit of the same model too)
    champion_changes: int = 0  # of those, the ones that changed the model specification
    changes_per_year: float | None = None
    horizon: int = 1  # sessions ahead


@dataclass
class HorizonSummary:
    """Every ticker's scored forecasts at one horizon, pooled."""

    horizon: int
    scored: int
    coverage: float | None  # share of actuals inside the configured level's interval
    rmse_ratio: float | None  # pooled RMSE of log errors / the naive forecast's, as in the gate
    level: float


@dataclass
class ReplayReport:
    start: date
    end: date
    sessions: int
    directory: Path
    tickers: list[TickerSummary] = field(default_factory=list)
    horizons: list[HorizonSummary] = field(default_factory=list)
    decisions: list[dict[str, object]] = field(default_factory=list)
    plot: Path | None = None
    seconds: float = 0.0
    note: str | None = None


def prepare_directory(directory: Path) -> None:
    """A fresh replay directory: created, or emptied when an earlier replay made it. Any other
    non-empty directory is refused, never deleted (what it holds in its cache folder, such as
    the calendars built while the replay's dates were checked, is no data of its own)."""
    if directory.exists() and any(path.name != CACHE_FOLDER for path in directory.iterdir()):
        if not (directory / MARKER).exists():
            raise ReplayError(
                f"{directory} is not empty and was not made by a replay; choose another --data-dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `stockcast replay`; emptied by the next replay\n")


def replay_settings(settings: Settings, directory: Path) -> Settings:
    """The same configuration, with every store inside the replay directory."""
    return settings.model_copy(
        update={
            "data_dir": directory,
            "database_url": None,
            "artifact_root": None,
            "mlflow_tracking_uri": None,
            "feast_online_store": "sqlite",
            "end_date": None,
            "pushgateway_url": None,
            "clickhouse_url": None,  # a simulation: nothing of it goes to analytics
        }
    )


def record_history(
    settings: Settings, tickers: list[str], last: date, directory: Path
) -> tuple[Path, str | None]:
    """Fetch the history once from the configured source (Yahoo, the sample, a file) up to the
    last simulated session and keep it in the replay directory; each simulated day then ingests
    from that file through the ordinary ingestion code, seeing only the bars up to its date."""
    from stockcast.context import Context

    fetched = Context(settings).source.fetch(tickers, date.fromisoformat(settings.start_date), last)
    if fetched.bars.empty:
        raise ReplayError(f"no bars for {', '.join(tickers)} up to {last} from source {settings.source}")
    path = directory / "history.parquet"
    fetched.bars.to_parquet(path, index=False)
    return path, fetched.note


def simulated_sessions(ticker: str, start: date, days: int) -> list[date]:
    from stockcast.calendars import calendar_for

    calendar = calendar_for(ticker)
    first = calendar.date_to_session(pd.Timestamp(start), direction="next")
    sessions = calendar.sessions_window(first, days)
    return [session.date() for session in sessions]


def after_close(ticker: str, session: date) -> datetime:
    from stockcast.calendars import calendar_for

    close = calendar_for(ticker).session_close(pd.Timestamp(session))
    return (close + timedelta(minutes=30)).to_pydatetime().astimezone(UTC)


def replay(
    settings: Settings,
    start: date,
    days: int,
    directory: Path,
    report_every: int = 20,
    step: Callable[[str], None] | None = None,
) -> ReplayReport:
    import time

    from stockcast.context import Context
    from stockcast.pipeline import run_cycle

    if days < 1:
        raise ReplayError("--days must be at least 1")
    tickers = settings.tickers
    sessions = simulated_sessions(tickers[0], start, days)
    prepare_directory(directory)
    began = time.perf_counter()
    history, note = record_history(settings, tickers, sessions[-1], directory)
    config = replay_settings(settings, directory).model_copy(
        update={"source": f"file:{history}", "report_every_days": report_every}
    )
    context = Context(config, activity="stockcast replay")
    for index, session in enumerate(sessions):
        context.set_clock(after_close(tickers[0], session))
        last = index == len(sessions) - 1
        if step:
            step(f"{session} ({index + 1}/{len(sessions)})")
        # Reports where due (STOCKCAST_REPORT_EVERY_DAYS = report_every); HTML on the last day.
        cycle = run_cycle(context, tickers, reports=True if last else None, html=last)
        for ticker, reason in {**cycle.failures, **cycle.busy}.items():
            log.info("%s %s: %s", session, ticker, reason)
    report = summarize(context, tickers, sessions[0], sessions[-1], directory)
    report.note = note
    report.seconds = time.perf_counter() - began
    report.plot = plot(context, tickers, sessions[0], directory / "replay.png")
    (directory / "summary.json").write_text(json.dumps(summary_dict(report), indent=2, default=str))
    return report


def _rmse(values: pd.Series) -> float | None:
    clean = values.dropna().astype(float)
    return float(np.sqrt(np.mean(np.square(clean)))) if len(clean) else None


SESSIONS_PER_YEAR = 252


def summarize(context: Context, tickers: list[str], first: date, last: date, directory: Path) -> ReplayReport:
    from stockcast.monitoring.actuals import daily_outcomes

    store = context.store
    horizons = context.settings.horizons
    monitoring = store.load_monitoring(horizon=None)
    decisions = store.load_decisions(horizon=None)
    in_window = decisions.loc[pd.to_datetime(decisions["decided_at"], utc=True).dt.date >= first]
    report = ReplayReport(first, last, 0, directory)
    report.sessions = len(monitoring["as_of"].unique()) if not monitoring.empty else 0
    pooled: dict[int, list[pd.DataFrame]] = {horizon: [] for horizon in horizons}
    for ticker in tickers:
        scored = store.evaluated_forecasts(ticker)
        for horizon in horizons:
            daily = daily_outcomes(scored, horizon)
            pooled[horizon].append(daily)
            report.tickers.append(_ticker_summary(ticker, horizon, daily, monitoring, in_window))
    report.horizons = [
        _pooled(horizon, pd.concat(frames), context.settings.interval_level)
        for horizon, frames in pooled.items()
    ]
    report.decisions = [
        {
            "ticker": row["ticker"],
            "horizon": int(row["horizon"]),
            "decided_at": str(row["decided_at"]),
            "trigger": row["trigger"],
            "promoted": bool(row["promoted"]),
            "reason": row["reason"],
        }
        for row in in_window.loc[
            (in_window["action"] == "train") & in_window["trigger"].isin(["drift", "scheduled"])
        ].to_dict(orient="records")
    ]
    return report


def _ticker_summary(
    ticker: str, horizon: int, daily: pd.DataFrame, monitoring: pd.DataFrame, in_window: pd.DataFrame
) -> TickerSummary:
    mine_decisions = in_window.loc[(in_window["ticker"] == ticker) & (in_window["horizon"] == horizon)]
    promoted = mine_decisions.loc[mine_decisions["promoted"].astype(bool)]
    changes = int(
        (promoted["champion_spec"].notna() & (promoted["challenger_spec"] != promoted["champion_spec"])).sum()
    )
    mine = monitoring.loc[(monitoring["ticker"] == ticker) & (monitoring["horizon"] == horizon)]
    trained = mine_decisions.loc[
        (mine_decisions["action"] == "train") & mine_decisions["trigger"].isin(["drift", "scheduled"])
    ]
    return TickerSummary(
        ticker=ticker,
        scored=len(daily),
        rmse=_rmse(daily["error"]) if len(daily) else None,
        naive_rmse=_rmse(daily["naive_error"]) if len(daily) else None,
        coverage=float(daily["covered"].astype(float).mean()) if len(daily) else None,
        drift_days=[str(day) for day in mine.loc[mine["status"] == "drift", "as_of"]],
        drift_retrains=int((trained["trigger"] == "drift").sum()),
        scheduled_retrains=int((trained["trigger"] == "scheduled").sum()),
        promotions=int(trained["promoted"].astype(bool).sum()),
        champion_changes=changes,
        changes_per_year=changes / (len(daily) / SESSIONS_PER_YEAR) if len(daily) else None,
        horizon=horizon,
    )


def _pooled(horizon: int, daily: pd.DataFrame, level: float) -> HorizonSummary:
    """Coverage and RMSE against naive over every ticker's scored forecasts at a horizon; the
    errors are relative (log of actual over forecast), so tickers of any price level pool."""
    if daily.empty:
        return HorizonSummary(horizon, 0, None, None, level)
    actual = daily["actual_close"].astype(float).to_numpy()
    model = np.log(actual / daily["predicted_close"].astype(float).to_numpy())
    naive = np.log(actual / (actual - daily["naive_error"].astype(float).to_numpy()))
    naive_rmse = float(np.sqrt(np.nanmean(naive**2)))
    return HorizonSummary(
        horizon=horizon,
        scored=len(daily),
        coverage=float(daily["covered"].astype(float).mean()),
        rmse_ratio=float(np.sqrt(np.nanmean(model**2))) / naive_rmse if naive_rmse > 0 else None,
        level=level,
    )


def summary_dict(report: ReplayReport) -> dict[str, object]:
    return {
        "start": report.start,
        "end": report.end,
        "sessions": report.sessions,
        "seconds": round(report.seconds, 1),
        "tickers": [ticker.__dict__ for ticker in report.tickers],
        "horizons": [horizon.__dict__ for horizon in report.horizons],
        "decisions": report.decisions,
        "plot": str(report.plot) if report.plot else None,
    }


REPLAY_COLUMNS = (
    "ticker",
    "ahead",
    "scored",
    "RMSE",
    "naive RMSE",
    "skill",
    "coverage",
    "drift days",
    "first drift",
    "drift retrains",
    "scheduled retrains",
    "promotions",
    "model changes (per year)",
)


def _figure(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def summary_rows(report: ReplayReport) -> list[tuple[str, ...]]:
    """One row per ticker, in REPLAY_COLUMNS' order, as the CLI's table and the README show it."""
    rows: list[tuple[str, ...]] = []
    for summary in report.tickers:
        skill = 1 - summary.rmse / summary.naive_rmse if summary.rmse and summary.naive_rmse else None
        rows.append(
            (
                summary.ticker,
                str(summary.horizon),
                str(summary.scored),
                _figure(summary.rmse),
                _figure(summary.naive_rmse),
                _figure(skill, "{:+.4f}"),
                _figure(summary.coverage, "{:.1%}"),
                str(len(summary.drift_days)),
                summary.drift_days[0] if summary.drift_days else "-",
                str(summary.drift_retrains),
                str(summary.scheduled_retrains),
                str(summary.promotions),
                f"{summary.champion_changes} ({_figure(summary.changes_per_year, '{:.1f}')})",
            )
        )
    return rows


def summary_markdown(report: ReplayReport, settings: Settings, command: str) -> str:
    """The README's replay section, written by `stockcast replay --readme` from the run itself."""
    import os

    lines = [
        f"Written by `{command}` ({os.cpu_count()} cores; candidates "
        f"{', '.join(settings.models)}; tickers {', '.join(settings.tickers)}): "
        f"{report.sessions} sessions from {report.start} to {report.end} in "
        f"{report.seconds / 60:.1f} minutes.",
    ]
    if report.note:
        lines.append(f"Prices: {report.note}.")
    lines += [
        "",
        "| " + " | ".join(REPLAY_COLUMNS) + " |",
        "|" + "---|" * len(REPLAY_COLUMNS),
        *("| " + " | ".join(row) + " |" for row in summary_rows(report)),
        "",
    ]
    if report.horizons:
        lines += [
            "Pooled over the tickers, per horizon (sessions ahead): the share of actual closes inside the "
            "interval, and the RMSE of relative errors against the naive forecast's.",
            "",
            "| " + " | ".join(HORIZON_COLUMNS) + " |",
            "|" + "---|" * len(HORIZON_COLUMNS),
            *("| " + " | ".join(row) + " |" for row in horizon_rows(report)),
            "",
        ]
    return "\n".join(lines)


HORIZON_COLUMNS = ("ahead", "scored", "interval", "coverage", "off nominal", "RMSE / naive")


def horizon_rows(report: ReplayReport) -> list[tuple[str, ...]]:
    """One row per horizon, pooled over the tickers, in HORIZON_COLUMNS' order."""
    return [
        (
            str(each.horizon),
            str(each.scored),
            f"{each.level:.0%}",
            _figure(each.coverage, "{:.1%}"),
            _figure(None if each.coverage is None else (each.coverage - each.level) * 100, "{:+.1f} pt"),
            _figure(each.rmse_ratio, "{:.4f}"),
        )
        for each in report.horizons
    ]


def plot(context: Context, tickers: list[str], first: date, path: Path) -> Path | None:
    """Per ticker: the 20-day rolling RMSE of the champion's forecasts and of the naive
    forecast, drift days shaded, retrain decisions marked (filled when promoted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stockcast.monitoring.actuals import daily_outcomes

    store = context.store
    window = context.settings.drift_window
    monitoring = store.load_monitoring()
    decisions = store.load_decisions()
    figure, axes = plt.subplots(len(tickers), 1, figsize=(11, 2.6 * len(tickers)), sharex=True, squeeze=False)
    for axis, ticker in zip(axes[:, 0], tickers, strict=True):
        daily = daily_outcomes(store.evaluated_forecasts(ticker))
        if daily.empty:
            axis.set_title(f"{ticker}: no scored forecasts")
            continue
        dates = pd.to_datetime(daily["as_of"])
        for column, label in (("error", "champion"), ("naive_error", "naive")):
            rolling = np.sqrt(
                daily[column].astype(float).pow(2).rolling(window, min_periods=window // 2).mean()
            )
            axis.plot(dates, rolling, label=f"{label} rolling RMSE ({window})")
        drifted = monitoring.loc[
            (monitoring["ticker"] == ticker) & (monitoring["status"] == "drift"), "as_of"
        ]
        for day in pd.to_datetime(drifted):
            axis.axvspan(
                day - pd.Timedelta(hours=12), day + pd.Timedelta(hours=12), color="red", alpha=0.15, lw=0
            )
        trained = decisions.loc[(decisions["ticker"] == ticker) & (decisions["action"] == "train")]
        for row in trained.to_dict(orient="records"):
            stamp = pd.Timestamp(row["decided_at"])
            stamp = stamp.tz_convert(None) if stamp.tzinfo else stamp
            if stamp.date() >= first:
                axis.axvline(
                    stamp, color="green" if row["promoted"] else "grey", ls="-" if row["promoted"] else ":"
                )
        axis.set_title(f"{ticker} (red: drift; green line: retrained and promoted; grey: retrained, kept)")
        axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
