"""Feature stage: build the offline table from stored prices, hand it to the feature store,
and read back what training (historical) and forecasting (online) need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from stockcast.context import Context
from stockcast.features.build import FEATURE_COLUMNS, add_target, build_features, complete_rows, target_column
from stockcast.features.feature_store import OFFLINE_TABLE_KEY, TIMESTAMP_FIELD, Materialized, offline_frame


@dataclass(frozen=True)
class FeatureRefresh:
    table_url: str
    rows: int
    tickers: int
    materialized: Materialized


def feature_table(context: Context, tickers: list[str] | None = None) -> pd.DataFrame:
    """Features of every stored bar of ``tickers`` (all stored tickers when None)."""
    return build_features(context.store.load_prices(tickers=tickers))


def refresh_feature_store(context: Context) -> FeatureRefresh:
    """Rebuild the offline table over every stored ticker, apply the feature repository and
    materialize what is new into the online store."""
    table = offline_frame(feature_table(context))
    if table.empty:
        raise LookupError("no stored prices with enough history for features; run `stockcast ingest` first")
    url = context.artifacts.write_parquet(OFFLINE_TABLE_KEY, table)
    changed = context.feature_store.apply()
    materialized = context.feature_store.materialize(table, full=changed)
    return FeatureRefresh(url, len(table), table["ticker"].nunique(), materialized)


def historical_training_rows(context: Context, tickers: list[str]) -> dict[str, pd.DataFrame]:
    """Labelled training rows per ticker, their features retrieved point in time from the
    feature store for each (ticker, session close) of the offline table: a label column per
    configured horizon, rows where the shortest is known (``for_horizon`` picks one)."""
    table = context.artifacts.read_parquet(OFFLINE_TABLE_KEY)
    entities = table.loc[table["ticker"].isin(tickers), ["ticker", TIMESTAMP_FIELD, "date"]]
    if entities.empty:
        return {}
    retrieved = context.feature_store.historical(entities)
    horizons = context.settings.horizons
    labelled = add_target(retrieved.sort_values(["ticker", TIMESTAMP_FIELD], kind="stable"), horizons)
    usable = complete_rows(labelled).dropna(subset=[target_column(horizons[0])])
    return {str(ticker): rows.reset_index(drop=True) for ticker, rows in usable.groupby("ticker", sort=False)}


def training_rows(features: pd.DataFrame, ticker: str, horizons: Sequence[int] = (1,)) -> pd.DataFrame:
    """Labelled rows of one ticker with every feature present: what a model may learn from (a
    label per horizon; rows where the shortest is known)."""
    labelled = add_target(features.loc[features["ticker"] == ticker], horizons)
    shortest = target_column(min(horizons))
    return complete_rows(labelled).dropna(subset=[shortest]).reset_index(drop=True)


def latest_row(features: pd.DataFrame, ticker: str) -> pd.Series | None:
    """The feature row of a ticker's newest bar, or None when that row is incomplete (too
    little history): an older row would silently forecast from stale features."""
    rows = features.loc[features["ticker"] == ticker]
    if rows.empty or rows.iloc[-1][FEATURE_COLUMNS].isna().any():
        return None
    return rows.iloc[-1]
