"""How the commands' results look on the console: rich tables, one-line verdicts and figures.
Each function prints what it is given; deciding the exit code is left to the command."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from stockcast.cli.common import console, errors
from stockcast.horizons import horizon_label

if TYPE_CHECKING:
    from stockcast.context import Context
    from stockcast.features.offline import FeatureRefresh
    from stockcast.pipeline import CycleReport


def print_failures(failures: dict[str, str]) -> None:
    for ticker, reason in sorted(failures.items()):
        errors.print(f"[red]failed[/red] {ticker}: {reason}", highlight=False)


def print_busy(busy: dict[str, str]) -> None:
    """Tickers a scheduled run passed by because another process was training them."""
    for ticker in sorted(busy):
        errors.print(
            f"[bold yellow]warning:[/bold yellow] {escape(busy[ticker])}; not trained by this run",
            highlight=False,
            soft_wrap=True,
        )


def print_source_note(note: str | None) -> None:
    if note:
        errors.print(f"[bold yellow]warning:[/bold yellow] {note}", highlight=False)


def print_cycle(context: Context, report: CycleReport) -> None:
    """What training did, then the forecasts beside their champion's backtest figures."""
    for trained in report.trained:
        verdict = "promoted" if trained.decision.promote else "kept champion"
        console.print(
            f"{_named(trained)}: trained v{trained.version} {trained.spec_key}: {verdict} — {trained.decision.reason}",
            highlight=False,
        )
    table = Table(title="Close forecasts, by sessions ahead")
    for column in (
        "ticker",
        "as of",
        "last close",
        "ahead",
        "target date",
        "forecast",
        "interval",
        "model",
        "version",
        "RMSE",
        "naive RMSE",
        "skill",
        "coverage",
    ):
        table.add_column(column, justify="left" if column in {"ticker", "model"} else "right")
    for forecast in sorted(report.forecasts, key=lambda each: (each.ticker, each.horizon)):
        champion = context.registry.champion(forecast.ticker, forecast.horizon)
        metric = champion.metric if champion else (lambda _key: float("nan"))
        table.add_row(
            forecast.ticker,
            forecast.as_of.isoformat(),
            f"{forecast.last_close:.2f}",
            str(forecast.horizon),
            forecast.target_date.isoformat(),
            f"{forecast.predicted_close:.2f}",
            f"{forecast.lower:.2f} – {forecast.upper:.2f} ({forecast.level:.0%})",
            forecast.model_kind,
            forecast.model_version,
            f"{metric('rmse'):.3f}",
            f"{metric('naive_rmse'):.3f}",
            f"{metric('skill_vs_naive'):+.3f}",
            f"{metric('coverage'):.1%}",
        )
    console.print(table)
    console.print(
        "ahead: sessions of the ticker's exchange after as of. RMSE, skill (1 - RMSE/naive RMSE) and "
        "interval coverage are each horizon's champion's walk-forward backtest figures on its last "
        "scored window; intervals widen with the horizon.",
        highlight=False,
    )
    console.print(
        f"{report.forecasts_logged} new forecast(s) logged; prices in {context.settings.resolved_database_url}"
    )


def _named(report: Any) -> str:
    """A training report's ticker, with its horizon when longer than one session."""
    return horizon_label(report.ticker, report.horizon)


def print_retrained(retrained: list[Any]) -> None:
    for each in retrained:
        verdict = "promoted" if each.decision.promote else "kept the champion"
        console.print(
            f"{_named(each)}: drifted, retrained v{each.version}: {verdict} — {each.decision.reason}",
            highlight=False,
        )


def print_refresh(context: Context, refreshed: FeatureRefresh) -> None:
    materialized = refreshed.materialized
    if materialized.rows == 0:
        what = "online store already current"
    else:
        kind = "first load" if materialized.first_load else "incremental"
        what = f"materialized {materialized.rows} row(s) up to {materialized.end:%Y-%m-%d %H:%M} UTC ({kind})"
    console.print(
        f"features: {refreshed.rows} rows for {refreshed.tickers} ticker(s) at {refreshed.table_url}; {what}; "
        f"feature repository {context.feature_store.repo_dir}",
        highlight=False,
    )


