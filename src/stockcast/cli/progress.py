"""Progress of a long command on stderr: a live bar on a terminal, a line per tenth in a log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from stockcast.cli.common import errors


@contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A live bar on a terminal; in a log (cron, CI, a container) one line per tenth of the
    work with the elapsed time, so that a 500-ticker run shows where it is."""
    if not errors.is_terminal:
        yield _logged_progress(total)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=total)

        def step(description: str) -> None:
            bar.update(task, advance=1, description=description)

        yield step


def _logged_progress(total: int) -> Callable[[str], None]:
    import time

    started = time.monotonic()
    done = 0
    every = max(1, total // 10)

    def step(description: str) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == total:
            errors.print(
                f"progress {done}/{total} ({done / max(total, 1):.0%}) {description}, "
                f"{time.monotonic() - started:.0f} s",
                highlight=False,
            )

    return step
