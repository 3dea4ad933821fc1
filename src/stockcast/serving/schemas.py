"""Request and response bodies of the API, with examples for /docs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator

from stockcast.features.build import MIN_HISTORY


def _zoned(value: datetime) -> datetime:
    """SQLite keeps no zone; every stored instant was written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# An instant, always with its zone in the answer (RFC 3339 date-time).
Instant = Annotated[datetime, AfterValidator(_zoned)]


# A ticker symbol as exchanges and Yahoo write them: AAPL, BRK-B, 2330.TW, ^GSPC, EURUSD=X.
TICKER_PATTERN = r"^[A-Za-z0-9.^=_-]{1,32}$"
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN, examples=["AAPL"])]


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["unknown ticker ZZZ; served tickers: AAPL, MSFT"])
    details: Any = None


class Interval(BaseModel):
    lower: float
    upper: float
    level: float = Field(examples=[0.9])


class ModelRef(BaseModel):
    name: str = Field(examples=["stockcast-AAPL"])
    version: str = Field(examples=["3"])
    kind: str = Field(examples=["ridge"])


INTERVALS_DESCRIPTION = (
    "Equal-tailed conformal intervals at every calibrated level (50, 80, 90% and the configured "
    "one), narrowest first; each nested in the next."
)


class HorizonForecast(BaseModel):
    """The forecast of one horizon: the close a number of sessions ahead."""

    horizon: int = Field(examples=[5], description="Sessions of the ticker's exchange ahead of as_of.")
    target_date: date = Field(description="The session whose close is forecast.")
    predicted_close: float = Field(examples=[432.4])
    interval: Interval = Field(description="The configured level's interval.")
    intervals: list[Interval] = Field(default_factory=list, description=INTERVALS_DESCRIPTION)
    model: ModelRef
    request_id: str = Field(description="The forecast log's id of this forecast.")


class ForecastResponse(BaseModel):
    """The forecasts of a ticker at every served horizon (or the one asked for). The fields
    outside ``forecasts`` describe the first of them, the shortest horizon: one session ahead
    by default, as before horizons, so clients of the one-day answer keep working."""

    ticker: str = Field(examples=["AAPL"])
    as_of: date = Field(description="Date of the bar the features describe.")
    horizon: int = Field(default=1, examples=[1], description="Sessions ahead of the fields below.")
    target_date: date = Field(description="The session whose close is forecast.")
    predicted_close: float = Field(examples=[430.9])
    interval: Interval = Field(description="The configured level's interval.")
    intervals: list[Interval] = Field(default_factory=list, description=INTERVALS_DESCRIPTION)
    model: ModelRef
    request_id: str
    forecasts: list[HorizonForecast] = Field(
        default_factory=list, description="Every horizon answered, shortest first; each one logged."
    )


# What a posted close may be, in the ticker's own currency: from sub-penny shares to well past
# the dearest one listed (BRK-A, under 1e6). Outside this, a close is a typo or a probe, and
# closes near float limits overflow the features or the forecast (issue 19).
MIN_PRICE = 1e-6
MAX_PRICE = 1e9
# Sessions a what-if may post: about four years, well inside every exchange calendar.
MAX_RECENT_PRICES = 1000
PRICE_RANGE = f"{MIN_PRICE:.6f} to {MAX_PRICE:,.0f}"
Price = Annotated[float, Field(ge=MIN_PRICE, le=MAX_PRICE, allow_inf_nan=False)]


HORIZON_QUERY = "Sessions ahead: one of the served horizons (STOCKCAST_HORIZONS); every one when omitted."


class ForecastRequest(BaseModel):
    ticker: str = Field(examples=["AAPL"], min_length=1, max_length=32)
    horizon: int | None = Field(default=None, ge=1, le=60, description=HORIZON_QUERY)
    recent_prices: list[Price] | None = Field(
        default=None,
        min_length=MIN_HISTORY,
        max_length=MAX_RECENT_PRICES,
        description=(
            f"What-if: the most recent closes, oldest first ({MIN_HISTORY} to {MAX_RECENT_PRICES} of them), "
            f"each from {PRICE_RANGE}; features are computed from them by the same code "
            "as training, ending at the ticker's current as-of date. Closes the champion turns into a "
            "forecast or interval that is not a finite number are refused (422, naming it)."
        ),
    )

    @field_validator("recent_prices")
    @classmethod
    def _enough_plausible_prices(cls, prices: list[float] | None) -> list[float] | None:
        if prices is None:
            return None
        if len(prices) < MIN_HISTORY:
            raise ValueError(f"recent_prices needs at least {MIN_HISTORY} closes, got {len(prices)}")
        if any(not MIN_PRICE <= price <= MAX_PRICE for price in prices):
            raise ValueError(f"recent_prices must each be from {PRICE_RANGE}")
        return prices


class BatchRequest(BaseModel):
    tickers: list[str] = Field(min_length=1, examples=[["AAPL", "MSFT"]])
    horizon: int | None = Field(default=None, ge=1, le=60, description=HORIZON_QUERY)


class BatchItem(BaseModel):
    ticker: str
    forecast: ForecastResponse | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]


