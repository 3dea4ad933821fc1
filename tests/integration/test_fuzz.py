"""API fuzzing with schemathesis against the app's own OpenAPI schema: every route, with and
without an API key; no answer may be a server error and every answer must match the schema
(status codes, content types, bodies). `FUZZ_EXAMPLES` per operation raises the count
(`make soak`)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.series import autocorrelated_bars

from stockcast.context import Context
from stockcast.features.offline import refresh_feature_store
from stockcast.pipeline import forecast_many, train_many
from stockcast.settings import load_settings

KEY = "fuzzing-key-0123456789abcdef"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "70"))
SENT = {"with key": 0, "without key": 0}


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    """The real app over a store with one trained ticker and its logged forecast."""
    folder = tmp_path_factory.mktemp("fuzz")
    config = load_settings(
        data_dir=folder,
        tickers="AAA",
        api_keys=KEY,
        models="naive,ridge",
        backtest_days=100,
        min_train_days=150,
        refit_every_days=50,
        feature_refresh_seconds=0,
    )
    context = Context(config)
    context.store.upsert_prices(autocorrelated_bars(500, phi=0.4))
    refresh_feature_store(context)
    train_many(context, ["AAA"], force=True)
    forecast_many(context, ["AAA"])
    from stockcast.serving.app import create_app

    app = create_app(config)
    from fastapi.testclient import TestClient

    with TestClient(app):  # runs the lifespan: champions loaded, forecast log started
        yield app


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # the same examples in CI and on a laptop for a given seed
)


@pytest.mark.fault(
    "API: generated requests on every route (schemathesis, from the app's OpenAPI schema), with and without a key",
    "No 5xx; every answer, errors included, matches the schema (found and fixed: offset overflow, instants without a zone, unconstrained what-if prices, unknown tickers in POST /train)",
)
@pytest.mark.parametrize("mode", ["with key", "without key"])
def test_no_server_error_and_every_answer_matches_the_schema(fuzzed_app, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    headers = {"X-API-Key": KEY} if mode == "with key" else {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every route of the API, read from its own schema

    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case):
            SENT[mode] += 1
            response = case.call(headers=headers)
            case.validate_response(response)

        fuzz()


def test_the_fuzzing_sent_enough_requests():
    """Runs after the test above (file order): at least 1,000 generated requests in all."""
    assert sum(SENT.values()) >= 1000, SENT
