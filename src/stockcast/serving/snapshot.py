"""What an API process served, kept on local disk so a restart serves again at once.

Without it a process answers only after MLflow has imported, the registry has been asked and
the feature store has opened: several seconds in which a restarted replica turns traffic
away. With it, a restarted process serves its previous champions and their forecasts within
about two seconds, while a background thread asks the registry and the online store; whatever
moved meanwhile (a promotion, a materialization) replaces the restored entries as soon as that
check finishes. Every forecast served from it is logged like any other, with its as-of date
and features.

The snapshot names the registry it came from and is ignored for any other; a corrupt or
foreign file is ignored with a warning. It is written atomically after each warm-up, each
champion change and at shutdown.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)
FORMAT = 3  # 2: champions and forecasts per horizon; 3: kept answers keep their rendered JSON


class _Champions(Protocol):
    def all(self) -> dict[tuple[str, int], Any]: ...

    def adopt(self, champions: dict[tuple[str, int], Any]) -> None: ...

    def signature(self, ticker: str) -> tuple[tuple[int, str], ...]: ...


class Serving(Protocol):
    """What a snapshot reads and restores of ``state.ServingState``, described here so that this
    module, which ``state`` calls, does not import it back."""

    @property
    def context(self) -> Any: ...

    @property
    def champions(self) -> _Champions: ...

    @property
    def forecasts(self) -> Any: ...


def _identity(state: Serving) -> tuple[int, str]:
    return FORMAT, str(state.context.settings.resolved_tracking_uri)


def save(state: Serving, path: Path) -> None:
    champions = state.champions.all()
    if not champions:
        return
    forecasts = state.forecasts.export() if state.forecasts is not None else {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(pickle.dumps((_identity(state), champions, forecasts)))
        os.replace(partial, path)
    except OSError as error:
        log.warning("could not write the serving snapshot %s: %s", path, error)


def restore(state: Serving, path: Path) -> bool:
    """Adopt the snapshot's champions and forecasts; False when there is none to use."""
    if not path.exists():
        return False
    try:
        # Written by this API into its own data folder (see threat model): trusted like the code.
        identity, champions, forecasts = pickle.loads(path.read_bytes())  # noqa: S301  # nosec B301
    except Exception as error:
        log.warning("ignoring the serving snapshot %s: %s", path, error)
        return False
    if identity != _identity(state):
        log.info("ignoring the serving snapshot %s: written for another registry", path)
        return False
    state.champions.adopt(champions)
    adopted = state.champions.all()
    if not adopted:
        return False
    if state.forecasts is not None:
        state.forecasts.adopt(
            {
                ticker: entry
                for ticker, entry in forecasts.items()
                if entry.versions == state.champions.signature(ticker)
            }
        )
    log.info(
        "serving restored from %s: %s",
        path,
        ", ".join(
            f"{ticker} v{loaded.version}" + ("" if horizon == 1 else f" (+{horizon})")
            for (ticker, horizon), loaded in adopted.items()
        ),
    )
    return True