class Liveness(BaseModel):
    status: str = Field(examples=["alive"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    champions: dict[str, str] = Field(examples=[{"AAPL": "3"}])
    problems: list[str] = Field(default_factory=list)


class LoggedForecast(BaseModel):
    request_id: str
    ticker: str
    as_of: date
    horizon: int = Field(default=1, description="Sessions ahead of as_of.")
    target_date: date
    predicted_close: float
    lower: float
    upper: float
    level: float
    model_name: str
    model_version: str
    model_kind: str
    origin: str
    created_at: Instant
    last_close: float | None = Field(default=None, description="The close the forecast was made from.")
    actual_close: float | None = Field(default=None, description="On the forecast's price basis.")
    actual_date: date | None = Field(
        default=None, description="The session scored (after a holiday: the next one)."
    )
    error: float | None = Field(default=None, description="actual - predicted")
    abs_error: float | None = None
    pct_error: float | None = None
    covered: bool | None = Field(default=None, description="Whether the interval held the actual.")
    naive_error: float | None = Field(
        default=None, description="actual - last close: the naive forecast's error."
    )


class PredictionsPage(BaseModel):
    items: list[LoggedForecast]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class VersionSummary(BaseModel):
    version: str
    kind: str
    spec: str
    rmse: float | None = None
    naive_rmse: float | None = None
    skill_vs_naive: float | None = None
    coverage: float | None = None
    directional_accuracy: float | None = None
    direction_p_value: float | None = Field(
        default=None, description="Pesaran-Timmermann: calls against the base rate of up days."
    )
    rmsse: float | None = Field(default=None, description="RMSE over the in-sample naive one-step RMSE (M5).")
    msis: float | None = Field(
        default=None, description="Interval score at the configured level, scaled (M4)."
    )
    mean_scaled_pinball: float | None = Field(
        default=None, description="Pinball loss of the interval bounds, averaged over levels, scaled."
    )
    coverage_by_level: dict[str, float] = Field(
        default_factory=dict, description="Backtest coverage per interval level, keyed '50', '80', '90'."
    )
    data_end: str | None = None
    decision_reason: str | None = None
    test_vs_naive: str | None = Field(default=None, examples=["DM-HLN"])
    p_value_vs_naive: float | None = Field(
        default=None, description="One-sided, Holm-adjusted when picked among several candidates."
    )
    test_vs_champion: str | None = Field(default=None, examples=["DM-HLN"])
    p_value_vs_champion: float | None = None
    alpha: float | None = Field(default=None, description="The gate's significance level.")


class DecisionSummary(BaseModel):
    decided_at: Instant
    action: str = Field(examples=["train"], description="train, promote or rollback")
    trigger: str | None = Field(
        default=None, examples=["drift"], description="first, scheduled, drift or manual"
    )
    promoted: bool
    challenger_version: str | None = None
    champion_version: str | None = None
    reason: str
    test_vs_naive: str | None = None
    p_value_vs_naive: float | None = None
    test_vs_champion: str | None = None
    p_value_vs_champion: float | None = None
    alpha: float | None = None


class HorizonModels(BaseModel):
    ticker: str
    horizon: int = Field(default=1, description="Sessions ahead these models forecast.")
    champion: VersionSummary | None
    challenger: VersionSummary | None = None
    served_version: str | None = Field(default=None, description="The version this API process answers with.")
    decisions: list[DecisionSummary] = Field(
        default_factory=list, description="The latest decisions, newest first."
    )


class TickerModels(HorizonModels):
    """A ticker's models: the top-level fields are the shortest served horizon's (or the one
    asked for), ``horizons`` has each one's."""

    horizons: list[HorizonModels] = Field(
        default_factory=list, description="Per served horizon, shortest first."
    )


class MonitoringDay(BaseModel):
    as_of: date
    status: str
    rmse_ratio: float | None = None
    coverage: float | None = None
    drift_share: float | None = None


class TickerMonitoring(BaseModel):
    ticker: str
    horizon: int = Field(default=1, description="Sessions ahead of the champion judged.")
    as_of: date
    status: str = Field(
        examples=["watch"], description="ok, watch, drift or unknown (too few scored forecasts)"
    )
    reason: str | None = None
    model_version: str | None = None
    evaluated: int = Field(description="Scored forecasts of this champion.")
    rolling_rmse: float | None = None
    rolling_naive_rmse: float | None = None
    backtest_rmse: float | None = None
    rmse_ratio: float | None = None
    days_above: int = 0
    coverage: float | None = None
    directional_accuracy: float | None = None
    mae: float | None = None
    drift_share: float | None = None
    drifted_features: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="Over the last scored window: rmsse, coverage_{50,80,90}, scaled_pinball_{..}, "
        "msis_{..}, mean_scaled_pinball, direction_p_value (Pesaran-Timmermann), direction_base_rate.",
    )
    report_uri: str | None = None
    computed_at: Instant
    history: list[MonitoringDay] = Field(default_factory=list, description="Earlier verdicts, oldest first.")


class RollbackResponse(BaseModel):
    ticker: str
    horizon: int = 1
    champion_version: str
    reason: str


class TrainRequest(BaseModel):
    tickers: list[Ticker] | None = Field(
        default=None, description="Served tickers to train; all when omitted."
    )
    tune_trials: int = Field(default=0, ge=0, le=100, description="Optuna trials per tunable candidate.")


class Job(BaseModel):
    id: str
    kind: str = Field(examples=["train"])
    tickers: list[str]
    status: str = Field(examples=["succeeded"], description="queued, running, succeeded or failed")
    created_at: Instant
    started_at: Instant | None = None
    finished_at: Instant | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="Versions trained and promotion decisions."
    )
    error: str | None = Field(
        default=None, description="Why it failed; while it runs again, why it was queued again."
    )
    owner: str | None = Field(
        default=None,
        description="The process running it (or that will run it); none while it waits for a worker.",
        examples=["stockcast worker on trainer-1 pid 4242"],
    )
    heartbeat_at: Instant | None = Field(
        default=None, description="When its process last said it was alive; none once finished."
    )
    attempts: int = Field(default=0, description="How many times it was started.")
