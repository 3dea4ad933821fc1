"""Hyperparameter tuning with Optuna on the walk-forward score.

Trials are scored on the window that *precedes* the promotion gate's window, so the gate later
judges tuned parameters on days the tuner never saw; tuning on the gate's own window would
make the tuned model look better than it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from stockcast.modeling.results import TuningResult
from stockcast.modeling.specs import ModelSpec
from stockcast.training.backtest import BacktestConfig, NotEnoughHistoryError, walk_forward
from stockcast.training.models import DEFAULT_PARAMS

SearchSpace = Callable[[Any], dict[str, Any]]

SEARCH_SPACES: dict[str, SearchSpace] = {
    "ridge": lambda trial: {"alpha": trial.suggest_float("alpha", 1e-2, 1e3, log=True)},
    "random_forest": lambda trial: {
        "n_estimators": trial.suggest_int("n_estimators", 50, 200, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
        "max_features": trial.suggest_float("max_features", 0.3, 1.0),
    },
    "lightgbm": lambda trial: {
        **DEFAULT_PARAMS["lightgbm"],
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.1, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 3, 31),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 200, log=True),
    },
    "arima": lambda trial: {"p": trial.suggest_int("p", 0, 2), "q": trial.suggest_int("q", 0, 2)},
    "xgboost": lambda trial: {
        **DEFAULT_PARAMS["xgboost"],
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.1, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 50.0, log=True),
    },
}
# Kinds whose space tunes some of their parameters: the others keep their defaults.
PARTIAL_SPACES = {"lightgbm", "xgboost"}


def tuning_window(rows: pd.DataFrame, config: BacktestConfig) -> pd.DataFrame:
    """The rows whose labels are known at the gate's first scored origin: the tuner never sees
    the days it is judged on. At horizon h the label of a row is the close h sessions later,
    so the last h - 1 rows before that origin are left out too."""
    return rows.iloc[: len(rows) - config.test_days - (config.horizon - 1)].reset_index(drop=True)


def tune(
    rows: pd.DataFrame, kind: str, trials: int, config: BacktestConfig, seed: int = 0
) -> TuningResult | None:
    """Search ``kind``'s space with seeded TPE and median pruning; None for a kind with no
    parameters or with too little history before the gate's window."""
    if kind not in SEARCH_SPACES or trials < 1:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    history = tuning_window(rows, config)
    tuning_config = replace(
        config,
        test_days=min(
            config.test_days,
            max(len(history) - config.min_train_days - (config.horizon - 1) - config.calibration_days, 0),
        ),
    )
    if tuning_config.test_days < config.refit_every_days or len(history) < tuning_config.rows_needed:
        return None

    def objective(trial: optuna.Trial) -> float:
        spec = ModelSpec(kind, SEARCH_SPACES[kind](trial))

        def report(step: int, rmse: float) -> None:
            trial.report(rmse, step)
            if trial.should_prune():
                raise optuna.TrialPruned

        result = walk_forward(history, spec, tuning_config, seed, on_block=report)
        return result.metrics["rmse"]

    study = optuna.create_study(
        study_name=f"{kind}",
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    try:
        study.optimize(objective, n_trials=trials)
    except NotEnoughHistoryError:
        return None
    best = study.best_trial
    params = {**DEFAULT_PARAMS[kind], **best.params} if kind in PARTIAL_SPACES else dict(best.params)
    pruned = sum(1 for trial in study.trials if trial.state == optuna.trial.TrialState.PRUNED)
    return TuningResult(
        kind, ModelSpec(kind, params), float(study.best_value), len(study.trials), pruned, study
    )
