"""MLflow adapter: tracking runs, the model registry and its ``champion`` alias.

The only module that talks to MLflow. One registered model per ticker and horizon
(``stockcast-AAPL`` one session ahead, ``stockcast-AAPL-h5`` five); versions carry their
backtest figures as tags; ``champion`` and ``challenger`` are aliases, never stages.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stockcast.modeling.specs import ModelSpec, spec_from_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from stockcast.modeling.results import Computed, TuningResult

log = logging.getLogger(__name__)

EXPERIMENT_NAME = "stockcast"
CHAMPION = "champion"
CHALLENGER = "challenger"
# Bulk reads: model names per search, and results per page.
SEARCH_BATCH = 100
SEARCH_PAGE = 10_000


def model_name_for(ticker: str, horizon: int = 1) -> str:
    """The registered model of a ticker's forecasts ``horizon`` sessions ahead. The one-session
    name is the name models had before horizons; tickers are upper case, so the lower-case
    ``-h{n}`` suffix never meets a ticker's own name."""
    name = "stockcast-" + re.sub(r"[^A-Za-z0-9_.-]", "_", ticker)
    return name if horizon == 1 else f"{name}-h{horizon}"


@dataclass(frozen=True)
class RegisteredVersion:
    ticker: str
    name: str
    version: str
    spec: ModelSpec
    tags: dict[str, str]
    run_id: str | None = None
    horizon: int = 1

    @property
    def kind(self) -> str:
        return self.spec.kind

    def metric(self, key: str) -> float:
        return float(self.tags.get(key, "nan"))


