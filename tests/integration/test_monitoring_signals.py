"""Every monitoring signal shown to fire, on a real SQLite store built from the bundled sample.

Two of the sample's tickers, each with a champion trained up to June 2005 and 40 sessions
since. MSFT's returns over those sessions are amplified fourfold (a volatility shock; the
calendar and the volume untouched) while its logged forecasts stay close to what happened: only
its inputs changed. AAPL keeps its real bars and is forecast naively with intervals far too
narrow. Through `monitor` (what `stockcast monitor` runs), the API's /metrics, the real alert
rules (promtool), and Prometheus, Alertmanager and a webhook, an SMTP server and a
Slack-compatible endpoint on 127.0.0.1: MSFT's drifted features, its watch status and its
feature-drift alert; AAPL's low coverage and its alert; neither the other's.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from tests.services import _http_ok, free_port, wait_until

from stockcast.context import Context
from stockcast.features.build import FEATURE_COLUMNS, build_features
from stockcast.features.offline import refresh_feature_store
from stockcast.monitoring.actuals import fill_actuals
from stockcast.monitoring.gauges import STATUS_CODES
from stockcast.monitoring.monitor import monitor
from stockcast.pipeline import train_many
from stockcast.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager"
SETTINGS = {
    "models": "naive",
    "horizons": "1",
    "backtest_days": 100,
    "min_train_days": 150,
    "refit_every_days": 50,
}
SHIFTED, NARROW = "MSFT", "AAPL"
TICKERS = [SHIFTED, NARROW]
FIRST_SESSION = pd.Timestamp("2004-01-02")
NEW_FROM = pd.Timestamp("2005-06-01")  # the champions' data ends the session before
NEW_SESSIONS = 40
AMPLIFY = 4.0
REFERENCE_DAYS, CURRENT_DAYS = 250, 20  # the settings' defaults, which the report compares
KS_ALPHA = 0.05  # the report's per-feature test level


def amplified(bars: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The bars after the first with their daily log returns multiplied by ``factor``: every
    price of a session scaled alike, so its range and gaps keep their shape."""
    closes = bars["close"].to_numpy(float)
    log_returns = np.diff(np.log(closes))
    new_closes = closes[0] * np.exp(np.cumsum(factor * log_returns))
    scale = new_closes / closes[1:]
    shifted = bars.iloc[1:].copy()
    for column in ("open", "high", "low", "close", "adj_close"):
        shifted[column] = shifted[column].to_numpy(float) * scale
    return shifted


def forecast_records(champion: Any, bars: pd.DataFrame, accurate: bool, half_width: float) -> list[dict]:
    """One daily batch forecast by ``champion`` per new session but the last. ``accurate``: within 0.1% of the
    next close (errors that give no reason for concern); else the naive forecast (today's
    close). Intervals of ``half_width`` around the forecast at 90%."""
    ticker = champion.ticker
    records = []
    for position in range(len(bars) - 1):
        today, tomorrow = bars.iloc[position], bars.iloc[position + 1]
        predicted = tomorrow["close"] * (1 + 0.001 * (-1) ** position) if accurate else float(today["close"])
        lower, upper = predicted * (1 - half_width), predicted * (1 + half_width)
        records.append(
            {
                "request_id": f"batch:{ticker}:{today['date'].date()}",
                "ticker": ticker,
                "as_of": today["date"].date(),
                "target_date": tomorrow["date"].date(),
                "predicted_close": predicted,
                "last_close": float(today["close"]),
                "lower": lower,
                "upper": upper,
                "level": 0.9,
                "intervals": json.dumps([[0.9, lower, upper]]),
                "model_name": champion.name,
                "model_version": champion.version,
                "model_kind": champion.kind,
                "origin": "batch",
                "features": None,
                "created_at": None,
            }
        )
    return records


