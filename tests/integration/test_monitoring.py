"""Monitoring end to end on real stores: scored forecasts -> verdict, Evidently reports in the
artifact store, gauges, the API's view, and a drift-triggered retraining on record."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.e2e.test_daily_cycle import run_cli
from tests.series import autocorrelated_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.lifecycle.promote import promote
from stockcast.monitoring.actuals import fill_actuals
from stockcast.monitoring.gauges import STATUS_CODES
from stockcast.monitoring.monitor import monitor
from stockcast.monitoring.reports import report_prefix
from stockcast.pipeline import retrain_drifted, train_many
from stockcast.settings import load_settings

SETTINGS = {"backtest_days": 100, "min_train_days": 150, "refit_every_days": 50, "models": "naive,ridge"}


@pytest.fixture
def context():
    """A champion trained on all but the last 40 sessions, which have arrived since."""
    context = Context(load_settings(tickers="AAA", **SETTINGS))
    bars = autocorrelated_bars(600, phi=0.6)
    context.store.upsert_prices(bars.iloc[:-40])
    refresh_feature_store(context)
    _, failures = train_many(context, ["AAA"], force=True)
    assert not failures
    context.store.upsert_prices(bars)
    refresh_feature_store(context)
    return context


INTERVALS = ((0.5, 0.003), (0.8, 0.006), (0.9, 0.01))  # level, half-width as a fraction


def log_daily_forecasts(context: Context, days: int, shifted: int, bias: float) -> None:
    """One batch forecast per session for the last ``days`` sessions by the champion: close to
    the naive forecast, except that the last ``shifted`` are off by ``bias`` (a level shift)."""
    champion = context.registry.champion("AAA")
    bars = context.store.load_prices(["AAA"]).tail(days + 1)
    records = []
    for position, (as_of, close) in enumerate(
        zip(bars["date"].iloc[:-1], bars["close"].iloc[:-1], strict=True)
    ):
        predicted = close * (1 + (bias if position >= days - shifted else 0.0005))
        records.append(
            {
                "request_id": f"batch:AAA:{as_of.date()}",
                "ticker": "AAA",
                "as_of": as_of.date(),
                "target_date": (as_of + pd.offsets.BDay(1)).date(),
                "predicted_close": predicted,
                "last_close": close,
                "lower": predicted * 0.99,
                "upper": predicted * 1.01,
                "level": 0.9,
                "intervals": json.dumps(
                    [[level, predicted * (1 - width), predicted * (1 + width)] for level, width in INTERVALS]
                ),
                "model_name": champion.name,
                "model_version": champion.version,
                "model_kind": champion.kind,
                "origin": "batch",
                "features": None,
                "created_at": None,
            }
        )
    context.store.log_forecasts(records)


def test_live_scores_are_counted_per_level_from_the_logged_intervals(context):
    """Coverage at 50, 80 and 90% is the share of actuals inside each logged interval; RMSSE
    divides by the naive one-step RMSE of the closes before the window; all stored and served."""
    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    [health] = monitor(context, ["AAA"], reports=False)
    window = context.settings.drift_window
    scored = context.store.load_forecasts(ticker="AAA").sort_values("as_of").tail(window)
    actual, predicted = scored["actual_close"], scored["predicted_close"]
    for level, width in INTERVALS:
        inside = (actual >= predicted * (1 - width)) & (actual <= predicted * (1 + width))
        assert health.scores[f"coverage_{round(level * 100)}"] == pytest.approx(inside.mean())
    closes = context.store.load_prices(["AAA"], end=scored["as_of"].iloc[0])["close"]
    naive_mse = (closes.diff().dropna() ** 2).mean()
    rmse = ((actual - predicted) ** 2).mean() ** 0.5
    assert health.scores["rmsse"] == pytest.approx(rmse / naive_mse**0.5)
    assert health.scores["msis_90"] > 0
    # Every forecast called "up": right as often as the market rose, which is no skill, so no
    # direction test is stored (never a NaN).
    assert "direction_p_value" not in health.scores and 0 < health.scores["direction_base_rate"] < 1
    assert json.loads(context.store.load_monitoring("AAA").iloc[-1]["scores"]) == pytest.approx(health.scores)

    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        assert client.get("/monitoring/AAA").json()["scores"] == pytest.approx(health.scores)


def test_a_level_shift_is_drift_with_reports_gauges_and_a_recorded_retraining(context):
    log_daily_forecasts(context, days=40, shifted=12, bias=0.08)
    assert fill_actuals(context, ["AAA"]).filled == 40

    [health] = monitor(context, ["AAA"])
    assert health.status == "drift" and health.performance.days_above >= context.settings.drift_days
    assert health.performance.ratio > context.settings.drift_threshold
    assert health.performance.evaluated == 40
    prefix = report_prefix("AAA", health.as_of)
    written = set(context.artifacts.list(prefix))
    for name in ("data_drift", "performance"):
        assert any(path.endswith(f"{name}.html") for path in written)
        assert any(path.endswith(f"{name}.json") for path in written)
    assert 0.0 <= health.drift_share <= 1.0 and health.report_uri.endswith(prefix)
    stored = context.store.load_monitoring("AAA").iloc[-1]
    assert stored["status"] == "drift" and stored["rmse_ratio"] == pytest.approx(health.performance.ratio)

    monitor(context, ["AAA"], reports=False)  # the same day again replaces its row
    assert len(context.store.load_monitoring("AAA")) == 1

    before = context.registry.champion("AAA")
    [first] = context.store.load_decisions("AAA").itertuples()
    retrained, failures = retrain_drifted(context, ["AAA"])
    assert not failures and [report.ticker for report in retrained] == ["AAA"]
    [report] = retrained
    # The gate judged the refit against the champion it would replace, on a window that now
    # reaches into the 40 sessions that arrived since, and promoted it: still beats naive.
    decisions = context.store.load_decisions("AAA")
    assert len(decisions) == 2
    decision = decisions.iloc[-1]
    assert (decision["action"], decision["trigger"], bool(decision["promoted"])) == ("train", "drift", True)
    assert decision["challenger_version"] == report.version != before.version
    assert decision["champion_version"] == before.version  # the one it was judged against
    assert report.champion_version == report.version  # the champion after the decision
    assert decision["challenger_spec"] == before.spec.key() == report.spec_key
    assert decision["reason"] == report.decision.reason
    assert decision["reason"].startswith(f"refit of the champion's {before.spec.key()} on newer data")
    assert decision["test_vs_naive"] == "DM-HLN" and decision["p_value_vs_naive"] < decision["alpha"]
    assert decision["window_end"] > first.window_end
    assert decision["challenger_rmse"] < decision["naive_rmse"]
    assert context.registry.champion("AAA").version == report.version  # the alias moved
    assert retrain_drifted(context, ["AAA"]) == ([], {})  # just retrained: waits for new days
    assert len(context.store.load_decisions("AAA")) == 2

    from stockcast.serving.app import create_app

    with TestClient(create_app(context.settings)) as client:
        status = client.get("/monitoring/aaa").json()
        assert status["status"] == "drift" and status["history"][-1]["status"] == "drift"
        assert client.get("/monitoring/ZZZ").status_code == 404
        assert [entry["ticker"] for entry in client.get("/monitoring").json()] == ["AAA"]
        metrics = client.get("/metrics").text
        assert 'stockcast_monitor_status{horizon="1",ticker="AAA"} 2.0' in metrics
        assert 'stockcast_monitor_rmse_ratio{horizon="1",ticker="AAA"}' in metrics
        assert 'stockcast_last_forecast_timestamp_seconds{ticker="AAA"}' in metrics
        models = client.get("/models/AAA").json()
        newest = models["decisions"][0]
        assert (newest["trigger"], newest["promoted"]) == ("drift", True)
        assert (newest["challenger_version"], newest["champion_version"]) == (report.version, before.version)
        assert models["champion"]["version"] == models["served_version"] == report.version


def test_a_steady_champion_is_ok_and_the_command_prints_it(context):
    """Its errors are as the backtest promised. `--no-reports` writes no Evidently report but
    still computes the day's drift figures, a direct KS test of the same windows; the
    autoregressive series' slow features (moving averages, RSI, MACD) do differ between 20
    sessions and the 250 before, which puts it on watch, not on drift: nothing to retrain."""
    from scipy import stats

    from stockcast.features.build import FEATURE_COLUMNS, build_features

    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    env = {"STOCKCAST_DATA_DIR": str(context.settings.data_dir), "STOCKCAST_TICKERS": "AAA"}
    env |= {f"STOCKCAST_{key.upper()}": str(value) for key, value in SETTINGS.items()}
    result = run_cli("monitor", "--no-reports", env=env)
    assert result.returncode == 0, result.stderr
    stored = context.store.load_monitoring("AAA").iloc[-1]
    assert stored["reason"].startswith("errors ") and "x the backtest RMSE" in stored["reason"]
    assert "AAA" in result.stdout and stored["status"] in result.stdout
    assert stored["report_uri"] is None and not context.artifacts.list("reports")

    data_end = context.registry.champion("AAA").tags["data_end"]
    features = build_features(context.store.load_prices(["AAA"])).dropna(subset=FEATURE_COLUMNS)
    current = features.tail(context.settings.drift_window)
    reference = features.loc[
        (features["date"] < current["date"].iloc[0]) & (features["date"] <= data_end)
    ].tail(context.settings.reference_days)
    expected = [
        column
        for column in FEATURE_COLUMNS
        if stats.ks_2samp(reference[column], current[column]).pvalue <= 0.05
    ]
    assert json.loads(stored["drifted_features"]) == expected
    assert stored["drift_share"] == pytest.approx(len(expected) / len(FEATURE_COLUMNS))
    assert stored["status"] == ("watch" if stored["drift_share"] >= 0.5 else "ok")
    again = run_cli("retrain", env=env)
    assert again.returncode == 0 and "nothing to retrain" in again.stdout


def test_reports_are_written_when_due_and_days_between_point_to_the_latest(context):
    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    [first] = monitor(context, ["AAA"])  # no report yet: written
    assert first.report_written and first.report_as_of == first.as_of and first.drift_share is not None
    prefix = report_prefix("AAA", first.as_of)
    stamps = {path: context.artifacts.read_bytes(path) for path in context.artifacts.list(prefix)}
    assert any(path.endswith("data_drift.json") for path in stamps)

    # The same day, same champion: the report stands; the drift figures are the day's own,
    # computed again on the same windows, so they are the report's.
    [again] = monitor(context, ["AAA"])
    assert not again.report_written
    assert (again.drift_share, again.drifted_features, again.report_uri, again.report_as_of) == (
        first.drift_share,
        first.drifted_features,
        first.report_uri,
        first.report_as_of,
    )
    stored = context.store.load_monitoring("AAA").iloc[-1]
    assert stored["report_as_of"] == first.as_of and stored["drift_share"] == pytest.approx(first.drift_share)

    [forced] = monitor(context, ["AAA"], reports=True)  # `stockcast monitor --reports`
    assert forced.report_written

    [trained], _ = train_many(context, ["AAA"], force=True)
    promote(context, "AAA", trained.version, force=True)
    [after] = monitor(context, ["AAA"])  # a new champion is judged on its own reference window
    assert after.report_written and after.model_version == trained.version != first.model_version


def test_with_reports_when_due_off_only_an_explicit_request_writes_them(context):
    context.settings = context.settings.model_copy(update={"reports_when_due": False})
    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    [quiet] = monitor(context, ["AAA"])  # due (no report yet), but the daily cycle leaves it
    assert not quiet.report_written and quiet.report_uri is None and quiet.performance.evaluated == 30
    [asked] = monitor(context, ["AAA"], reports=True)  # `stockcast monitor --reports`
    assert asked.report_written and asked.report_uri


@pytest.fixture
def pushgateway(tmp_path):
    """Debian's Prometheus Pushgateway on a free loopback port."""
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is missing: `make test` installs it")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the Pushgateway did not start")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_batch_monitoring_pushes_its_gauges_to_the_pushgateway(context, pushgateway):
    import urllib.request

    log_daily_forecasts(context, days=30, shifted=0, bias=0.0)
    fill_actuals(context, ["AAA"])
    context.settings.pushgateway_url = pushgateway
    [health] = monitor(context, ["AAA"], reports=False)
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as answer:
        exposed = answer.read().decode()
    code = f"{STATUS_CODES[health.status]:g}"  # as the Pushgateway writes it: 0, 1
    assert (
        f'stockcast_monitor_status{{horizon="1",instance="",job="stockcast-monitor",ticker="AAA"}} {code}'
        in exposed
    )
    assert (
        'stockcast_monitor_rmse_ratio{horizon="1",instance="",job="stockcast-monitor",ticker="AAA"}'
        in exposed
    )
