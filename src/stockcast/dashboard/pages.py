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


# -- Forecast -----------------------------------------------------------------------------------
def forecast_page() -> None:
    st.header("Next-session forecast")
    ticker = _ticker_picker("forecast-ticker")
    if ticker is None:
        return
    bars = data.recent_bars(ticker)
    forecast = data.latest_forecast(ticker)
    if forecast is None:
        st.info(f"No forecast logged for {ticker} yet: run `stockcast run` (or `stockcast predict`).")
    else:
        columns = st.columns([1, 1.6, 1, 1])
        columns[0].metric("Forecast close", _number(forecast["predicted_close"]))
        columns[1].metric("Interval", f"{forecast['lower']:,.2f} – {forecast['upper']:,.2f}")
        columns[2].metric("Target session", str(forecast["target_date"]))
        columns[3].metric("As of", str(forecast["as_of"]))
        st.caption(
            f"Model {forecast['model_name']} version {forecast['model_version']} ({forecast['model_kind']}), "
            f"{forecast['level']:.0%} interval, logged {forecast['origin']} at {forecast['created_at']}."
        )
    if forecast is not None:
        written = data.summary(ticker, forecast.get("id"))
        with st.container(border=True, key="summary"):
            st.markdown(f"**In plain words** (trust: {written['trust']})")
            st.write(written["text"])
            if written["written_by"] == "llm":
                st.caption("Rewritten by the configured language model from `stockcast summary`'s template.")
    st.plotly_chart(candles(ticker, bars, forecast), use_container_width=True, key="forecast-chart")
    with st.form("fresh-forecast"):
        st.write(f"Ask the API ({data.api_url()}) for a forecast from the current online features.")
        if st.form_submit_button("Request a fresh forecast"):
            try:
                answer = data.request_forecast(ticker)
            except Exception as error:  # the API's refusal or its absence, said plainly
                st.error(f"No forecast: {error}. Is the API running (`stockcast serve`)?")
            else:
                st.success(
                    f"{answer['ticker']} {answer['target_date']}: {answer['predicted_close']:,.2f} "
                    f"({answer['interval']['lower']:,.2f} – {answer['interval']['upper']:,.2f}), "
                    f"model version {answer['model']['version']}"
                )


def candles(ticker: str, bars: pd.DataFrame, forecast: dict[str, Any] | None) -> go.Figure:
    """Recent bars as candles with the forecast and its interval drawn at the target session."""
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
    if forecast is not None:
        target = pd.Timestamp(forecast["target_date"])
        figure.add_trace(
            go.Scatter(
                x=[target],
                y=[forecast["predicted_close"]],
                mode="markers",
                marker={"size": 10, "color": "royalblue", "symbol": "diamond"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [forecast["upper"] - forecast["predicted_close"]],
                    "arrayminus": [forecast["predicted_close"] - forecast["lower"]],
                },
                name=f"forecast {forecast['level']:.0%}",
            )
        )
    figure.update_layout(
        height=460, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_rangeslider_visible=False
    )
    return figure


# -- History ------------------------------------------------------------------------------------
def history_page() -> None:
    st.header("Forecasts against what happened")
    ticker = _ticker_picker("history-ticker")
    if ticker is None:
        return
    log = data.forecast_log(ticker)
    if log.empty:
        st.info(f"No forecasts logged for {ticker} yet: run `stockcast run` on a few trading days.")
        return
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
    figure.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    st.plotly_chart(figure, use_container_width=True, key="history-chart")

    window = data.settings().drift_window
    rolling = views.rolling_errors(log, window)
    if rolling.empty:
        st.info(
            "No forecast has been scored yet: actuals arrive the session after each forecast (`stockcast actuals`)."
        )
    else:
        left, right = st.columns(2)
        errors = go.Figure()
        errors.add_trace(go.Scatter(x=rolling["target_date"], y=rolling["rmse"], name="champion"))
        errors.add_trace(go.Scatter(x=rolling["target_date"], y=rolling["naive_rmse"], name="naive"))
        errors.update_layout(title=f"Rolling RMSE ({window} sessions)", height=300, margin={"t": 40, "b": 10})
        left.plotly_chart(errors, use_container_width=True, key="rmse-chart")
        coverage = go.Figure(go.Scatter(x=rolling["target_date"], y=rolling["coverage"], name="coverage"))
        level = float(log["level"].iloc[-1])
        coverage.add_hline(y=level, line_dash="dot", annotation_text=f"nominal {level:.0%}")
        coverage.update_layout(
            title="Interval coverage", height=300, margin={"t": 40, "b": 10}, yaxis_tickformat=".0%"
        )
        right.plotly_chart(coverage, use_container_width=True, key="coverage-chart")
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
    st.dataframe(shown, hide_index=True, use_container_width=True)
    st.download_button(
        "Download as CSV",
        shown.to_csv(index=False).encode(),
        file_name=f"{ticker}-forecasts.csv",
        mime="text/csv",
    )


# -- Models -------------------------------------------------------------------------------------
def models_page() -> None:
    st.header("Models")
    tickers = tuple(data.settings().tickers)
    rows = []
    for entry in data.models(tickers):
        for role in ("champion", "challenger"):
            version = entry[role]
            if version is None:
                continue
            rows.append(
                {
                    "ticker": entry["ticker"],
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
        use_container_width=True,
        column_config={
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
        st.dataframe(history[[c for c in columns if c in history]], hide_index=True, use_container_width=True)


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
        use_container_width=True,
        column_config={"coverage": st.column_config.NumberColumn(format="percent")},
    )
    chosen = st.selectbox("Evidently report of", [entry["ticker"] for entry in entries], key="report-ticker")
    entry = next(item for item in entries if item["ticker"] == chosen)
    html = data.report_html(entry["report_uri"]) if entry.get("report_uri") else None
    if html is None:
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
        st.dataframe(
            retrained[["decided_at", "ticker", "trigger", "promoted", "challenger_version", "reason"]].head(
                20
            ),
            hide_index=True,
            use_container_width=True,
        )
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
            use_container_width=True,
        )


PAGES = {
    "forecast": ("Forecast", forecast_page),
    "history": ("History", history_page),
    "models": ("Models", models_page),
    "monitoring": ("Monitoring", monitoring_page),
}
