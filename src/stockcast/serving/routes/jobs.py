"""Training in the background: POST /train answers 202 with a job; GET /jobs/{id} follows it,
wherever it runs (the API's threads or a Celery worker)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from stockcast.serving.deps import KEY_REQUIRED, READ_ACCESS, StateDep
from stockcast.serving.schemas import ErrorBody, Job, TrainRequest


def build_router() -> APIRouter:
    """A router per app: FastAPI's included routers must not be shared between app instances."""
    router = APIRouter(tags=["training"])

    @router.post(
        "/train",
        status_code=202,
        response_model=Job,
        responses={
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            404: {"model": ErrorBody},
            422: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
        dependencies=KEY_REQUIRED,
    )
    def train(body: TrainRequest, state: StateDep) -> Job:
        """Start training the given tickers (all served ones by default); the promotion gate
        decides, and a promoted champion is served as soon as the job finishes."""
        served = state.champions.tickers
        tickers = list(dict.fromkeys(t.upper() for t in body.tickers)) if body.tickers else list(served)
        unknown = [ticker for ticker in tickers if ticker not in served]
        if unknown or not tickers:
            raise HTTPException(404, f"not served by this API: {', '.join(unknown) or 'no tickers'}")
        try:
            job_id = state.jobs.submit_training(tickers, body.tune_trials)
        except RuntimeError as error:  # the broker did not take it: the job is recorded as failed
            raise HTTPException(503, str(error)) from error
        return Job(**state.context.store.get_job(job_id))

    @router.get(
        "/jobs/{job_id}", response_model=Job, responses={404: {"model": ErrorBody}}, dependencies=READ_ACCESS
    )
    def job(job_id: str, state: StateDep) -> Job:
        found = state.context.store.get_job(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return Job(**found)

    return router
