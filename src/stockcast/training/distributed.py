"""Where the CPU-heavy part of training runs: on a Dask cluster when ``STOCKCAST_DASK_ADDRESS``
names one, in a local process pool when ``STOCKCAST_TRAINING_WORKERS`` > 1, else inline.

Only ``compute_training`` (backtests and the final fit, a pure function of the rows and the
plan) leaves the driver. Reading features, the registry, MLflow logging and the promotion gate
stay in the driver, so workers need no access to any store and the registry sees one writer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING

import pandas as pd

from stockcast.training.train import Computed, TrainingPlan, compute_training

if TYPE_CHECKING:
    from stockcast.settings import Settings

log = logging.getLogger(__name__)
Job = tuple[str, pd.DataFrame, TrainingPlan]
Outcome = tuple[str, Computed | BaseException]


def compute_many(settings: Settings, jobs: Sequence[Job]) -> Iterator[Outcome]:
    """Each ticker's computed training or the exception it raised, as they complete."""
    if not jobs:
        return
    if settings.dask_address:
        yield from _on_dask(settings.dask_address, jobs)
    elif settings.training_workers > 1 and len(jobs) > 1:
        yield from _on_processes(settings.training_workers, jobs)
    else:
        for ticker, rows, plan in jobs:
            try:
                yield ticker, compute_training(rows, plan)
            except Exception as error:
                yield ticker, error


def _on_processes(workers: int, jobs: Sequence[Job]) -> Iterator[Outcome]:
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = {pool.submit(compute_training, rows, plan): ticker for ticker, rows, plan in jobs}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def _on_dask(address: str, jobs: Sequence[Job]) -> Iterator[Outcome]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(address, timeout=30) as client:
        log.info("training %d ticker(s) on the Dask cluster at %s", len(jobs), address)
        futures = {
            client.submit(compute_training, rows, plan, pure=False, key=f"train-{ticker}-{index}"): ticker
            for index, (ticker, rows, plan) in enumerate(jobs)
        }
        for future in dask_completed(futures):
            ticker = futures[future]
            if future.status == "error":
                yield ticker, future.exception()
            else:
                yield ticker, future.result()
