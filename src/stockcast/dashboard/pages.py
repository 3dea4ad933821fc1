"""The dashboard's four pages. Each explains what to run when there is nothing to show yet."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from stockcast import views
from stockcast.dashboard import data

STATUS_COLOURS = {"ok": "green", "watch": "orange", "drift": "red", "unknown": "gray"}
NOTHING_YET = (
    "Nothing stored yet. Run `stockcast run` (or `make run`) to ingest prices, train the models "
    "and log the first forecasts; this page fills in from there."
)


def _ticker_picker(key: str) -> str | None:
    known = data.tickers_with_prices()
    configured = [ticker for ticker in data.settings().tickers if ticker in known]
    choices = configured or known
    if not choices:
        st.info(NOTHING_YET)
        return None
    return st.selectbox("Ticker", choices, key=key)


def _number(value: Any, template: str = "{:,.2f}") -> str:
    return "–" if value is None or pd.isna(value) else template.format(value)


def _ahead(horizon: int) -> str:
    return f"{horizon} session{'' if horizon == 1 else 's'} ahead"


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _listed(horizons: list[int]) -> str:
    """``1, 5 and 20 sessions ahead``."""
    return f"{_joined([str(horizon) for horizon in horizons])} session{'' if horizons == [1] else 's'} ahead"


def _percents(levels: list[float]) -> str:
    """``50, 80 and 90%``."""
    return f"{_joined([f'{level * 100:g}' for level in levels])}%" if levels else "–"


# -- Forecast -----------------------------------------------------------------------------------
SHOWN_LEVEL = 0.9  # the interval level shown with each horizon's numbers and scores
BAND_RGB = "65, 105, 225"  # royalblue; the narrower bands are drawn over the wider ones
BAND_OPACITY = 0.18


def forecast_page() -> None:
    st.header(f"Close forecasts {_listed(data.horizons())}")
    ticker = _ticker_picker("forecast-ticker")
    if ticker is None:
        return
    bars = data.recent_bars(ticker)
    forecasts = data.latest_forecasts(ticker)
    fan: dict[int, dict[str, Any]] = {}
    anchor = None
    if not forecasts:
        st.info(f"No forecast logged for {ticker} yet: run `stockcast run` (or `stockcast predict`).")
    else:
        as_of = max(forecast["as_of"] for forecast in forecasts.values())
        fan = {horizon: forecast for horizon, forecast in forecasts.items() if forecast["as_of"] == as_of}
        anchor = _last_close(bars, fan)
        columns = st.columns(1 + len(fan))
        columns[0].metric(f"Close {as_of}", _number(anchor))
        for column, (horizon, forecast) in zip(columns[1:], fan.items(), strict=True):
            change = f"{forecast['predicted_close'] / anchor - 1:+.2%}" if anchor else None
            flat = change in ("+0.00%", "-0.00%")  # gray and without an arrow
            column.metric(
                f"{_ahead(horizon)}: {forecast['target_date']}",
                _number(forecast["predicted_close"]),
                delta="0.00%" if flat else change,
                delta_color="off" if flat else "normal",
                delta_arrow="off" if flat else "auto",
            )
        st.dataframe(
            horizon_table(forecasts),
            hide_index=True,
            key="forecast-table",
            column_config={
                "forecast": st.column_config.NumberColumn(format="%.2f"),
                f"{SHOWN_LEVEL:.0%} lower": st.column_config.NumberColumn(format="%.2f"),
                f"{SHOWN_LEVEL:.0%} upper": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        newest = fan[min(fan)]
        levels = sorted({level for forecast in fan.values() for level in data.interval_bounds(forecast)})
        st.caption(
            f"Each horizon has its own model; forecasts as of {as_of}, logged {newest['origin']} at "
            f"{newest['created_at']}. The shaded bands are the {_percents(levels)} intervals, widening "
            "with the horizon."
        )
        older = [
            f"{_ahead(horizon)} of {forecast['as_of']}"
            for horizon, forecast in forecasts.items()
            if horizon not in fan
        ]
        if older:
            st.caption(
                f"Not in the chart (no forecast as of {as_of} yet): {', '.join(older)}; "
                "`stockcast run` forecasts every horizon."
            )
    if forecasts:
        shown = tuple(forecast.get("id") for forecast in forecasts.values())
        written = data.summary(ticker, shown)
        with st.container(border=True, key="summary"):
            st.markdown(f"**In plain words** (trust: {written['trust']})")
            st.write(written["text"])
            if written["written_by"] == "llm":
                st.caption("Rewritten by the configured language model from `stockcast summary`'s template.")
    st.plotly_chart(fan_chart(ticker, bars, fan, anchor), key="forecast-chart")
    with st.form("fresh-forecast"):
        st.write(f"Ask the API ({data.api_url()}) for a forecast from the current online features.")
        if st.form_submit_button("Request a fresh forecast"):
            try:
                answer = data.request_forecast(ticker)
            except Exception as error:  # the API's refusal or its absence, said plainly
                st.error(f"No forecast: {error}. Is the API running (`stockcast serve`)?")
            else:
                st.success(fresh_forecast_text(answer))


def fresh_forecast_text(answer: dict[str, Any]) -> str:
    """The API's answer, one line per horizon it forecast (its top-level fields alone when it
    answered no ``forecasts``)."""
    lines = [f"{answer['ticker']} as of {answer.get('as_of', '–')}:"]
    for each in answer.get("forecasts") or [answer]:
        interval = each["interval"]
        lines.append(
            f"- {_ahead(int(each.get('horizon', 1)))}, {each['target_date']}: {each['predicted_close']:,.2f} "
            f"({interval['lower']:,.2f} – {interval['upper']:,.2f} at {interval['level']:.0%}), "
            f"model version {each['model']['version']}"
        )
    return "\n".join(lines)


def _last_close(bars: pd.DataFrame, fan: dict[int, dict[str, Any]]) -> float | None:
    """Where the fan starts: the close at the forecasts' as-of date, on their price basis (the
    close they were made from), else the stored bar's."""
    for forecast in fan.values():
        if forecast.get("last_close") is not None and not pd.isna(forecast["last_close"]):
            return float(forecast["last_close"])
    if fan and not bars.empty:
        as_of = pd.Timestamp(next(iter(fan.values()))["as_of"])
        close = bars.loc[bars["date"] == as_of, "close"]
        if not close.empty:
            return float(close.iloc[-1])
    return None