@dataclass
class Monitored:
    settings: Settings
    bars: pd.DataFrame  # what the store holds: the sample, MSFT's new sessions amplified
    real: pd.DataFrame  # the sample's own bars over the same sessions

    def context(self, **overrides: Any) -> Context:
        return Context(self.settings.model_copy(update=overrides) if overrides else self.settings)


@pytest.fixture(scope="module")
def monitored(sample_bars, tmp_path_factory) -> Iterator[Monitored]:
    folder = tmp_path_factory.mktemp("signals")
    with pytest.MonkeyPatch.context() as patch:
        # MLflow's variable too: a module fixture of an earlier file may have left it set, and
        # the settings the tests load later (without it) would name another registry.
        for name in [
            name for name in os.environ if name.startswith("STOCKCAST_") or name == "MLFLOW_TRACKING_URI"
        ]:
            patch.delenv(name)
        patch.chdir(folder)
        settings = load_settings(tickers=",".join(TICKERS), data_dir=folder / "data", **SETTINGS)
        frames, real = [], []
        for ticker in TICKERS:
            bars = sample_bars.loc[(sample_bars["ticker"] == ticker) & (sample_bars["date"] >= FIRST_SESSION)]
            history = bars.loc[bars["date"] < NEW_FROM]
            new = bars.loc[bars["date"] >= NEW_FROM].head(NEW_SESSIONS)
            real.append(pd.concat([history, new]))
            if ticker == SHIFTED:
                new = amplified(pd.concat([history.tail(1), new]), AMPLIFY)
            frames.append((history, new))
        context = Context(settings)
        context.store.upsert_prices(pd.concat([history for history, _ in frames]))
        refresh_feature_store(context)
        _, failures = train_many(context, TICKERS, force=True)
        assert not failures
        context.store.upsert_prices(pd.concat([new for _, new in frames]))
        refresh_feature_store(context)
        news = dict(zip(TICKERS, (new for _, new in frames), strict=True))
        champions = {ticker: context.registry.champion(ticker) for ticker in TICKERS}
        context.store.log_forecasts(
            forecast_records(champions[SHIFTED], news[SHIFTED], accurate=True, half_width=0.03)
            + forecast_records(champions[NARROW], news[NARROW], accurate=False, half_width=0.002)
        )
        assert fill_actuals(context, TICKERS).filled == 2 * (NEW_SESSIONS - 1)
        context.store.dispose()
        yield Monitored(
            settings,
            pd.concat([frame for pair in frames for frame in pair], ignore_index=True),
            pd.concat(real, ignore_index=True),
        )


def ks_drifted(bars: pd.DataFrame, ticker: str) -> list[str]:
    """The features whose last 20 sessions differ from the 250 before the new sessions by a
    two-sample Kolmogorov-Smirnov test at 5%: computed here, without Evidently."""
    features = build_features(bars.loc[bars["ticker"] == ticker]).dropna(subset=FEATURE_COLUMNS)
    current = features.tail(CURRENT_DAYS)
    reference = features.loc[features["date"] < NEW_FROM].tail(REFERENCE_DAYS)
    return [
        column
        for column in FEATURE_COLUMNS
        if stats.ks_2samp(reference[column], current[column]).pvalue <= KS_ALPHA
    ]


def exported(settings: Settings) -> dict[str, dict[str, float]]:
    """The API's /metrics: each stockcast_monitor_* gauge by ticker ("" without one)."""
    from stockcast.serving.app import create_app

    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    gauges: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("stockcast_monitor_"):
            for sample in family.samples:
                # One horizon here (SETTINGS): every per-ticker gauge is labelled with it.
                assert sample.labels.get("horizon", "1") == "1", sample
                gauges.setdefault(sample.name, {})[sample.labels.get("ticker", "")] = sample.value
    return gauges


# -- the alert rules on the exported figures (promtool) ---------------------------------------
def go_percentage(value: float) -> str:
    """Prometheus's humanizePercentage (Go's %.4g of the value times 100)."""
    return f"{value * 100:.4g}%"


