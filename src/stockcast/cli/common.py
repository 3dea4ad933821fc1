"""What every command shares: the two consoles, the ticker and source options, loading the
context from settings, and turning an expected failure into one red line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from stockcast.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from stockcast.context import Context

# Piped output gets a wide table instead of rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
T = TypeVar("T")

TickersOption = Annotated[
    str | None,
    typer.Option("--tickers", "-t", help="Comma-separated tickers (default: STOCKCAST_TICKERS)."),
]
SourceOption = Annotated[
    str | None,
    typer.Option("--source", help="auto, yahoo, sample or file:<path or URL> (default: STOCKCAST_SOURCE)."),
]


class CommandError(RuntimeError):
    """A failure to report in one line and exit non-zero."""


def expected_errors() -> tuple[type[BaseException], ...]:
    from stockcast.artifacts import ArtifactStoreUnavailableError
    from stockcast.ingest.bars import InvalidBatchError
    from stockcast.ingest.sources import SourceUnavailableError
    from stockcast.store.database import StoreUnavailableError
    from stockcast.store.leases import LeaseHeldError, LeaseLostError

    # LookupError: a stage found nothing to work on (no prices, no features); its message
    # says which command to run first. LeaseHeldError: another process trains the ticker.
    return (
        CommandError,
        SettingsError,
        StoreUnavailableError,
        LeaseHeldError,
        LeaseLostError,
        ArtifactStoreUnavailableError,
        SourceUnavailableError,
        InvalidBatchError,
        LookupError,
    )


@contextmanager
def reported_failures() -> Iterator[None]:
    try:
        yield
    except expected_errors() as error:
        print_error(f"{error}")
        raise typer.Exit(1) from None


def guarded(action: Callable[[], T]) -> T:
    with reported_failures():
        return action()


def print_error(message: str) -> None:
    """One red ``error:`` line on stderr (never wrapped); ``message`` may carry rich markup."""
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


def setting_overrides(tickers: str | None, source: str | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if tickers is not None:
        overrides["tickers"] = tickers
    if source is not None:
        overrides["source"] = source
    return overrides


def load_context(
    tickers: str | None = None, source: str | None = None, activity: str | None = None
) -> Context:
    """The command's context; ``activity`` (``stockcast train``) names it in the training
    leases it takes."""
    from stockcast.context import Context

    return Context(load_settings(**setting_overrides(tickers, source)), activity=activity)
