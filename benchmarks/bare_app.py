"""The references for the serving benchmark: FastAPI endpoints that return a fixed JSON body.

- ``app``: an ``async def`` handler, run on the event loop (the framework's ceiling, the
  reference the serving goals are measured against);
- ``sync_app``: the same handler as a ``def``, which FastAPI runs in its thread pool (the
  reference before issue 23; reported beside it).
"""

from fastapi import FastAPI

BODY = {"ticker": "", "predicted_close": 1.0, "interval": {"lower": 0.9, "upper": 1.1, "level": 0.9}}

app = FastAPI()
sync_app = FastAPI()


@app.get("/predict/{ticker}")
async def predict(ticker: str) -> dict[str, object]:
    return {**BODY, "ticker": ticker}


@sync_app.get("/predict/{ticker}")
def predict_sync(ticker: str) -> dict[str, object]:
    return {**BODY, "ticker": ticker}
