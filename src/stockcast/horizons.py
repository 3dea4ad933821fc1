"""Horizons: how many sessions of a ticker's exchange ahead a forecast is. Every horizon has its
own model, champion, forecasts and verdicts; one session ahead is what existed before horizons,
so names at that horizon are unchanged."""

from __future__ import annotations


def horizon_label(ticker: str, horizon: int) -> str:
    """How a ticker's model at a horizon is named in reports, logs and failures: ``AAPL`` one
    session ahead, ``AAPL +5`` five. A failure keyed ``AAPL +20`` keeps only that horizon back."""
    return ticker if horizon == 1 else f"{ticker} +{horizon}"
