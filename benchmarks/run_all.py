"""`make bench`: run every benchmark, each in its own process, and write benchmarks/results.md
(the machine, the date, the versions, every figure beside its reference from the same run with
the ratio and the goal, missed goals with the reason profiling found, and before/after figures
of the speed work) and the performance table of the README.

    .venv/bin/python benchmarks/run_all.py [--only features,serving,scale] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from figures import Figure, load

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.md"
RAW = HERE / "results.json"  # the same run's figures and outputs, to render again (--render)
HISTORY = HERE / "history.json"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- performance-table:start -->", "<!-- performance-table:end -->"

BENCHMARKS = {
    "features": ["bench_features.py"],
    "serving": ["bench_serving.py", "bench_online.py"],
    "scale": ["bench_scale.py"],
}
PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "fastapi",
    "uvicorn",
    "mlflow",
    "feast",
    "evidently",
    "prefect",
    "dask",
    "sqlalchemy",
)

# Why a goal is missed, from profiling (kept here so results.md states it next to the figure).
REASONS = {
    "rows/s vs the per-ticker pandas loop": (
        "cProfile after the rewrite shows no hot spot left: about 150 vectorised operations "
        "over all rows share the time (the largest: pandas' exponential filter, 5 calls, ~20 ms; "
        "running sums ~15 ms; the rest 1-12 ms each), and the build is within 10x of one memory "
        "pass per feature. Reaching 30x the loop (~145 ms here) would take fusing the operations "
        "into one compiled loop (numba or Cython): a compiler dependency and JIT start-up in every "
        "command and in the API's what-if path, which computes features for 60 rows."
    ),
    "training speed-up, 2 Dask workers vs 1": (
        "2 cores are shared by the driver, the scheduler and both workers. Profiled per ticker "
        "(100 tickers, 100-day backtests): ~2.4 s of backtests run on the workers against ~0.45 s "
        "of driver work (Feast retrieval, "
        "MLflow logging, registration, the gate) that stays serial, which bounds the speed-up "
        "near 1.7 before Dask's own overhead; on more cores than workers the ratio rises."
    ),
}


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kilobytes = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f"{kilobytes / 1024 / 1024:.1f} GB"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", f"{commit}{' (with uncommitted changes)' if dirty else ''}"),
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("memory", memory),
        ("system", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
    ]


def versions() -> str:
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def run(name: str, json_path: Path) -> tuple[str, float]:
    """One benchmark in its own process; its printed output and wall time."""
    outputs, start = [], time.perf_counter()
    for script in BENCHMARKS[name]:
        print(f"== {script}", flush=True)
        done = subprocess.run(
            [sys.executable, str(HERE / script), "--json", str(json_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout, end="", flush=True)
        outputs.append(done.stdout)
        if done.returncode != 0:
            outputs.append(f"(exited {done.returncode}: {done.stderr.strip()[-800:]})\n")
            print(outputs[-1], flush=True)
    return "".join(outputs), time.perf_counter() - start


def result_of(figure: Figure) -> str:
    if figure.met is None:
        return "reported"
    return "met" if figure.met else "**missed**"


def table(figures: list[Figure]) -> str:
    lines = [
        "| area | figure | stockcast | reference (same run) | ratio | goal | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        goal = "" if figure.goal is None else f">= {figure.goal:.3g}x"
        lines.append(
            f"| {figure.area} | {figure.what} | {figure.measured} | {figure.reference} | "
            f"{figure.ratio:.2f}x | {goal} | {result_of(figure)} |"
        )
    return "\n".join(lines)


def before_and_after(figures: list[Figure]) -> str:
    if not HISTORY.exists():
        return ""
    measured = {figure.what: figure for figure in figures}
    lines = [
        "| change (found by profiling) | figure | before | after (this run) |",
        "|---|---|---|---|",
    ]
    for entry in json.loads(HISTORY.read_text()):
        after = measured.get(entry["figure"])
        now = (
            f"{after.measured} ({after.ratio:.2f}x)"
            if after
            else entry.get("after", "not measured in this run")
        )
        lines.append(f"| {entry['change']} | {entry['figure']} | {entry['before']} | {now} |")
    return "\n".join(lines)


def write_results(
    figures: list[Figure],
    outputs: dict[str, str],
    seconds: dict[str, float],
    measured_on: list[tuple[str, str]] | None = None,
) -> str:
    facts = "\n".join(f"| {key} | {value} |" for key, value in (measured_on or machine()))
    missed = [figure for figure in figures if figure.met is False]
    reasons = "\n".join(
        f"- **{figure.area}, {figure.what}** ({figure.ratio:.2f}x, goal {figure.goal:.3g}x): "
        f"{REASONS.get(figure.what, figure.note or 'no reason recorded yet: profile it')}"
        for figure in missed
    )
    raw = "\n".join(
        f"<details><summary>{name} ({seconds[name]:.0f} s)</summary>\n\n```\n{output.rstrip()}\n```\n</details>\n"
        for name, output in outputs.items()
    )
    text = f"""# Benchmark results

Written by `make bench` (`benchmarks/run_all.py`); every reference is measured in the same run
on the same machine. Ratios are oriented so that higher is better for stockcast (a latency
ratio is the reference's p99 over stockcast's).

| machine | |
|---|---|
{facts}

Versions: {versions()}.

## Figures

{table(figures)}

## Missed goals

{reasons or "None."}

## Before and after

{before_and_after(figures)}

## Output

Total {sum(seconds.values()) / 60:.1f} min.

{raw}"""
    RESULTS.write_text(text)
    return text


def update_readme(figures: list[Figure]) -> None:
    text = README.read_text()
    if TABLE_START not in text:
        return
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{table(figures)}\n{TABLE_END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS)
    )
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    parser.add_argument(
        "--render", action="store_true", help=f"write the pages again from {RAW.name}, without measuring"
    )
    args = parser.parse_args()
    if args.render:
        saved = json.loads(RAW.read_text())
        figures = [Figure(**figure) for figure in saved["figures"]]
        write_results(figures, saved["outputs"], saved["seconds"], saved["machine"])
        if not args.no_readme:
            update_readme(figures)
        return 0
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    outputs: dict[str, str] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        json_path = Path(folder) / "figures.jsonl"
        for name in chosen:
            outputs[name], seconds[name] = run(name, json_path)
        figures = load(json_path)
    facts = machine()
    RAW.write_text(
        json.dumps(
            {
                "figures": [asdict(f) for f in figures],
                "outputs": outputs,
                "seconds": seconds,
                "machine": facts,
            },
            indent=1,
        )
        + "\n"
    )
    write_results(figures, outputs, seconds, facts)
    if not args.no_readme:
        update_readme(figures)
    print(f"wrote {RESULTS.relative_to(ROOT)} ({len(figures)} figures, {sum(seconds.values()) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
