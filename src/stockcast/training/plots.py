"""Backtest charts, rendered where the backtest ran.

Built on matplotlib's object API (no pyplot state), so a worker thread or a Dask worker can
render them, and the driver only stores the bytes.
"""

from __future__ import annotations

import io

from stockcast.modeling.results import BacktestResult


def backtest_png(ticker: str, result: BacktestResult) -> bytes:
    """The walk-forward forecasts, their interval and the actual closes, as a PNG."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = result.forecasts
    dates = mdates.date2num(frame["date"].to_numpy())
    figure = Figure(figsize=(10, 4), dpi=80)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    axis.fill_between(
        dates, frame["lower"].to_numpy(), frame["upper"].to_numpy(), alpha=0.25, label="interval"
    )
    axis.plot(dates, frame["actual_close"].to_numpy(), color="black", linewidth=1, label="actual")
    axis.plot(dates, frame["predicted_close"].to_numpy(), linewidth=1, label=result.spec.key())
    locator = mdates.AutoDateLocator(maxticks=8)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axis.set_title(f"{ticker}: walk-forward backtest, skill vs naive {result.metrics['skill_vs_naive']:+.3f}")
    axis.legend(loc="upper left")
    # Fixed margins: tight_layout would measure every tick label first and doubles the cost.
    figure.subplots_adjust(left=0.07, right=0.99, top=0.92, bottom=0.1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
