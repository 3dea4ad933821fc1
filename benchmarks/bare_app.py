"""The reference for the serving benchmark: a FastAPI endpoint that returns a fixed JSON body."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/predict/{ticker}")
def predict(ticker: str) -> dict[str, object]:
    return {"ticker": ticker, "predicted_close": 1.0, "interval": {"lower": 0.9, "upper": 1.1, "level": 0.9}}
