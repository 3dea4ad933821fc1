"""The price source a setting names. Kept apart from ``sources.py`` because the Yahoo adapter
builds on that module's types: choosing here, ``sources.py`` never imports ``yahoo.py`` back."""

from __future__ import annotations

from stockcast.ingest.sources import AutoSource, FileSource, PriceSource, SampleSource


def make_source(
    spec: str, *, timeout_seconds: float = 20.0, retries: int = 2, cache_dir: str | None = None
) -> PriceSource:
    """Build the source a setting names: ``auto``, ``yahoo``, ``sample`` or ``file:<where>``."""
    if spec == "sample":
        return SampleSource()
    if spec.startswith("file:"):
        return FileSource(spec.removeprefix("file:"))
    from stockcast.ingest.yahoo import YahooSource

    yahoo = YahooSource(timeout_seconds=timeout_seconds, retries=retries, cache_dir=cache_dir)
    if spec == "yahoo":
        return yahoo
    if spec == "auto":
        return AutoSource(yahoo, SampleSource())
    raise ValueError(f"unknown price source {spec!r}")