def horizon_table(forecasts: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """Each horizon's newest forecast: its target session, forecast and 90% interval."""
    rows = []
    for horizon, forecast in forecasts.items():
        lower, upper = data.interval_bounds(forecast).get(SHOWN_LEVEL, (None, None))
        rows.append(
            {
                "horizon": horizon,
                "target session": str(forecast["target_date"]),
                "forecast": forecast["predicted_close"],
                f"{SHOWN_LEVEL:.0%} lower": lower,
                f"{SHOWN_LEVEL:.0%} upper": upper,
                "as of": str(forecast["as_of"]),
                "model": forecast["model_name"],
                "version": forecast["model_version"],
                "kind": forecast["model_kind"],
            }
        )
    return pd.DataFrame(rows)


def fan_chart(
    ticker: str, bars: pd.DataFrame, fan: dict[int, dict[str, Any]], anchor: float | None
) -> go.Figure:
    """Recent bars as candles and, from the as-of date of ``fan`` (forecasts by horizon, all of
    one as-of date), a fan: per interval level a shaded band through each horizon's bounds at
    its target session, the forecasts joined by a dotted line, and one marker per horizon with
    its 90% interval. The bands start at the as-of close (``anchor``) when it is known."""
    figure = go.Figure(
        go.Candlestick(
            x=bars["date"],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name=ticker,
        )
    )
    if fan:
        as_of = pd.Timestamp(next(iter(fan.values()))["as_of"])
        start_x, start_y = ([as_of], [anchor]) if anchor is not None else ([], [])
        targets = {horizon: pd.Timestamp(forecast["target_date"]) for horizon, forecast in fan.items()}
        bounds = {horizon: data.interval_bounds(forecast) for horizon, forecast in fan.items()}
        levels = sorted({level for each in bounds.values() for level in each}, reverse=True)
        for level in levels:  # widest first: each narrower band is drawn over it
            reached = [horizon for horizon in fan if level in bounds[horizon]]
            x = start_x + [targets[horizon] for horizon in reached]
            group = f"interval {level:.0%}"
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=start_y + [bounds[horizon][level][1] for horizon in reached],
                    mode="lines",
                    line={"width": 0},
                    name=f"{level:.0%} upper",
                    legendgroup=group,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=start_y + [bounds[horizon][level][0] for horizon in reached],
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=f"rgba({BAND_RGB}, {BAND_OPACITY})",
                    name=f"{level:.0%} interval",
                    legendgroup=group,
                    hoverinfo="skip",
                )
            )
        figure.add_trace(
            go.Scatter(
                x=start_x + list(targets.values()),
                y=start_y + [forecast["predicted_close"] for forecast in fan.values()],
                mode="lines",
                line={"color": "royalblue", "dash": "dot", "width": 1.5},
                name="forecast path",
                hoverinfo="skip",
            )
        )
        for horizon, forecast in fan.items():
            predicted = forecast["predicted_close"]
            lower, upper = bounds[horizon].get(SHOWN_LEVEL, (predicted, predicted))
            figure.add_trace(
                go.Scatter(
                    x=[targets[horizon]],
                    y=[predicted],
                    mode="markers",
                    marker={"size": 9, "color": "royalblue", "symbol": "diamond"},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [upper - predicted],
                        "arrayminus": [predicted - lower],
                        "width": 4,
                    },
                    name=_ahead(horizon),
                    meta={"horizon": horizon},
                    hovertemplate=(
                        f"{_ahead(horizon)}, %{{x|%Y-%m-%d}}: %{{y:,.2f}}<br>"
                        f"{SHOWN_LEVEL:.0%}: {lower:,.2f} – {upper:,.2f}<extra></extra>"
                    ),
                )
            )
    figure.update_layout(
        height=460, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_rangeslider_visible=False
    )
    return figure