class Registry:
    def __init__(self, tracking_uri: str, artifact_location: str):
        import mlflow

        # MLflow sets its own loggers up on import; keep its chatter out of our console (and
        # its "View run at" lines out of stdout, which a server URI would otherwise print).
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self._client: MlflowClient = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    # -- tracking ---------------------------------------------------------------------------
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            experiment = self._client.get_experiment_by_name(EXPERIMENT_NAME)
            if experiment is None:
                # A tracking server keeps artifacts where it was told to (proxied through it);
                # a database or file backend gets them under the artifact root.
                served = self.tracking_uri.startswith(("http://", "https://", "databricks"))
                self._experiment_id = self._client.create_experiment(
                    EXPERIMENT_NAME, artifact_location=None if served else self.artifact_location
                )
            else:
                self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def log_training(
        self,
        ticker: str,
        computed: Computed,
        lineage: dict[str, str],
        example: pd.DataFrame,
        level: float,
        horizon: int = 1,
    ) -> tuple[str, str]:
        """Log a parent run with one child per candidate and the chosen model; returns
        (parent run id, model URI). Charts arrive rendered; each child is one batch write."""
        import time

        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.models import infer_signature
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from stockcast.modeling.intervals import level_key
        from stockcast.registry.pyfunc_model import OUTPUT_COLUMNS, ForecastModel

        chosen = computed.chosen
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment_id = self.experiment_id()
        client = self._client
        with (
            tempfile.TemporaryDirectory() as folder,
            mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"train-{ticker}{_horizon_suffix(horizon)}-{lineage['data_end']}",
                tags={"ticker": ticker, "horizon": str(horizon), "stage": "train", **lineage},
            ) as parent,
        ):
            now = int(time.time() * 1000)
            for key, result in computed.results.items():
                child = client.create_run(
                    experiment_id,
                    run_name=key,
                    tags={
                        "ticker": ticker,
                        "horizon": str(horizon),
                        "spec": key,
                        "candidate": result.spec.kind,
                        MLFLOW_PARENT_RUN_ID: parent.info.run_id,
                    },
                )
                child_id = child.info.run_id
                params = {"kind": result.spec.kind, **result.spec.params}
                client.log_batch(
                    child_id,
                    metrics=[Metric(name, value, now, 0) for name, value in _finite(result.metrics).items()],
                    params=[Param(name, str(value)) for name, value in params.items()],
                )
                if result.feature_importances:
                    client.log_dict(child_id, result.feature_importances, "feature_importances.json")
                if key in computed.plots:
                    client.log_artifact(child_id, _png_file(folder, key, computed.plots[key]))
                client.set_terminated(child_id)
            mlflow.log_params({"chosen": chosen.spec.key(), "level": level, "horizon": horizon, **lineage})
            mlflow.log_metrics(_finite(chosen.metrics))
            if chosen.spec.key() in computed.plots:
                mlflow.log_artifact(_png_file(folder, chosen.spec.key(), computed.plots[chosen.spec.key()]))
            model = ForecastModel(
                computed.forecaster,
                chosen.spec.key(),
                chosen.spec.kind,
                chosen.interval_bounds,
                level,
                horizon,
            )
            output_columns = [*OUTPUT_COLUMNS] + [
                f"{side}_{level_key(level)}"
                for level in sorted(chosen.interval_bounds)
                for side in ("lower", "upper")
            ]
            output_example = pd.DataFrame({column: [1.0] for column in output_columns})
            # The signature documents the input; no input example, because MLflow would load the
            # model back and serve the example on the driver (a seventh of its share of training).
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=model,
                    signature=infer_signature(example, output_example),
                    pip_requirements=_requirements(chosen.spec.kind),
                )
            return parent.info.run_id, info.model_uri

    def log_study(self, ticker: str, result: TuningResult, horizon: int = 1) -> str:
        """One run per tuned candidate: best parameters, trial counts, optimisation history."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(
            experiment_id=self.experiment_id(),
            run_name=f"tune-{ticker}{_horizon_suffix(horizon)}-{result.kind}",
            tags={"ticker": ticker, "horizon": str(horizon), "stage": "tune", "candidate": result.kind},
        ) as run:
            mlflow.log_params({f"best_{name}": value for name, value in result.best_spec.params.items()})
            mlflow.log_metrics(
                {"best_rmse": result.best_rmse, "trials": result.trials, "pruned_trials": result.pruned}
            )
            with tempfile.TemporaryDirectory() as folder:
                plot = Path(folder) / "optimization_history.png"
                _plot_study(result.study, plot)
                mlflow.log_artifact(str(plot))
            return str(run.info.run_id)

    # -- registry ---------------------------------------------------------------------------
    def register(
        self, ticker: str, model_uri: str, run_id: str, tags: dict[str, str], horizon: int = 1
    ) -> RegisteredVersion:
        from mlflow.exceptions import MlflowException

        name = model_name_for(ticker, horizon)
        try:
            self._client.create_registered_model(name, tags={"ticker": ticker, "horizon": str(horizon)})
        except MlflowException as error:
            if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
                raise
        # A logged model's URI is models:/<model id>; a tracking server wants that id named too.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        created = self._client.create_model_version(
            name, model_uri, run_id=run_id, tags=tags, model_id=model_id
        )
        return RegisteredVersion(
            ticker, name, str(created.version), spec_from_tags(tags), dict(tags), run_id, horizon
        )

    def _registered(self, ticker: str, horizon: int, found: Any) -> RegisteredVersion:
        tags = dict(found.tags)
        return RegisteredVersion(
            ticker, found.name, str(found.version), spec_from_tags(tags), tags, found.run_id, horizon
        )

    def version(self, ticker: str, version: str, horizon: int = 1) -> RegisteredVersion:
        found = self._client.get_model_version(model_name_for(ticker, horizon), version)
        return self._registered(ticker, horizon, found)

    def by_alias(self, ticker: str, alias: str, horizon: int = 1) -> RegisteredVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.get_model_version_by_alias(model_name_for(ticker, horizon), alias)
        except MlflowException:
            return None
        return self._registered(ticker, horizon, found)

    def champion(self, ticker: str, horizon: int = 1) -> RegisteredVersion | None:
        return self.by_alias(ticker, CHAMPION, horizon)

    def versions_of(self, tickers: list[str], horizon: int = 1) -> dict[str, dict[str, RegisteredVersion]]:
        """Every registered version of each ticker's model at ``horizon``, by version number: a
        few searches for all the tickers instead of a request per ticker and version."""
        names = {model_name_for(ticker, horizon): ticker for ticker in tickers}
        found: dict[str, dict[str, RegisteredVersion]] = {ticker: {} for ticker in tickers}
        listed = sorted(names)
        for start in range(0, len(listed), SEARCH_BATCH):
            # Model names hold only [A-Za-z0-9_.-] (model_name_for): safe between quotes.
            quoted = ", ".join(f"'{name}'" for name in listed[start : start + SEARCH_BATCH])
            token = None
            while True:
                page = self._client.search_model_versions(
                    f"name IN ({quoted})", max_results=SEARCH_PAGE, page_token=token
                )
                for found_version in page:
                    ticker = names[found_version.name]
                    found[ticker][str(found_version.version)] = self._registered(
                        ticker, horizon, found_version
                    )
                token = page.token
                if not token:
                    break
        return found

    def aliased(self, tickers: list[str], alias: str = CHAMPION, horizon: int = 1) -> dict[str, str]:
        """The version number ``alias`` names for each ticker that has it at ``horizon``, from
        one listing of the registered models (paged) instead of a request per ticker."""
        return {
            ticker: version
            for (ticker, each), version in self.aliased_all(tickers, [horizon], alias).items()
            if each == horizon
        }

    def aliased_all(
        self, tickers: list[str], horizons: list[int], alias: str = CHAMPION
    ) -> dict[tuple[str, int], str]:
        """``aliased`` for several horizons at once, keyed by (ticker, horizon)."""
        names = {
            model_name_for(ticker, horizon): (ticker, horizon) for ticker in tickers for horizon in horizons
        }
        aliased: dict[tuple[str, int], str] = {}
        token = None
        while True:
            page = self._client.search_registered_models(
                "name LIKE 'stockcast-%'", max_results=1000, page_token=token
            )
            for model in page:
                version = (model.aliases or {}).get(alias)
                if model.name in names and version is not None:
                    aliased[names[model.name]] = str(version)
            token = page.token
            if not token:
                return aliased

    def set_alias(self, ticker: str, alias: str, version: str, horizon: int = 1) -> None:
        self._client.set_registered_model_alias(model_name_for(ticker, horizon), alias, version)

    def tag_version(self, ticker: str, version: str, tags: dict[str, str], horizon: int = 1) -> None:
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name_for(ticker, horizon), version, key, value)

    def load(self, ticker: str, version: str, horizon: int = 1) -> Any:
        """The packaged ``ForecastModel`` of a version, unwrapped for direct calls."""
        import mlflow.pyfunc

        loaded = mlflow.pyfunc.load_model(f"models:/{model_name_for(ticker, horizon)}/{version}")
        return loaded.unwrap_python_model()


def _horizon_suffix(horizon: int) -> str:
    return "" if horizon == 1 else f"-h{horizon}"


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if math.isfinite(value)}


# What a champion of each kind needs beyond the common packages, by distribution name: the
# tree libraries are loaded with the pickled model (XGBoost's CPU-only wheel, never the CUDA one).
KIND_REQUIREMENTS = {"lightgbm": ["lightgbm"], "xgboost": ["xgboost-cpu"]}


def _requirements(kind: str) -> list[str]:
    packages = ["mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", *KIND_REQUIREMENTS.get(kind, [])]
    return [f"{package}=={installed_version(package)}" for package in packages]


def _plot_study(study: Any, path: Path) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        axis = plot_optimization_history(study)
    figure = axis.get_figure(root=True)
    assert figure is not None
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def _png_file(folder: str, key: str, png: bytes) -> str:
    """Write a rendered chart as ``backtest.png`` in a folder of its own (the artifact's name)."""
    path = Path(folder) / re.sub(r"[^A-Za-z0-9_.-]", "_", key) / "backtest.png"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(png)
    return str(path)