def print_training(reports: list[Any]) -> None:
    """One line per trained ticker with the gate's verdict."""
    for report in reports:
        verdict = "promoted to champion" if report.decision.promote else "kept as challenger"
        console.print(
            f"{_named(report)}: v{report.version} {report.spec_key} {verdict}: {report.decision.reason}",
            highlight=False,
        )


def print_actuals(report: Any) -> None:
    per_ticker = ", ".join(f"{ticker} {count}" for ticker, count in sorted(report.by_ticker.items()))
    console.print(
        f"{report.filled} forecast(s) scored{f' ({per_ticker})' if per_ticker else ''}; "
        f"{report.still_open} still waiting for their session"
        + (
            f"; {report.mapped_to_next_session} scored on the next session after a holiday"
            if report.mapped_to_next_session
            else ""
        ),
        highlight=False,
    )


def print_health(healths: list[Any]) -> None:
    colours = {"ok": "green", "watch": "yellow", "drift": "red", "unknown": "dim"}
    table = Table(title="Monitoring")
    for column in (
        "ticker",
        "ahead",
        "as of",
        "status",
        "version",
        "scored",
        "rolling RMSE",
        "backtest RMSE",
        "ratio",
        "days above",
        "coverage",
        "direction",
        "drifted features",
    ):
        table.add_column(
            column,
            justify="left" if column in {"ticker", "status", "drifted features"} else "right",
            overflow="fold",
        )
    for health in healths:
        figures = health.performance
        table.add_row(
            health.ticker,
            str(health.horizon),
            health.as_of.isoformat(),
            f"[{colours.get(health.status, 'white')}]{health.status}[/]",
            health.model_version or "-",
            str(figures.evaluated),
            figure(figures.rolling_rmse),
            figure(health.backtest_rmse),
            figure(figures.ratio, "{:.2f}x"),
            str(figures.days_above),
            figure(figures.coverage, "{:.0%}"),
            figure(figures.directional_accuracy, "{:.0%}"),
            "-"
            if health.drift_share is None
            else f"{health.drift_share:.0%} ({len(health.drifted_features)})",
        )
    console.print(table)
    written = [health for health in healths if health.report_written]
    if written:
        folder = short_path(written[0].report_uri or "").replace(f"/{written[0].ticker}/", "/{ticker}/")
        console.print(
            f"Evidently reports (HTML and JSON) written for {len(written)} ticker(s): {folder}",
            highlight=False,
        )
    carried = len([health for health in healths if health.report_uri and not health.report_written])
    if carried:
        console.print(
            f"{carried} ticker(s) link their latest reports (not due yet); drift figures are today's",
            highlight=False,
        )
    for health in healths:
        if health.status != "ok":
            console.print(
                f"{horizon_label(health.ticker, health.horizon)}: {health.status}: {health.reason}",
                highlight=False,
            )
    # The inputs are the same at every horizon: their drift is said once per ticker.
    for health in {health.ticker: health for health in reversed(healths)}.values():
        if health.drifted_features:
            console.print(
                f"{health.ticker}: drifted features: {', '.join(health.drifted_features)}", highlight=False
            )