# -- History ------------------------------------------------------------------------------------
def _horizon_picker(key: str) -> int:
    """The horizon to show, among the configured ones (no choice to make when there is one)."""
    horizons = data.horizons()
    if len(horizons) == 1:
        return horizons[0]
    return int(st.radio("Horizon", horizons, format_func=_ahead, horizontal=True, key=key))


def history_page() -> None:
    st.header("Forecasts against what happened")
    ticker = _ticker_picker("history-ticker")
    if ticker is None:
        return
    horizon = _horizon_picker("history-horizon")
    log = data.forecast_log(ticker, horizon)
    if log.empty:
        st.info(
            f"No forecast {_ahead(horizon)} logged for {ticker} yet: run `stockcast run` on a few trading days."
        )
    else:
        _history_of(ticker, horizon, log)
    st.subheader("Every horizon")
    scores = data.horizon_scores(ticker, SHOWN_LEVEL)
    if not scores["scored"].any():
        st.info(
            f"No forecast of {ticker} scored yet at any horizon: each is scored once its target "
            "session's close is stored (`stockcast run`, or `stockcast actuals`)."
        )
        return
    st.dataframe(
        scores,
        hide_index=True,
        key="horizon-scores",
        column_config={
            "horizon": st.column_config.NumberColumn(format="%d"),
            "RMSE": st.column_config.NumberColumn(format="%.3f"),
            "naive RMSE": st.column_config.NumberColumn(format="%.3f"),
            "RMSE ÷ naive": st.column_config.NumberColumn(format="%.3f"),
            f"{SHOWN_LEVEL:.0%} coverage": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.caption(
        "Over each horizon's scored forecasts: the naive forecast is the close at the as-of date, "
        f"so RMSE ÷ naive below 1 is skill; coverage is the share of actuals inside the {SHOWN_LEVEL:.0%} "
        "interval, to compare with its nominal level."
    )


def _history_of(ticker: str, horizon: int, log: pd.DataFrame) -> None:
    """One horizon's forecasts against the actuals, its rolling errors and the table of them."""
    scored = log.dropna(subset=["actual_close"])
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=log["target_date"], y=log["upper"], line={"width": 0}, showlegend=False, hoverinfo="skip"
        )
    )
    figure.add_trace(
        go.Scatter(
            x=log["target_date"],
            y=log["lower"],
            fill="tonexty",
            line={"width": 0},
            name="interval",
            opacity=0.3,
        )
    )
    figure.add_trace(go.Scatter(x=log["target_date"], y=log["predicted_close"], name="forecast"))
    figure.add_trace(
        go.Scatter(x=scored["target_date"], y=scored["actual_close"], name="actual", mode="lines+markers")
    )
    figure.update_layout(
        title=f"{_ahead(horizon).capitalize()}, by target session",
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    st.plotly_chart(figure, key="history-chart")

    window = data.settings().drift_window
    rolling = views.rolling_errors(log, window)
    if rolling.empty:
        st.info(
            f"No forecast {_ahead(horizon)} has been scored yet: each is scored once its target session's "
            "close is stored (`stockcast actuals`)."
        )
    else:
        left, right = st.columns(2)
        errors = go.Figure()
        errors.add_trace(go.Scatter(x=rolling["target_date"], y=rolling["rmse"], name="champion"))
        errors.add_trace(go.Scatter(x=rolling["target_date"], y=rolling["naive_rmse"], name="naive"))
        errors.update_layout(title=f"Rolling RMSE ({window} sessions)", height=300, margin={"t": 40, "b": 10})
        left.plotly_chart(errors, key="rmse-chart")
        coverage = go.Figure(go.Scatter(x=rolling["target_date"], y=rolling["coverage"], name="coverage"))
        level = float(log["level"].iloc[-1])
        coverage.add_hline(y=level, line_dash="dot", annotation_text=f"nominal {level:.0%}")
        coverage.update_layout(
            title="Interval coverage", height=300, margin={"t": 40, "b": 10}, yaxis_tickformat=".0%"
        )
        right.plotly_chart(coverage, key="coverage-chart")
    shown = log[
        [
            "as_of",
            "target_date",
            "predicted_close",
            "lower",
            "upper",
            "actual_close",
            "error",
            "covered",
            "model_version",
            "origin",
        ]
    ]
    st.dataframe(shown, hide_index=True, key="history-table")
    st.download_button(
        "Download as CSV",
        shown.to_csv(index=False).encode(),
        file_name=f"{ticker}-forecasts.csv" if horizon == 1 else f"{ticker}-forecasts-{horizon}-sessions.csv",
        mime="text/csv",
    )


# -- Models -------------------------------------------------------------------------------------
def models_page() -> None:
    st.header("Models")
    tickers = tuple(data.settings().tickers)
    rows = []
    for entry in data.models(tickers, tuple(data.horizons())):
        for role in ("champion", "challenger"):
            version = entry[role]
            if version is None:
                continue
            rows.append(
                {
                    "ticker": entry["ticker"],
                    "horizon": entry["horizon"],
                    "role": role,
                    "version": version["version"],
                    "model": version["spec"] or version["kind"],
                    "RMSE": version["rmse"],
                    "naive RMSE": version["naive_rmse"],
                    "skill vs naive": version["skill_vs_naive"],
                    "p vs naive": version["p_value_vs_naive"],
                    "p vs champion": version["p_value_vs_champion"],
                    "RMSSE": version["rmsse"],
                    "MSIS": version["msis"],
                    "coverage": version["coverage"],
                    "data end": version["data_end"],
                    "promoted at": _promoted_at(entry["decisions"], version["version"]),
                    "MLflow run": data.mlflow_run_link(version["run_id"]) or version["run_id"],
                }
            )
    if not rows:
        st.info("No model registered yet: run `stockcast run` or `stockcast train`.")
        return
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={
            "horizon": st.column_config.NumberColumn(format="%d"),
            "skill vs naive": st.column_config.NumberColumn(format="%+.4f"),
            "p vs naive": st.column_config.NumberColumn(format="%.4f"),
            "p vs champion": st.column_config.NumberColumn(format="%.4f"),
            "RMSSE": st.column_config.NumberColumn(format="%.4f"),
            "MSIS": st.column_config.NumberColumn(format="%.3f"),
            "coverage": st.column_config.NumberColumn(format="percent"),
            "MLflow run": st.column_config.LinkColumn() if _links(rows) else st.column_config.TextColumn(),
        },
    )
    st.caption(
        "Every ticker has a model per horizon (sessions ahead), each with its own champion, backtest "
        "and promotion gate, the naive forecast at a horizon being the close at the as-of date. "
        "Skill is 1 − RMSE ÷ naive RMSE on the walk-forward backtest. A model serves only when one-sided "
        "tests (DM-HLN) on the same window say it beats the naive forecast (Holm-adjusted over the "
        "candidates) and a champion that still beats naive; p is the p-value the decision used. "
        "RMSSE and MSIS are scaled by the naive forecast's in-sample errors, so they compare across tickers."
    )
    st.subheader("Promotion history")
    history = data.decisions()
    if history.empty:
        st.info("No decisions yet.")
    else:
        columns = [
            "decided_at",
            "ticker",
            "horizon",
            "action",
            "trigger",
            "promoted",
            "challenger_version",
            "champion_version",
            "test_vs_naive",
            "p_value_vs_naive",
            "test_vs_champion",
            "p_value_vs_champion",
            "reason",
        ]
        st.dataframe(history[[c for c in columns if c in history]], hide_index=True)


