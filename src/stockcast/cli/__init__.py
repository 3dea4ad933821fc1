"""The ``stockcast`` command line. Commands assemble adapters from settings and call stages.

``app`` assembles the commands; one module per group defines them (``data``, ``training``,
``serving``, ``models``, ``monitoring``, ``operations``); ``render`` and ``progress`` are how
results look on the console; ``common`` holds what every command shares."""

from stockcast.cli.app import app, main

__all__ = ["app", "main"]
