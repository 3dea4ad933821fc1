"""ARIMA fitting: the `arima` candidate's fit (conditional least squares, training/arma.py) for
500 tickers against a per-ticker statsmodels loop (exact maximum likelihood, what the candidate
used before), and the held-out RMSE of the forecasts each fit gives. Prices from
../shared/data/sp500_2018_2023.parquet; skipped when that file is absent.

    .venv/bin/python benchmarks/bench_arima.py [--tickers 500] [--repeats 3] [--json FILE]

- Model: the candidate's default order, ARIMA(1,1,1) on log prices, i.e. ARMA(1,1) with a
  mean on daily log returns (statsmodels: ``ARIMA(returns, order=(1, 0, 1), trend="c")``).
- Data: the 500 tickers of the file with the longest histories (all but GEHC, 135 sessions),
  their labelled feature rows built by stockcast's own feature code. Each ticker's last 250
  labelled sessions are held out (fewer for CEG and OGN, so that every fit still has the 250
  sessions a training needs at least); the fit uses the 1000 sessions before them (the
  training window), or all there are.
- Timing: both fits of a ticker run back to back (the order alternated from ticker to
  ticker), so both see the same machine; the candidate's fit includes its conversion to the
  autoregressive form it serves, and so does the reference. Imports and data preparation are
  outside the timers. The candidate's fits are timed --repeats times; the median counts.
- RMSE: each fit's forecasts are what the candidate serves: the autoregressive form of its
  coefficients (ten lags) applied to each held-out day's own return history, turned into a
  price (close x exp(forecast log return)). Same days, same rows, same formula; only the
  coefficients differ. The RMSE of each ticker's price forecasts against the next closes is
  compared per ticker; the figure is the geometric mean over tickers of statsmodels' RMSE
  over the candidate's, with the spread beside it. Where the two differ by more than 1%, the
  exact log-likelihood statsmodels computes at both estimates says which fit is the better
  maximum: on daily returns the AR and MA roots nearly cancel and the likelihood is a flat
  ridge, on which statsmodels' own optimiser stops at different points depending on where it
  starts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from figures import Figure, emit

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT.parent / "shared" / "data" / "sp500_2018_2023.parquet"
HELD_OUT = 250
MIN_TRAIN = 250
TRAIN_WINDOW = 1000
SPEED_GOAL = 10.0
RMSE_GOAL = 0.99  # the candidate's RMSE within 1% of statsmodels'
SPEED = "ARIMA(1,1,1) fits of 500 tickers vs a per-ticker statsmodels loop"
AGREEMENT = "held-out RMSE of the ARIMA(1,1,1) forecasts, statsmodels' over the candidate's (geometric mean over the tickers; goal: within 1%)"


def prepared(count: int) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(ticker, training rows, held-out rows) for the ``count`` longest histories."""
    from stockcast.features.build import TARGET_COLUMN, add_target, build_features, complete_rows
    from stockcast.ingest.bars import conform_bars

    bars = conform_bars(pd.read_parquet(PRICES), "file")
    lengths = bars.groupby("ticker").size()
    chosen = sorted(lengths.sort_values(ascending=False, kind="stable").index[:count])
    bars = bars.loc[bars["ticker"].isin(chosen)]
    rows = complete_rows(add_target(build_features(bars))).dropna(subset=[TARGET_COLUMN])
    prepared_rows = []
    for ticker, unsorted in rows.groupby("ticker", sort=True):
        frame = unsorted.sort_values("date").reset_index(drop=True)
        held_out = min(HELD_OUT, len(frame) - MIN_TRAIN)
        if held_out < 20:
            raise SystemExit(f"{ticker}: {len(frame)} labelled sessions, too few to hold any out")
        train = frame.iloc[: len(frame) - held_out].tail(TRAIN_WINDOW)
        prepared_rows.append((str(ticker), train, frame.iloc[len(frame) - held_out :]))
    return prepared_rows


