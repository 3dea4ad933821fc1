"""The gate audit: a pick made on one window is scored on the next, beside the old rule."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from tests.series import autocorrelated_bars, labelled

from stockcast.lifecycle.audit import AuditConfig, audit_ticker, render_audit, summarize_audit
from stockcast.training.backtest import BacktestConfig
from stockcast.training.models import default_spec

SPECS = [default_spec(kind) for kind in ("naive", "drift", "ridge", "arima")]
BACKTEST = BacktestConfig(min_train_days=300, calibration_days=60, refit_every_days=50)
AUDIT = AuditConfig(gate_days=200, next_days=200, review_every_days=50, bootstrap_reps=100)


def test_a_lasting_edge_is_picked_on_one_window_and_holds_on_the_next():
    record = audit_ticker("AAA", labelled(autocorrelated_bars(1000, phi=0.3)), SPECS, BACKTEST, AUDIT)
    assert record["gate_choice"].startswith(("arima", "ridge"))
    assert record["gate_p_value"] < 0.05
    assert record["gate_next_ratio"] < 0.98 and record["gate_rolling_ratio"] < 0.98
    assert "naive" not in record["mcs"].split()  # naive is excluded from the confidence set
    assert record["spa_p_value"] < 0.05
    assert record["next_start"] > record["gate_start"]


@pytest.mark.parametrize("seed", [11, 12])
def test_on_a_random_walk_the_gate_serves_naive_and_changes_nothing(seed):
    record = audit_ticker(
        "AAA", labelled(autocorrelated_bars(1000, phi=0.0, seed=seed)), SPECS, BACKTEST, AUDIT
    )
    assert record["gate_choice"] == "naive()" and record["gate_next_ratio"] == 1.0
    assert record["gate_changes_per_year"] <= record["gate_cw_changes_per_year"]
    assert record["gate_cw_changes_per_year"] <= record["lowest_rmse_changes_per_year"]
    assert "naive" in record["mcs"].split()


def records_by_hand() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["A", "B", "C", "D"],
            "next_start": ["2020-01-02"] * 4,
            "next_end": ["2020-12-31"] * 4,
            "gate_choice": ["naive()", "ridge(alpha=10.0)", "naive()", "naive()"],
            "gate_next_ratio": [1.0, 0.9, 1.0, 1.0],
            "gate_rolling_ratio": [1.0, 0.95, 1.0, 1.0],
            "gate_changes_per_year": [0.0, 1.0, 0.0, 0.0],
            "gate_cw_choice": ["naive()", "ridge(alpha=10.0)", "arima(p=1,q=1)", "naive()"],
            "gate_cw_next_ratio": [1.0, 0.9, 1.01, 1.0],
            "gate_cw_rolling_ratio": [1.0, 0.95, 1.01, 1.0],
            "gate_cw_changes_per_year": [0.0, 1.0, 2.0, 0.0],
            "lowest_rmse_choice": ["drift()", "ridge(alpha=10.0)", "arima(p=1,q=1)", "naive()"],
            "lowest_rmse_next_ratio": [1.03, 0.9, 1.01, 1.0],
            "lowest_rmse_rolling_ratio": [1.02, 0.95, 1.01, 1.0],
            "lowest_rmse_changes_per_year": [4.0, 2.0, 6.0, 0.0],
            "lowest_rmse_cw_p": [0.04, 0.001, 0.03, None],
            "lowest_rmse_dm_p": [0.4, 0.01, 0.2, None],
            "mcs_size": [3, 1, 4, 2],
            "naive_in_mcs": [True, False, True, True],
            "spa_p_value": [0.4, 0.01, 0.3, 0.9],
        }
    )


def test_the_summary_by_hand():
    """Old rule: 3 of 4 promoted, of which B beat naive next; geometric mean of (1.03, 0.9,
    1.01, 1.0) = (1.03 * 0.9 * 1.01)^(1/4); one ticker (A) more than 2% worse."""
    summary = summarize_audit(records_by_hand())
    gate, old = summary["gate"], summary["lowest_rmse"]
    assert gate["promoted_share"] == 0.25 and gate["promoted_beat_naive_next"] == 1.0
    assert gate["geometric_mean_ratio"] == pytest.approx(0.9**0.25)
    assert gate["worse_than_naive_share"] == 0.0
    assert old["promoted_share"] == 0.75
    assert old["promoted_beat_naive_next"] == pytest.approx(1 / 3)
    assert old["geometric_mean_ratio"] == pytest.approx((1.03 * 0.9 * 1.01) ** 0.25)
    assert old["promoted_geometric_mean_ratio"] == pytest.approx((1.03 * 0.9 * 1.01) ** (1 / 3))
    assert old["worse_than_naive_share"] == 0.25
    assert old["changes_per_ticker_year"] == 3.0
    assert summary["gate_cw"]["promoted_share"] == 0.5
    assert summary["evidence"] == {
        "lowest_picks": 3.0,
        "cw_significant_share": 1.0,
        "dm_significant_share": pytest.approx(1 / 3),
    }
    assert summary["bootstrap"] == {
        "mean_mcs_size": 2.5,
        "naive_in_mcs_share": 0.75,
        "spa_rejects_share": 0.25,
    }


def test_the_audit_page_shows_both_rules_and_says_when_nothing_was_promoted():
    text = render_audit(records_by_hand(), "file:x.parquet", AUDIT, 4, "2026-11-30")
    assert "| tickers given a non-naive champion | 25.0% | 50.0% | 75.0% |" in text
    assert "| rolling: champion changes per ticker-year | 0.25 | 0.75 | 3.00 |" in text
    assert "with Clark-West on 100% of them and with DM-HLN on 33%" in text
    none_promoted = records_by_hand().assign(gate_choice="naive()", gate_next_ratio=1.0)
    assert "promoted no candidate" in render_audit(none_promoted, "x", AUDIT, 4, "2026-11-30")
    assert math.isnan(summarize_audit(none_promoted)["gate"]["promoted_beat_naive_next"])


def test_at_five_sessions_each_review_reads_only_outcomes_known_then(monkeypatch):
    """At horizon h the outcome of origin i is known h sessions later, at origin i + h: the next
    window starts h - 1 origins after the gate's, and every rolling review at origin s reads
    the gate-length window ending at s - (h - 1), serving from s on."""
    from stockcast.lifecycle import audit as audit_module

    calls: list[tuple[int, int]] = []
    original = audit_module.window_slice

    def recording(window, start, stop):
        calls.append((start, stop))
        return original(window, start, stop)

    monkeypatch.setattr(audit_module, "window_slice", recording)
    horizon, gap = 5, 4
    audit = AuditConfig(gate_days=200, next_days=150, review_every_days=50, bootstrap_reps=100)
    backtest = BacktestConfig(min_train_days=300, calibration_days=60, refit_every_days=50, horizon=horizon)
    record = audit_ticker(
        "AAA", labelled(autocorrelated_bars(1000, phi=0.3), horizon), SPECS[:3], backtest, audit
    )
    assert record["horizon"] == horizon
    gate, after = audit.gate_days, audit.gate_days + gap
    assert calls[:2] == [(0, gate), (after, after + audit.next_days)]
    reviews = sorted({stop for start, stop in calls[2:] if stop - start == gate})
    assert reviews == [
        gate + k * audit.review_every_days for k in range(audit.next_days // audit.review_every_days)
    ]
