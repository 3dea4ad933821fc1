"""Where the CPU-heavy part of training runs: on a Dask cluster when ``STOCKCAST_DASK_ADDRESS``
names one, in a local process pool when ``STOCKCAST_TRAINING_WORKERS`` > 1, else inline.

Only ``compute_training`` (backtests and the final fit, a pure function of the rows and the
plan) leaves the driver. Reading features, the registry, MLflow logging and the promotion gate
stay in the driver, so workers need no access to any store and the registry sees one writer.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from stockcast.lifecycle.train import TrainingPlan, compute_training
from stockcast.modeling.results import Computed

if TYPE_CHECKING:
    from stockcast.settings import Settings

log = logging.getLogger(__name__)
Key = TypeVar("Key", bound=Hashable)  # what names a job: (ticker, horizon) in the daily cycle
Job = tuple[Key, pd.DataFrame, TrainingPlan]
Outcome = tuple[Key, Computed | BaseException]


def compute_many(settings: Settings, jobs: Iterable[Job[Key]]) -> Iterator[Outcome[Key]]:
    """Each job's computed training or the exception it raised, as they complete. Jobs are
    submitted as the iterable yields them, so workers start while the driver still plans."""
    if settings.dask_address:
        yield from _on_dask(settings.dask_address, jobs)
    elif settings.training_workers > 1:
        yield from _on_processes(settings.training_workers, jobs)
    else:
        for key, rows, plan in jobs:
            try:
                yield key, compute_training(rows, plan)
            except Exception as error:
                yield key, error


def _on_processes(workers: int, jobs: Iterable[Job[Key]]) -> Iterator[Outcome[Key]]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(compute_training, rows, plan): key for key, rows, plan in jobs}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def _on_dask(address: str, jobs: Iterable[Job[Key]]) -> Iterator[Outcome[Key]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(address, timeout=30) as client:
        futures = {}
        completed = dask_completed()
        for index, (key, rows, plan) in enumerate(jobs):
            name = f"train-{plan.ticker}-h{plan.horizon}-{index}"
            future = client.submit(compute_training, rows, plan, pure=False, key=name)
            futures[future] = key
            completed.add(future)
        log.info("training %d model(s) on the Dask cluster at %s", len(futures), address)
        for future in completed:
            key = futures[future]
            if future.status == "error":
                yield key, future.exception()
            else:
                yield key, future.result()
