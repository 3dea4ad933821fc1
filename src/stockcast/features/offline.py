"""The offline feature table: features of stored bars, kept as parquet in the artifact store."""

from __future__ import annotations

import pandas as pd

from stockcast.context import Context
from stockcast.features.build import (
    FEATURE_COLUMNS,
    TARGET_COLUMN,
    add_target,
    build_features,
    complete_rows,
)

OFFLINE_TABLE_KEY = "features/daily_features.parquet"


def feature_table(context: Context, tickers: list[str] | None = None) -> pd.DataFrame:
    """Features of every stored bar of ``tickers`` (all stored tickers when None)."""
    return build_features(context.store.load_prices(tickers=tickers))


def write_offline_table(context: Context, features: pd.DataFrame) -> str:
    return context.artifacts.write_parquet(OFFLINE_TABLE_KEY, features)


def training_rows(features: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """Labelled rows of one ticker with every feature present: what a model may learn from."""
    labelled = add_target(features.loc[features["ticker"] == ticker])
    return complete_rows(labelled).dropna(subset=[TARGET_COLUMN]).reset_index(drop=True)


def latest_row(features: pd.DataFrame, ticker: str) -> pd.Series | None:
    """The feature row of a ticker's newest bar, or None when that row is incomplete (too
    little history): an older row would silently forecast from stale features."""
    rows = features.loc[features["ticker"] == ticker]
    if rows.empty or rows.iloc[-1][FEATURE_COLUMNS].isna().any():
        return None
    return rows.iloc[-1]
