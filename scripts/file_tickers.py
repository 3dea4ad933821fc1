"""Print the tickers of a parquet or CSV file of bars, comma-separated (for `make evaluate`)."""

from __future__ import annotations

import sys

import pandas as pd


def main(path: str) -> None:
    frame = pd.read_parquet(path, columns=["ticker"]) if path.endswith(".parquet") else pd.read_csv(path)
    print(",".join(sorted(str(ticker) for ticker in frame["ticker"].unique())))


if __name__ == "__main__":
    main(sys.argv[1])