def print_replay(report: Any) -> None:
    """The replay's table per ticker, each retraining decision it made, and where its files are."""
    from stockcast.monitoring.replay import HORIZON_COLUMNS, REPLAY_COLUMNS, horizon_rows, summary_rows

    table = Table(
        title=f"Replay {report.start} – {report.end}: {report.sessions} sessions in {report.seconds:.0f} s"
    )
    for column in REPLAY_COLUMNS:
        table.add_column(column, justify="left" if column in {"ticker", "first drift"} else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    if report.horizons:
        pooled = Table(title="Pooled over the tickers, per horizon")
        for column in HORIZON_COLUMNS:
            pooled.add_column(column, justify="right")
        for row in horizon_rows(report):
            pooled.add_row(*row)
        console.print(pooled)
    for decision in report.decisions:
        verdict = "promoted" if decision["promoted"] else "kept"
        named = horizon_label(str(decision["ticker"]), int(decision.get("horizon", 1)))
        console.print(
            f"{str(decision['decided_at'])[:10]} {named}: {decision['trigger']} retraining, {verdict}: {decision['reason']}",
            highlight=False,
        )
    console.print(f"plot: {report.plot}; summary: {report.directory / 'summary.json'}", highlight=False)


def print_champions(champions: dict[tuple[str, int], Any], decisions: Any) -> None:
    """The champion table, a row per ticker and horizon; those without one are named on stderr."""
    table = Table(title="Champions")
    for column in (
        "ticker",
        "ahead",
        "version",
        "kind",
        "RMSE",
        "naive RMSE",
        "skill",
        "coverage",
        "data end",
        "promoted at",
    ):
        table.add_column(column)
    missing = []
    for (ticker, horizon), champion in champions.items():
        if champion is None:
            missing.append(horizon_label(ticker, horizon))
            continue
        table.add_row(
            ticker,
            str(horizon),
            champion.version,
            champion.kind,
            f"{champion.metric('rmse'):.3f}",
            f"{champion.metric('naive_rmse'):.3f}",
            f"{champion.metric('skill_vs_naive'):+.3f}",
            f"{champion.metric('coverage'):.1%}",
            champion.tags.get("data_end", "?"),
            _promoted_at(decisions, ticker, horizon, champion.version),
        )
    console.print(table)
    if missing:
        errors.print(f"no champion yet for {', '.join(missing)}; run `stockcast train`", highlight=False)


def _promoted_at(decisions: Any, ticker: str, horizon: int, version: str) -> str:
    made = decisions[
        (decisions["ticker"] == ticker)
        & (decisions["horizon"] == horizon)
        & decisions["promoted"].astype(bool)
        & (decisions["challenger_version"] == version)
    ]
    return "?" if made.empty else f"{made['decided_at'].iloc[-1]:%Y-%m-%d %H:%M}"


def print_history(symbol: str, decisions: Any) -> None:
    """Every promotion decision for one ticker, with the tests' p-values behind it."""
    table = Table(title=f"Promotion history of {symbol}")
    for column in (
        "decided at",
        "action",
        "result",
        "challenger",
        "RMSE",
        "champion",
        "RMSE ",
        "naive RMSE",
        "p vs naive",
        "p vs champion",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for row in decisions.itertuples(index=False):
        result = ("promoted" if row.promoted else "kept") + (" (forced)" if row.forced else "")
        table.add_row(
            f"{row.decided_at:%Y-%m-%d %H:%M}",
            row.action,
            result,
            f"v{row.challenger_version} {row.challenger_spec or ''}".strip(),
            figure(row.challenger_rmse),
            f"v{row.champion_version} {row.champion_spec or ''}".strip() if row.champion_version else "-",
            figure(row.champion_rmse),
            figure(row.naive_rmse),
            _evidence(row.test_vs_naive, row.p_value_vs_naive),
            _evidence(row.test_vs_champion, row.p_value_vs_champion),
            row.reason,
        )
    console.print(table)
    console.print(
        "p: the one-sided test (DM-HLN) the gate used for the registered version against naive and "
        "against the champion, Holm-adjusted when it was picked among several candidates.",
        style="dim",
        highlight=False,
    )


def _evidence(test: str | None, p_value: float | None) -> str:
    if test is None or p_value is None or (isinstance(p_value, float) and math.isnan(p_value)):
        return "-"
    return f"{p_value:.3f} ({test})" if p_value >= 0.001 else f"{p_value:.1e} ({test})"


def figure(value: float | None, form: str = "{:.4f}") -> str:
    return "-" if value is None or math.isnan(value) else form.format(value)


def short_path(uri: str | None) -> str:
    if not uri:
        return "-"
    try:
        return str(Path(uri).relative_to(Path.cwd()))
    except ValueError:
        return uri