def expected_annotations(alertname: str, labels: dict[str, str], value: float) -> dict[str, str]:
    """The rule's annotations for an alert with these labels, filled in as Prometheus fills
    the few templates they use."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    [rule] = [rule for group in rules["groups"] for rule in group["rules"] if rule.get("alert") == alertname]
    filled = {}
    for key, template in rule["annotations"].items():
        text = template.replace("{{ $value | humanizePercentage }}", go_percentage(value))
        # The horizon after the ticker, when it is not the next session: "MSFT +5", "MSFT".
        ahead = labels.get("horizon", "")
        text = re.sub(
            r'\{\{ if and \$labels\.horizon \(ne \$labels\.horizon "1"\) \}\} \+\{\{ \$labels\.horizon \}\}\{\{ end \}\}',
            f" +{ahead}" if ahead not in ("", "1") else "",
            text,
        )
        for name, label in labels.items():
            text = text.replace(f"{{{{ $labels.{name} }}}}", label)
        assert "{{" not in text, f"{alertname}: a template this test cannot fill: {template}"
        filled[key] = text
    return filled


def series_name(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


def promtool_fires(
    tmp_path: Path,
    gauges: dict[str, dict[str, float]],
    expected: dict[str, list[dict[str, Any]]],
    extra_series: dict[str, str] | None = None,
) -> None:
    """deploy/prometheus/alerts.yml on these gauges, scraped from the API every minute for
    three hours: at 2 h (past every ``for``), each alert named in ``expected`` has fired for
    exactly the listed labels and annotations."""
    job = {"job": "stockcast-api", "instance": "api:8000"}
    series = [
        {
            "series": series_name(name, job | ({"ticker": ticker, "horizon": "1"} if ticker else {})),
            "values": f"{value!r}x180",
        }
        for name, by_ticker in gauges.items()
        for ticker, value in by_ticker.items()
    ]
    series += [{"series": name, "values": values} for name, values in (extra_series or {}).items()]
    document = {
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "2h", "alertname": alertname, "exp_alerts": alerts}
                    for alertname, alerts in expected.items()
                ],
            }
        ],
    }
    test_file = tmp_path / "signals_test.yml"
    test_file.write_text(yaml.safe_dump(document))
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    tested = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def firing(alertname: str, labels: dict[str, str], value: float = 0.0) -> dict[str, Any]:
    """What promtool should see of one firing alert: its labels and filled annotations."""
    return {"exp_labels": labels, "exp_annotations": expected_annotations(alertname, labels, value)}


def test_shifted_features_are_named_stored_exported_and_alerted(monitored, tmp_path, caplog):
    """The drift verdicts for MSFT's amplified returns match a direct KS test, name the
    volatility features among them, are stored with the share, put MSFT on watch though its
    errors are fine, and reach /metrics and the feature-drift alert; AAPL's real bars stay
    below the watch share and out of that alert."""
    context = monitored.context()
    with caplog.at_level(logging.WARNING, logger="stockcast.monitoring.monitor"):
        healths = {health.ticker: health for health in monitor(context, TICKERS, reports=True, html=False)}
    shifted, steady = healths[SHIFTED], healths[NARROW]
    # The reports were written, and their Evidently figures agreed with the daily ones (the
    # monitor warns when they do not).
    assert shifted.report_written and steady.report_written
    assert not [record for record in caplog.records if "Evidently's report names" in record.getMessage()]
    watch_share = context.settings.drift_share_watch

    expected = ks_drifted(monitored.bars, SHIFTED)
    assert shifted.drifted_features == expected
    assert {"volatility_5", "volatility_20", "log_ret_1", "ret_1"} <= set(expected)
    assert "day_of_week" not in expected and "volume_z_20" not in expected  # untouched
    assert shifted.drift_share == pytest.approx(len(expected) / len(FEATURE_COLUMNS))
    assert shifted.drift_share >= watch_share
    # Before the shift the same ticker's windows were not drifted: the shift is the cause.
    assert len(ks_drifted(monitored.real, SHIFTED)) / len(FEATURE_COLUMNS) < watch_share
    assert shifted.performance.status == "ok" and shifted.status == "watch"
    assert f"{shifted.drift_share:.0%} of features drifted ({', '.join(expected)})" in shifted.reason

    assert steady.drifted_features == ks_drifted(monitored.bars, NARROW)
    assert steady.drift_share == pytest.approx(len(steady.drifted_features) / len(FEATURE_COLUMNS))
    assert steady.drift_share < watch_share and steady.status == steady.performance.status != "watch"

    stored = context.store.load_monitoring(latest_only=True).set_index("ticker")
    assert json.loads(stored.loc[SHIFTED, "drifted_features"]) == expected
    assert stored.loc[SHIFTED, "drift_share"] == pytest.approx(shifted.drift_share)
    assert stored.loc[SHIFTED, "status"] == "watch"
    assert stored.loc[SHIFTED, "report_uri"] == shifted.report_uri
    assert json.loads(stored.loc[NARROW, "drifted_features"]) == steady.drifted_features
    assert stored.loc[NARROW, "status"] == steady.status

    gauges = exported(context.settings)
    shares = gauges["stockcast_monitor_drifted_feature_share"]
    assert shares == pytest.approx({SHIFTED: shifted.drift_share, NARROW: steady.drift_share})
    assert gauges["stockcast_monitor_status"] == {
        SHIFTED: STATUS_CODES["watch"],
        NARROW: STATUS_CODES[steady.status],
    }
    assert gauges["stockcast_monitor_store_up"] == {"": 1.0}

    promtool_fires(
        tmp_path,
        gauges,
        {
            "StockcastFeatureDrift": [
                firing("StockcastFeatureDrift", {"severity": "warning", "ticker": SHIFTED}, shares[SHIFTED])
            ],
            "StockcastDrift": [],
            "StockcastMonitoringStoreUnreachable": [],
            "StockcastMonitoringAbsent": [],
        },
    )


# Real windows of the bundled sample: (ticker, as-of date, the champion's data end). Calm and
# turbulent stretches, reference windows right before the current one and a year before it.
REAL_WINDOWS = [
    ("AAPL", "2005-07-29", "2005-05-31"),
    ("MSFT", "2008-10-31", "2008-09-30"),
    ("GOOG", "2008-11-28", "2007-12-31"),
    ("IBM", "2009-03-31", "2009-02-27"),
    ("AAPL", "2011-08-31", "2011-07-29"),
    ("MSFT", "2012-06-29", "2011-06-30"),
    ("IBM", "2013-02-28", "2013-01-31"),
]


def test_the_daily_drift_figures_name_the_features_evidently_names(monitored, sample_bars):
    """The daily figures are computed without Evidently (feature_drift.py); on report days
    Evidently's data-drift report computes its own. Both run the same test, so on real windows
    they name the same features with the same share: the sample's tickers in calm and
    turbulent years, and MSFT's shifted and AAPL's real windows as the monitor takes them."""
    from stockcast.monitoring.feature_drift import drift_windows, feature_drift
    from stockcast.monitoring.reports import data_drift

    windows = []
    for ticker, as_of, data_end in REAL_WINDOWS:
        bars = sample_bars.loc[(sample_bars["ticker"] == ticker) & (sample_bars["date"] <= as_of)]
        features = build_features(bars).dropna(subset=FEATURE_COLUMNS)
        windows.append(drift_windows(features, pd.Timestamp(data_end).date(), CURRENT_DAYS, REFERENCE_DAYS))
    for ticker in TICKERS:
        bars = monitored.bars.loc[monitored.bars["ticker"] == ticker]
        features = build_features(bars).dropna(subset=FEATURE_COLUMNS)
        data_end = features.loc[features["date"] < NEW_FROM, "date"].iloc[-1].date()
        windows.append(drift_windows(features, data_end, CURRENT_DAYS, REFERENCE_DAYS))
    counts = []
    for reference, current in windows:
        assert len(reference) == REFERENCE_DAYS and len(current) == CURRENT_DAYS
        daily = feature_drift(reference, current)
        _, share, drifted = data_drift(reference, current)
        assert daily is not None and daily.drifted == drifted and daily.share == pytest.approx(share)
        counts.append(len(drifted))
    # Windows with a few drifted features and windows with many: the comparison is not empty.
    assert min(counts) <= 8 and max(counts) >= 20, counts


def test_a_ticker_goes_on_watch_at_the_configured_share_and_not_below_it(monitored, monkeypatch):
    """STOCKCAST_DRIFT_SHARE_WATCH set to MSFT's share puts it on watch; the next float above
    keeps the verdict its errors give (ok), in the result, the table and the gauge."""
    [reported] = monitor(monitored.context(), [SHIFTED])
    share = reported.drift_share
    assert 0 < share < 1
    for watch_at, status in ((share, "watch"), (math.nextafter(share, 1.0), "ok")):
        monkeypatch.setenv("STOCKCAST_DRIFT_SHARE_WATCH", repr(watch_at))
        settings = load_settings(tickers=",".join(TICKERS), data_dir=monitored.settings.data_dir, **SETTINGS)
        assert settings.drift_share_watch == watch_at
        context = Context(settings)
        [health] = monitor(context, [SHIFTED])
        assert health.drift_share == share and health.performance.status == "ok"
        assert health.status == status, f"share {share!r}, watch at {watch_at!r}"
        assert context.store.load_monitoring(SHIFTED).iloc[-1]["status"] == status
        assert exported(settings)["stockcast_monitor_status"][SHIFTED] == STATUS_CODES[status]


def test_intervals_too_narrow_are_low_coverage_stored_exported_and_alerted(monitored, tmp_path):
    """AAPL's 0.2% intervals hold few actuals: the coverage stored, exported and alerted on is
    the share inside them; MSFT's honest intervals cover all and raise nothing."""
    context = monitored.context()
    healths = {health.ticker: health for health in monitor(context, TICKERS)}
    window = context.settings.drift_window
    scored = context.store.load_forecasts(ticker=NARROW).sort_values("as_of").tail(window)
    inside = (scored["actual_close"] >= scored["lower"]) & (scored["actual_close"] <= scored["upper"])
    threshold = 0.8  # the alert's: 90% intervals holding fewer than 80% of actuals
    assert inside.mean() < threshold
    assert healths[NARROW].performance.coverage == pytest.approx(inside.mean())
    assert healths[SHIFTED].performance.coverage == 1.0

    stored = context.store.load_monitoring(latest_only=True).set_index("ticker")
    assert stored.loc[NARROW, "coverage"] == pytest.approx(inside.mean())
    gauges = exported(context.settings)
    coverage = gauges["stockcast_monitor_interval_coverage"]
    assert coverage == pytest.approx({NARROW: inside.mean(), SHIFTED: 1.0})

    promtool_fires(
        tmp_path,
        gauges,
        {
            "StockcastIntervalCoverageLow": [
                firing(
                    "StockcastIntervalCoverageLow",
                    {"severity": "warning", "ticker": NARROW, "horizon": "1"},
                    coverage[NARROW],
                )
            ]
        },
    )