def statsmodels_fit(train: pd.DataFrame) -> tuple[Any, Any]:
    """The reference: statsmodels' ARIMA by exact maximum likelihood, turned into the same
    served form (the candidate's own class, its coefficients set from statsmodels')."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.arima_process import arma2ar

    from stockcast.features.build import DAILY_LAGS, TARGET_COLUMN
    from stockcast.training.models import ArimaForecaster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on near-white-noise returns
        result = ARIMA(train[TARGET_COLUMN].to_numpy(float), order=(1, 0, 1), trend="c").fit()
    forecaster = ArimaForecaster(1, 1)
    forecaster.mean = float(result.params[0])
    ar_polynomial = np.r_[1.0, -np.asarray(result.arparams)]
    ma_polynomial = np.r_[1.0, np.asarray(result.maparams)]
    if np.any(np.abs(np.roots(ma_polynomial[::-1])) <= 1.0):
        ma_polynomial = np.array([1.0])
    forecaster.weights = -arma2ar(ar_polynomial, ma_polynomial, lags=DAILY_LAGS + 1)[1:]
    return forecaster, result


def candidate_fit(train: pd.DataFrame) -> Any:
    from stockcast.features.build import FEATURE_COLUMNS, TARGET_COLUMN
    from stockcast.training.models import default_spec, make_forecaster

    return make_forecaster(default_spec("arima")).fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN])


def price_rmse(forecaster: Any, held_out: pd.DataFrame) -> float:
    from stockcast.features.build import TARGET_COLUMN

    close = held_out["close"].to_numpy(float)
    actual = close * np.exp(held_out[TARGET_COLUMN].to_numpy(float))
    predicted = close * np.exp(forecaster.predict(held_out))
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def likelihoods(train: pd.DataFrame, ours: Any, theirs: Any) -> tuple[float, float]:
    """statsmodels' exact log-likelihood (scale concentrated out) at the candidate's estimate
    and at its own."""
    from statsmodels.tsa.arima.model import ARIMA

    from stockcast.features.build import TARGET_COLUMN
    from stockcast.training.arma import fit_arma

    series = train[TARGET_COLUMN].to_numpy(float)
    fitted = fit_arma(series, 1, 1)
    model = ARIMA(series, order=(1, 0, 1), trend="c", concentrate_scale=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at_ours = float(model.loglike(np.r_[fitted.mean, fitted.ar, fitted.ma]))
        at_theirs = float(model.loglike(np.asarray(theirs.params[:-1])))
    return at_ours, at_theirs


def measure(count: int, repeats: int) -> list[Figure]:
    import statsmodels.tsa.arima.model  # noqa: F401  (imports outside the timers)

    from stockcast.training import arma  # noqa: F401

    data = prepared(count)
    candidate_fit(data[0][1]), statsmodels_fit(data[0][1])  # warm both paths, untimed
    ours_seconds = [0.0] * repeats
    theirs_seconds = 0.0
    records = []
    for position, (ticker, train, held_out) in enumerate(data):
        order = ("ours", "theirs") if position % 2 == 0 else ("theirs", "ours")
        fitted: dict[str, Any] = {}
        for side in order:
            if side == "ours":
                for repeat in range(repeats):
                    began = time.perf_counter()
                    fitted["ours"] = candidate_fit(train)
                    ours_seconds[repeat] += time.perf_counter() - began
            else:
                began = time.perf_counter()
                fitted["theirs"], fitted["result"] = statsmodels_fit(train)
                theirs_seconds += time.perf_counter() - began
        records.append(
            {
                "ticker": ticker,
                "train": train,
                "result": fitted["result"],
                "ours": price_rmse(fitted["ours"], held_out),
                "theirs": price_rmse(fitted["theirs"], held_out),
                "days": len(held_out),
            }
        )
    ours = statistics.median(ours_seconds)
    frame = pd.DataFrame(records)
    ratio = frame["theirs"] / frame["ours"]  # above 1: the candidate's forecasts did better
    deviation = (frame["ours"] / frame["theirs"] - 1).abs()
    beyond = frame.loc[deviation > 0.01]
    better_likelihood = 0
    for record in beyond.itertuples():
        at_ours, at_theirs = likelihoods(record.train, None, record.result)
        better_likelihood += at_ours >= at_theirs
    geometric = float(np.exp(np.log(ratio).mean()))
    tickers = len(frame)
    print(
        f"ARIMA(1,1,1) on {tickers} tickers (training windows of up to {TRAIN_WINDOW} sessions, "
        f"{int(frame['days'].sum())} held-out forecasts):"
    )
    print(
        f"  fits: candidate {ours:.2f} s (median of {repeats}: "
        f"{', '.join(f'{seconds:.2f}' for seconds in ours_seconds)}), statsmodels {theirs_seconds:.1f} s "
        f"-> {theirs_seconds / ours:.1f}x"
    )
    print(
        f"  held-out RMSE, statsmodels / candidate: geometric mean {geometric:.5f}; per ticker "
        f"{ratio.min():.4f}-{ratio.max():.4f}, median |difference| {deviation.median():.4%}, "
        f"{len(beyond)} ticker(s) beyond 1%"
        + (
            f" ({', '.join(beyond['ticker'])}; at the candidate's estimate statsmodels' own exact "
            f"likelihood is as high or higher on {better_likelihood} of them)"
            if len(beyond)
            else ""
        )
    )
    spread = (
        f"per ticker {ratio.min():.4f}-{ratio.max():.4f}, median difference {deviation.median():.3%}, "
        f"{len(beyond)} of {tickers} beyond 1%"
    )
    if len(beyond):
        spread += (
            f" ({', '.join(beyond['ticker'])}: statsmodels' exact likelihood is as high or higher at "
            f"the candidate's estimate on {better_likelihood} of them, a flat ridge where the AR "
            "and MA roots nearly cancel)"
        )
    return [
        Figure(
            "ARIMA",
            SPEED,
            f"{ours:.2f} s",
            f"{theirs_seconds:.1f} s",
            theirs_seconds / ours,
            SPEED_GOAL,
            f"{tickers} tickers of sp500_2018_2023, up to {TRAIN_WINDOW} training sessions each; "
            f"conditional least squares (training/arma.py) against statsmodels' exact likelihood, "
            f"each ticker's two fits back to back; the candidate's time is the median of {repeats}",
        ),
        Figure(
            "ARIMA",
            AGREEMENT,
            f"{geometric:.5f}",
            "statsmodels 1",
            geometric,
            RMSE_GOAL,
            f"{int(frame['days'].sum())} one-step price forecasts, the last 250 sessions of each "
            f"ticker, both served through the same ten-lag autoregressive form; {spread}",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the candidate's fits")
    parser.add_argument("--json", help="append the figures to this file (JSON lines)")
    args = parser.parse_args()
    if not PRICES.exists():
        print(f"skipped: {PRICES} is not there (the shared data folder sits beside the project)")
        return 0
    emit(measure(args.tickers, args.repeats), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
