"""Training a ticker end to end: plan the candidates, compute (backtests, the gate's choice, the
final fit), then log, register and apply the gate's decision.

Training (``stockcast.training``) computes and the registry (``stockcast.registry``) decides
and records; this is the one sequence that uses both, so neither imports the other."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from stockcast.context import Context
from stockcast.failpoints import failpoint
from stockcast.features.build import FEATURE_COLUMNS, TARGET_COLUMN, for_horizon
from stockcast.features.feature_store import FEATURE_SERVICE
from stockcast.modeling.gate import Decision
from stockcast.modeling.intervals import level_key
from stockcast.modeling.results import BacktestResult, Computed
from stockcast.modeling.specs import ModelSpec, spec_tag
from stockcast.registry.champion import apply_decision
from stockcast.registry.mlflow_registry import RegisteredVersion
from stockcast.registry.promotion import decide
from stockcast.store.leases import LeaseLostError, TrainingLease
from stockcast.training.backtest import (
    BacktestConfig,
    best_candidate,
    common_window,
    fit_on_history,
    run_backtests,
)
from stockcast.training.models import default_spec

SCORE_TAGS = (
    "rmse",
    "naive_rmse",
    "skill_vs_naive",
    "coverage",
    "directional_accuracy",
    "direction_p_value",
    "mae",
    "mape_pct",
    "rmsse",
    "mean_scaled_pinball",
)


@dataclass
class TrainingReport:
    ticker: str
    version: str
    spec_key: str
    metrics: dict[str, float]
    decision: Decision
    champion_version: str | None
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    horizon: int = 1


def feature_hash(rows: pd.DataFrame) -> str:
    """A fingerprint of the exact feature matrix and labels a model was trained on."""
    hashed = pd.util.hash_pandas_object(rows[["date", *FEATURE_COLUMNS, TARGET_COLUMN]], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def backtest_config(context: Context, horizon: int = 1) -> BacktestConfig:
    settings = context.settings
    return BacktestConfig(
        test_days=settings.backtest_days,
        refit_every_days=settings.refit_every_days,
        min_train_days=settings.min_train_days,
        train_window_days=settings.train_window_days,
        level=settings.interval_level,
        horizon=horizon,
    )


def sessions_since_champion(rows: pd.DataFrame, champion: RegisteredVersion | None) -> int | None:
    if champion is None or "data_end" not in champion.tags:
        return None
    return int((rows["date"] > pd.Timestamp(champion.tags["data_end"])).sum())


def needs_training(context: Context, rows: pd.DataFrame, champion: RegisteredVersion | None) -> str | None:
    """Why a ticker should be trained now, or None when its champion is current enough."""
    if champion is None:
        return "no champion yet"
    new_sessions = sessions_since_champion(rows, champion) or 0
    if new_sessions >= context.settings.retrain_after_days:
        return f"{new_sessions} new sessions since the champion's data"
    return None


def version_tags(
    result: BacktestResult, rows: pd.DataFrame, lineage: dict[str, str], level: float
) -> dict[str, str]:
    tags = {
        "horizon": str(result.horizon),
        "spec": spec_tag(result.spec),
        "spec_key": result.spec.key(),
        "kind": result.spec.kind,
        "interval_bounds": json.dumps(
            {level_key(level): [lower, upper] for level, (lower, upper) in result.interval_bounds.items()}
        ),
        "level": repr(level),
        "window_start": result.forecasts["date"].iloc[0].date().isoformat(),
        "window_end": result.forecasts["date"].iloc[-1].date().isoformat(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **lineage,
    }
    scores = {key: result.metrics[key] for key in SCORE_TAGS if key in result.metrics}
    scores |= {key: value for key, value in result.metrics.items() if key.startswith(("coverage_", "msis_"))}
    # Only finite figures are kept: a naive forecast has no directional test, for one.
    tags |= {key: repr(float(value)) for key, value in scores.items() if math.isfinite(value)}
    return tags


def tuned_specs(
    context: Context, ticker: str, rows: pd.DataFrame, trials: int, horizon: int = 1
) -> list[ModelSpec]:
    """Tune every configured candidate that has parameters, on the horizon's own labels and
    backtest; each study is logged to MLflow."""
    from stockcast.training.tuning import tune

    specs = []
    for kind in context.settings.models:
        result = tune(rows, kind, trials, backtest_config(context, horizon), context.settings.random_seed)
        if result is not None:
            context.registry.log_study(ticker, result, horizon)
            specs.append(result.best_spec)
    return specs


@dataclass
class TrainingPlan:
    """What a training of one ticker will compare, decided where the registry is reachable."""

    ticker: str
    specs: list[ModelSpec]
    config: BacktestConfig
    seed: int
    champion: RegisteredVersion | None
    trigger: str
    alpha: float = 0.05
    margin: float = 0.0

    @property
    def horizon(self) -> int:
        return self.config.horizon


def plan_training(
    context: Context,
    ticker: str,
    rows: pd.DataFrame,
    force: bool = False,
    tune_trials: int = 0,
    trigger: str = "manual",
    horizon: int = 1,
) -> TrainingPlan | None:
    """The candidates to backtest at ``horizon`` on its labelled ``rows`` (``for_horizon``),
    the champion's own specification always among them; None when the ticker is not forced
    and its champion at that horizon is current."""
    settings = context.settings
    champion = context.registry.champion(ticker, horizon)
    if not force and needs_training(context, rows, champion) is None:
        return None
    specs = [default_spec(kind) for kind in settings.models]
    if tune_trials:
        specs += tuned_specs(context, ticker, rows, tune_trials, horizon)
    if champion is not None:
        specs.append(champion.spec)
    # One backtest per distinct specification.
    specs = list({spec.key(): spec for spec in specs}.values())
    why = "first" if champion is None else trigger if force else "scheduled"
    return TrainingPlan(
        ticker,
        specs,
        backtest_config(context, horizon),
        settings.random_seed,
        champion,
        why,
        settings.promotion_alpha,
        settings.promotion_margin,
    )


def compute_training(rows: pd.DataFrame, plan: TrainingPlan) -> Computed:
    """Backtest the plan's candidates, let the gate choose, chart each, and fit the chosen
    specification on the newest window (pure). When the gate keeps the champion without a
    refit (a window too short to test), the lowest-RMSE candidate is fitted as the challenger."""
    failpoint("train.computing")
    failpoint(f"train.computing.{plan.ticker}")  # one ticker's training alone
    from stockcast.training.plots import backtest_png

    results = run_backtests(rows, plan.specs, plan.config, plan.seed)
    champion_key = plan.champion.spec.key() if plan.champion is not None else None
    decision = decide(common_window(results), champion_key, plan.alpha, plan.margin)
    chosen = (
        results[decision.chosen]
        if decision.promote and decision.chosen in results
        else best_candidate(results)
    )
    forecaster = fit_on_history(chosen.spec, rows, plan.config.train_window_days, plan.seed, plan.horizon)
    plots = {key: backtest_png(plan.ticker, result) for key, result in results.items()}
    return Computed(results, chosen, forecaster, decision, plots)


def training_lineage(rows: pd.DataFrame) -> dict[str, str]:
    """What a registered version records of the rows it was trained on."""
    return {
        "data_start": rows["date"].iloc[0].date().isoformat(),
        "data_end": rows["date"].iloc[-1].date().isoformat(),
        "feature_hash": feature_hash(rows),
        "rows": str(len(rows)),
        "feature_service": FEATURE_SERVICE,
    }


def finish_training(
    context: Context, rows: pd.DataFrame, plan: TrainingPlan, computed: Computed, lease: TrainingLease
) -> TrainingReport:
    """Log the runs, register the chosen model and apply the promotion gate, under ``lease``
    (the ticker's, held since the plan read the champion). A lease lost meanwhile leaves the
    registered version without an alias and raises ``LeaseLostError`` naming it."""
    settings = context.settings
    registry = context.registry
    ticker, champion, results, chosen = plan.ticker, plan.champion, computed.results, computed.chosen
    decision = computed.decision
    lineage = training_lineage(rows)
    example = rows[[*FEATURE_COLUMNS, "close"]].tail(1).reset_index(drop=True)
    horizon = plan.horizon
    run_id, model_uri = registry.log_training(
        ticker, computed, lineage, example, settings.interval_level, horizon
    )
    tags = version_tags(chosen, rows, lineage, settings.interval_level)
    registered = registry.register(ticker, model_uri, run_id, tags, horizon)
    failpoint("train.registered")
    try:
        apply_decision(
            context,
            ticker,
            registered,
            champion,
            common_window(results),
            decision,
            "train",
            lease=lease,
            trigger=plan.trigger,
        )
    except LeaseLostError as error:
        registry.tag_version(
            ticker, registered.version, {"decision": "not applied", "decision_reason": str(error)}, horizon
        )
        raise LeaseLostError(f"{error}; v{registered.version} stays registered without an alias") from None
    return TrainingReport(
        ticker=ticker,
        version=registered.version,
        spec_key=chosen.spec.key(),
        metrics=chosen.metrics,
        decision=decision,
        champion_version=registered.version if decision.promote else (champion.version if champion else None),
        candidates={key: result.metrics for key, result in results.items()},
        horizon=horizon,
    )


def train_ticker(
    context: Context,
    ticker: str,
    rows: pd.DataFrame,
    force: bool = False,
    tune_trials: int = 0,
    trigger: str = "manual",
    horizon: int = 1,
) -> TrainingReport | None:
    """Train one ticker at one horizon on its labelled rows (``training_rows``) when it needs it
    (or when forced); None when its champion was current. With ``tune_trials``, tuned versions
    of the candidates compete too. Holds the ticker's training lease throughout, waiting for
    another trainer as configured."""
    rows = for_horizon(rows, horizon)
    with context.leases.holding(ticker) as lease:
        plan = plan_training(context, ticker, rows, force, tune_trials, trigger, horizon)
        if plan is None:
            return None
        return finish_training(context, rows, plan, compute_training(rows, plan), lease)