def test_an_unreachable_store_is_an_alert_not_silence(tmp_path):
    """The API on a database nobody answers: /metrics still answers, with no monitoring figures
    and stockcast_monitor_store_up 0, and the rules raise the store and the absent figures."""
    settings = load_settings(
        tickers="MSFT",
        data_dir=tmp_path / "data",
        database_url=f"postgresql+psycopg://stockcast@127.0.0.1:{free_port()}/stockcast",
        database_timeout_seconds=0.5,
    )
    gauges = exported(settings)
    assert gauges["stockcast_monitor_store_up"] == {"": 0.0}
    assert not any(by_ticker for name, by_ticker in gauges.items() if name != "stockcast_monitor_store_up")
    promtool_fires(
        tmp_path,
        gauges,
        {
            "StockcastMonitoringStoreUnreachable": [
                firing(
                    "StockcastMonitoringStoreUnreachable",
                    {"severity": "critical", "job": "stockcast-api", "instance": "api:8000"},
                )
            ],
            "StockcastMonitoringAbsent": [firing("StockcastMonitoringAbsent", {"severity": "critical"})],
        },
        extra_series={'up{job="stockcast-api", instance="api:8000"}': "1x180"},
    )


# -- delivery: Prometheus -> Alertmanager -> webhook, Slack-compatible endpoint, e-mail ---------
class Inbox:
    """What the local receivers got: (path, JSON body) posts and raw e-mail messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.mails: list[str] = []

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert the webhook at ``path`` received, as Alertmanager's JSON states it."""
        with self.lock:
            return [alert for seen, body in self.posts if seen == path for alert in body.get("alerts", [])]

    def texts(self, path: str) -> list[str]:
        with self.lock:
            return [json.dumps(body) for seen, body in self.posts if seen == path]


