"""`stockcast replay` over the bundled sample: simulated days through the daily cycle's code,
a summary and a plot, its own directory, safe to rerun."""

from __future__ import annotations

import json

from tests.e2e.test_daily_cycle import run_cli

FAST = {
    "STOCKCAST_TICKERS": "AAPL,MSFT",
    "STOCKCAST_SOURCE": "sample",
    "STOCKCAST_MODELS": "naive,ridge",
    "STOCKCAST_HORIZONS": "1,5",
    "STOCKCAST_BACKTEST_DAYS": "100",
    "STOCKCAST_REFIT_EVERY_DAYS": "50",
    "STOCKCAST_DRIFT_WINDOW": "10",
    "STOCKCAST_DRIFT_DAYS": "2",
}


def test_a_replay_runs_the_days_and_summarizes_them(tmp_path):
    directory = tmp_path / "replay"
    env = {"STOCKCAST_DATA_DIR": str(tmp_path / "data"), **FAST}
    result = run_cli(
        "replay",
        "--start",
        "2008-09-15",
        "--days",
        "8",
        "--data-dir",
        str(directory),
        "--report-every",
        "4",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Replay 2008-09-15 – 2008-09-24: 8 sessions" in result.stdout
    summary = json.loads((directory / "summary.json").read_text())
    rows = {(ticker["ticker"], ticker["horizon"]): ticker for ticker in summary["tickers"]}
    assert list(rows) == [("AAPL", 1), ("AAPL", 5), ("MSFT", 1), ("MSFT", 5)]
    # The forecast of each simulated day but the last has been scored the next day; those five
    # sessions ahead, on the fifth session after theirs: the first three days' only.
    assert [row["scored"] for row in rows.values()] == [7, 3, 7, 3]
    assert all(0 <= row["coverage"] <= 1 for row in rows.values())
    pooled = {each["horizon"]: each for each in summary["horizons"]}
    assert pooled[1]["scored"] == 14 and pooled[5]["scored"] == 6
    assert "Pooled over the tickers, per horizon" in result.stdout
    assert (directory / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reports = sorted(
        path.parent.name for path in (directory / "artifacts" / "reports" / "AAPL").glob("*/data_drift.json")
    )
    assert reports == ["2008-09-15", "2008-09-19", "2008-09-24"]  # days 1, 5 and the last
    assert not (tmp_path / "data").exists() or not any(
        (tmp_path / "data").glob("*.db")
    )  # production untouched

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- replay:start -->\nstale figures\n<!-- replay:end -->\noutro\n")
    again = run_cli(
        "replay",
        "--start",
        "2008-09-22",
        "--days",
        "2",
        "--data-dir",
        str(directory),
        "--readme",
        str(readme),
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((directory / "summary.json").read_text())["start"] == "2008-09-22"
    written = readme.read_text()
    assert written.startswith("intro\n<!-- replay:start -->\n") and written.endswith(
        "<!-- replay:end -->\noutro\n"
    )
    assert "stale figures" not in written
    assert "`stockcast replay --start 2008-09-22 --days 2`" in written
    assert "2 sessions from 2008-09-22 to 2008-09-23" in written
    lines = [
        line for line in written.splitlines() if line.startswith("| AAPL |") or line.startswith("| MSFT |")
    ]
    # One forecast scored each at one session ahead; none yet at five.
    assert [line.split(" | ")[1:3] for line in lines] == [["1", "1"], ["5", "0"], ["1", "1"], ["5", "0"]]
    assert "| 5 | 0 | 90% | - | - | - |" in written  # the pooled row of a horizon not scored yet


def test_a_replay_refuses_a_readme_without_its_markers_before_it_starts(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    result = run_cli(
        "replay",
        "--start",
        "2008-09-15",
        "--days",
        "2",
        "--data-dir",
        str(tmp_path / "r"),
        "--readme",
        str(readme),
        env=FAST,
    )
    assert result.returncode == 1 and "<!-- replay:start -->" in result.stderr
    assert not (tmp_path / "r").exists()
    assert readme.read_text() == "no markers here\n"


def test_a_replay_refuses_a_directory_it_did_not_make(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    result = run_cli("replay", "--start", "2008-09-15", "--days", "2", "--data-dir", str(precious), env=FAST)
    assert result.returncode == 1 and "not made by a replay" in result.stderr
    assert (precious / "keep.txt").read_text() == "mine"
    # A folder holding only what a process keeps to start faster (the calendars built while the
    # dates were checked) is as good as empty: the replay takes it.
    kept = tmp_path / "kept"
    (kept / "cache" / "calendars").mkdir(parents=True)
    (kept / "cache" / "calendars" / "XNYS.pkl").write_bytes(b"a calendar")
    taken = run_cli("replay", "--start", "2008-09-15", "--days", "2", "--data-dir", str(kept), env=FAST)
    assert taken.returncode == 0, taken.stderr
    bad = run_cli("replay", "--start", "15/09/2008", "--days", "2", env=FAST)
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