def _links(rows: list[dict[str, Any]]) -> bool:
    return any(str(row["MLflow run"] or "").startswith("http") for row in rows)


def _promoted_at(decisions: list[dict[str, Any]], version: str) -> str | None:
    for decision in decisions:  # newest first
        if decision["promoted"] and decision["challenger_version"] == version:
            return str(decision["decided_at"])[:16]
    return None


# -- Monitoring ---------------------------------------------------------------------------------
def monitoring_page() -> None:
    st.header("Monitoring")
    entries = data.monitoring()
    if not entries:
        st.info(
            "No ticker monitored yet: `stockcast run` monitors after forecasting (or run `stockcast monitor`)."
        )
        return
    table = pd.DataFrame(
        [
            {
                "ticker": entry["ticker"],
                "horizon": entry["horizon"],
                "status": entry["status"],
                "as of": entry["as_of"],
                "version": entry["model_version"],
                "scored": entry["evaluated"],
                "RMSE ÷ backtest": entry["rmse_ratio"],
                "coverage": entry["coverage"],
                "drifted features": ", ".join(entry["drifted_features"]) or "–",
                "reason": entry["reason"],
            }
            for entry in entries
        ]
    )
    st.dataframe(
        table.style.map(lambda status: f"color: {STATUS_COLOURS.get(status, 'black')}", subset=["status"]),
        hide_index=True,
        column_config={
            "horizon": st.column_config.NumberColumn(format="%d"),
            "coverage": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.caption(
        "The latest verdict of each ticker's champion at each horizon: its rolling errors against "
        "its backtest's and its interval coverage. The inputs are the same at every horizon, so "
        "drift and the Evidently report are per ticker."
    )
    tickers = list(dict.fromkeys(entry["ticker"] for entry in entries))
    chosen = st.selectbox("Evidently report of", tickers, key="report-ticker")
    # The reports are written with the shortest horizon's verdict; any row naming one will do.
    entry = next((item for item in entries if item["ticker"] == chosen and item.get("report_uri")), None)
    html = data.report_html(entry["report_uri"]) if entry is not None else None
    if entry is None or html is None:
        st.info(f"No Evidently report for {chosen} yet: `stockcast monitor --reports` writes one.")
    else:
        st.caption(
            f"Data drift of {chosen}'s features, report of {entry.get('report_as_of')}: {entry['report_uri']}"
        )
        with st.expander("Show the report", expanded=False):
            st.components.v1.html(html, height=700, scrolling=True)
    st.subheader("Recent retraining decisions")
    decisions = data.decisions()
    retrained = decisions.loc[decisions["action"] == "train"] if not decisions.empty else decisions
    if retrained.empty:
        st.info("No training decisions yet.")
    else:
        columns = ["decided_at", "ticker", "horizon", "trigger", "promoted", "challenger_version", "reason"]
        st.dataframe(retrained[[c for c in columns if c in retrained]].head(20), hide_index=True)
    st.subheader("Recent jobs")
    jobs = data.jobs()
    if jobs.empty:
        st.info("No jobs yet: POST /train on the API queues one.")
    else:
        st.dataframe(
            jobs[
                ["id", "kind", "status", "tickers", "owner", "attempts", "created_at", "finished_at", "error"]
            ],
            hide_index=True,
        )


PAGES = {
    "forecast": ("Forecast", forecast_page),
    "history": ("History", history_page),
    "models": ("Models", models_page),
    "monitoring": ("Monitoring", monitoring_page),
}