@contextmanager
def http_receiver(inbox: Inbox) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with inbox.lock:
                inbox.posts.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_receiver(inbox: Inbox) -> Iterator[str]:
    """Just enough SMTP (RFC 5321, no TLS, no login) to take Alertmanager's messages."""

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(f"{line}\r\n".encode())

        def handle(self) -> None:
            self.reply("220 127.0.0.1 ESMTP")
            while line := self.rfile.readline():
                verb = line.decode(errors="replace").strip().split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250 127.0.0.1")
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while (data := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(data.decode(errors="replace"))
                    with inbox.lock:
                        inbox.mails.append("".join(lines))
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def server(binary: str, package: str, arguments: list[str], ready_url: str, log: Path) -> Iterator[None]:
    """A Debian-packaged server started on loopback, stopped (and its log kept) afterwards."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: `make test` installs Debian's {package}")
    with log.open("wb") as output:
        process = subprocess.Popen([path, *arguments], stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _http_ok(ready_url), binary, process, seconds=30)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


SHORT_FOR = "2s"  # every rule's ``for`` in the test's copy


def prometheus_config(folder: Path, addresses: dict[str, str]) -> Path:
    """deploy/prometheus with the intervals and ``for`` durations shortened and the compose
    host names replaced by the local servers' addresses; nothing else changed."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert config["rule_files"] == ["alerts.yml"]
    for section in (config["scrape_configs"], config["alerting"]["alertmanagers"]):
        for entry in section:
            for static in entry["static_configs"]:
                static["targets"] = [addresses[target] for target in static["targets"]]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(folder: Path, environment: dict[str, str]) -> Path:
    """The configuration the container renders from .env (render_config.py on the real
    template), with the grouping intervals shortened."""
    rendered = folder / "rendered.yml"
    result = subprocess.run(
        [
            sys.executable,
            str(ALERTMANAGER / "render_config.py"),
            str(ALERTMANAGER / "alertmanager.yml"),
            str(rendered),
        ],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(rendered.read_text())
    route = config["route"]
    for key in ("group_wait", "group_interval"):
        route[key] = "1s"
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_drifting_ticker_is_delivered_by_prometheus_and_alertmanager(monitored, tmp_path):
    """`monitor` pushes the gauges to the Pushgateway; Prometheus scrapes it with the real
    rules and sends to Alertmanager, configured from .env-style settings, which delivers
    MSFT's feature-drift and AAPL's coverage alerts to a webhook (with the ticker in their
    labels), a Slack-compatible webhook and e-mail."""
    inbox = Inbox()
    pushgateway_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    closed_port = free_port()  # the API's target: nobody answers there
    with http_receiver(inbox) as receiver_url, smtp_receiver(inbox) as smtp_address:
        environment = {
            "ALERT_WEBHOOK_URL": f"{receiver_url}/alertmanager",
            "ALERT_SLACK_WEBHOOK_URL": f"{receiver_url}/slack",
            "ALERT_SLACK_CHANNEL": "#stockcast",
            "ALERT_EMAIL_TO": "oncall@example.com",
            "ALERT_EMAIL_FROM": "stockcast@example.com",
            "ALERT_SMTP_SMARTHOST": smtp_address,
            "ALERT_SMTP_REQUIRE_TLS": "false",
        }
        am_config = alertmanager_config(tmp_path, environment)
        prometheus_yml = prometheus_config(
            tmp_path,
            {
                "api:8000": f"127.0.0.1:{closed_port}",
                "pushgateway:9091": f"127.0.0.1:{pushgateway_port}",
                "alertmanager:9093": f"127.0.0.1:{alertmanager_port}",
            },
        )
        pushgateway = f"http://127.0.0.1:{pushgateway_port}"
        with (
            server(
                "prometheus-pushgateway",
                "prometheus-pushgateway",
                [f"--web.listen-address=127.0.0.1:{pushgateway_port}"],
                f"{pushgateway}/-/ready",
                tmp_path / "pushgateway.log",
            ),
            server(
                "prometheus-alertmanager",
                "prometheus-alertmanager",
                [
                    f"--config.file={am_config}",
                    f"--storage.path={tmp_path / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                    "--cluster.listen-address=",
                ],
                f"http://127.0.0.1:{alertmanager_port}/-/ready",
                tmp_path / "alertmanager.log",
            ),
        ):
            healths = monitor(monitored.context(pushgateway_url=pushgateway), TICKERS, html=False)
            assert {health.ticker: health.status for health in healths}[SHIFTED] == "watch"
            with server(
                "prometheus",
                "prometheus",
                [
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                f"http://127.0.0.1:{prometheus_port}/-/ready",
                tmp_path / "prometheus.log",
            ):

                def delivered() -> bool:
                    names = {
                        (alert["labels"].get("alertname"), alert["labels"].get("ticker"))
                        for alert in inbox.alerts("/alertmanager")
                        if alert["status"] == "firing"
                    }
                    with inbox.lock:
                        mailed = bool(inbox.mails)
                    return (
                        {
                            ("StockcastFeatureDrift", SHIFTED),
                            ("StockcastIntervalCoverageLow", NARROW),
                            ("StockcastApiDown", None),
                        }
                        <= names
                        and len(inbox.texts("/slack")) >= 3
                        and mailed
                    )

                wait_until(delivered, "delivery of the alerts", None, seconds=60)

    alerts = [alert for alert in inbox.alerts("/alertmanager") if alert["status"] == "firing"]
    drift = [alert for alert in alerts if alert["labels"]["alertname"] == "StockcastFeatureDrift"]
    assert {alert["labels"]["ticker"] for alert in drift} == {SHIFTED}
    assert drift[0]["labels"]["severity"] == "warning"
    assert drift[0]["annotations"]["summary"].startswith(f"{SHIFTED}: ")
    coverage = [alert for alert in alerts if alert["labels"]["alertname"] == "StockcastIntervalCoverageLow"]
    assert {alert["labels"]["ticker"] for alert in coverage} == {NARROW}
    # The service's own alert goes the same way: nothing answers at the API's address.
    assert any(alert["labels"]["alertname"] == "StockcastApiDown" for alert in alerts)
    slack = " ".join(inbox.texts("/slack"))
    assert "#stockcast" in slack and f"StockcastFeatureDrift ({SHIFTED})" in slack
    with inbox.lock:
        mails = "\n".join(inbox.mails)
    assert "oncall@example.com" in mails and "StockcastFeatureDrift" in mails


def test_the_alertmanager_settings_render_a_valid_configuration_or_one_line_naming_the_bad_one(tmp_path):
    """render_config.py on the real template: every receiver set is a configuration amtool
    accepts; none set still starts (with a warning); a receiver set in part names what is
    missing."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: `make test` installs Debian's prometheus-alertmanager")
    complete = {
        "ALERT_WEBHOOK_URL": "https://alerts.example.com/stockcast",
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
        "ALERT_EMAIL_TO": "ops@example.com, oncall@example.com",
        "ALERT_EMAIL_FROM": "stockcast@example.com",
        "ALERT_SMTP_SMARTHOST": "smtp.example.com:587",
        "ALERT_SMTP_USERNAME": "stockcast",
        "ALERT_SMTP_PASSWORD": 'pa"ss: word#1',
    }
    cases = {
        "complete": (complete, None),
        "none": ({}, "delivered nowhere"),
        "email without a server": (
            {"ALERT_EMAIL_TO": "ops@example.com", "ALERT_EMAIL_FROM": "stockcast@example.com"},
            "ALERT_SMTP_SMARTHOST",
        ),
        "not a URL": ({"ALERT_WEBHOOK_URL": "alerts.example.com"}, "ALERT_WEBHOOK_URL"),
        "bad flag": (complete | {"ALERT_SMTP_REQUIRE_TLS": "yes"}, "ALERT_SMTP_REQUIRE_TLS"),
    }
    for case, (environment, message) in cases.items():
        output = tmp_path / f"{case}.yml"
        result = subprocess.run(
            [
                sys.executable,
                str(ALERTMANAGER / "render_config.py"),
                str(ALERTMANAGER / "alertmanager.yml"),
                str(output),
            ],
            env={"PATH": "/usr/bin:/bin", **environment},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        starts = case in ("complete", "none")
        assert (result.returncode == 0) == starts, (case, result.stderr)
        if message:
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
                case,
                result.stderr,
            )
        if starts:
            checked = subprocess.run(
                [amtool, "check-config", str(output)], capture_output=True, text=True, timeout=60, check=False
            )
            assert checked.returncode == 0, (case, checked.stdout + checked.stderr)
    rendered = yaml.safe_load((tmp_path / "complete.yml").read_text())
    [receiver] = rendered["receivers"]
    assert receiver["email_configs"][0]["auth_password"] == complete["ALERT_SMTP_PASSWORD"]
    assert receiver["webhook_configs"][0]["url"] == complete["ALERT_WEBHOOK_URL"]
    assert (tmp_path / "complete.yml").stat().st_mode & 0o077 == 0  # the password's file is private


def test_a_scrape_does_not_wait_out_the_stores_retries(tmp_path, caplog):
    """While the store retries a refused database connection (STOCKCAST_DATABASE_TIMEOUT_SECONDS,
    30 by default, 6 here: the API's start waits that long once), /metrics answers once its own
    short wait has passed, with stockcast_monitor_store_up 0 and the reason in the log: a scrape
    that waited the retries out would time out at Prometheus, which would then report the API
    down instead of its store."""
    settings = load_settings(
        tickers="MSFT",
        data_dir=tmp_path / "data",
        database_url=f"postgresql+psycopg://stockcast@127.0.0.1:{free_port()}/stockcast",
        database_timeout_seconds=6,
    )
    with caplog.at_level(logging.WARNING, logger="stockcast.monitoring.gauges"):
        gauges = exported(settings)
    assert gauges["stockcast_monitor_store_up"] == {"": 0.0}
    assert "monitoring gauges unavailable: the store did not answer within 2 s" in caplog.text
