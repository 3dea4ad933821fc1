"""forecast log indexes a new row enters only at their end: the rows awaiting an actual by id,
and the scored rows by ticker (for monitoring and the history), which a row joins when it is
scored

Every forecast served enters the log's indexes before it is answered. The three indexes led by
the ticker put a busy API's rows into a page per ticker and index at each commit: at 50 tickers
a commit of 48 rows took 2.5 ms, where the same rows in indexes that only grow at their end
take 0.4-0.6 ms (SQLite, measured by the issue 23 benchmark). Every query keeps an index:

- forecasts awaiting their actual (scoring): ``ix_forecasts_awaiting`` (id), rows without an
  actual only;
- a ticker's scored forecasts (monitoring, the gate's live evidence):
  ``ix_forecasts_scored`` (ticker, as_of, id), scored rows only;
- a ticker's history by target date (``GET /predictions``, the dashboard): the scored rows by
  ``ix_forecasts_scored_target`` (ticker, target_date, id), with the rows awaiting an actual
  (at most a few weeks of them) from ``ix_forecasts_awaiting``.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

AWAITING = "actual_close IS NULL"
SCORED = "actual_close IS NOT NULL"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(name, "forecasts", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.drop_index("ix_forecasts_ticker_target", table_name="forecasts")
    op.drop_index("ix_forecasts_ticker_horizon_asof", table_name="forecasts")
    op.drop_index("ix_forecasts_open", table_name="forecasts")
    _partial("ix_forecasts_awaiting", ["id"], AWAITING)
    _partial("ix_forecasts_scored", ["ticker", "as_of", "id"], SCORED)
    _partial("ix_forecasts_scored_target", ["ticker", "target_date", "id"], SCORED)


def downgrade() -> None:
    op.drop_index("ix_forecasts_scored_target", table_name="forecasts")
    op.drop_index("ix_forecasts_scored", table_name="forecasts")
    op.drop_index("ix_forecasts_awaiting", table_name="forecasts")
    op.create_index("ix_forecasts_open", "forecasts", ["ticker", "actual_close"])
    op.create_index("ix_forecasts_ticker_horizon_asof", "forecasts", ["ticker", "horizon", "as_of"])
    op.create_index("ix_forecasts_ticker_target", "forecasts", ["ticker", "target_date"])
