"""What training and the registry share, below both: model specifications, backtest and
training results, the promotion gate's window and verdict as data, split-conformal intervals
and the tests of forecast superiority. Nothing here imports training, the registry or an
adapter; the sequences that use both sides live in ``stockcast.lifecycle``."""
