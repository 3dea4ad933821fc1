"""Answers yfinance's HTTP requests from recorded responses, so its real request-and-parse path
runs offline. Only Yahoo itself is replaced; yfinance, its parser and stockcast's adapter run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from requests.adapters import BaseAdapter

NOT_FOUND = b'{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}'
Responder = Callable[[str], tuple[int, bytes]]


class ReplayAdapter(BaseAdapter):
    def __init__(self, respond: Responder):
        super().__init__()
        self.respond = respond
        self.urls: list[str] = []
        self.lock = threading.Lock()

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        with self.lock:
            self.urls.append(request.url)
        status, body = self.respond(request.url)
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.url = request.url
        response.request = request
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self) -> None:
        return None


def replay_session(respond: Responder) -> tuple[requests.Session, ReplayAdapter]:
    adapter = ReplayAdapter(respond)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter


def chart_responder(
    charts: dict[str, bytes], status_for_others: int = 404, body_for_others: bytes = NOT_FOUND
) -> Responder:
    """Serve recorded chart JSON per symbol; cookie and crumb requests get a plain answer."""

    def respond(url: str) -> tuple[int, bytes]:
        if "/finance/chart/" in url:
            symbol = url.split("/finance/chart/", 1)[1].split("?", 1)[0]
            if symbol in charts:
                return 200, charts[symbol]
            return status_for_others, body_for_others
        if "getcrumb" in url:
            return 200, b"replayed-crumb"
        if "/finance/" in url:
            return status_for_others, body_for_others
        return 200, b""

    return respond


RECORDED_CHART = Path(__file__).resolve().parent / "data" / "yahoo_chart_AAPL_2024_1d.json"


def recorded_chart() -> bytes:
    """Yahoo's chart answer for AAPL's 2024 daily bars (the workplace's 30 KB recording, kept in
    tests/data so the suite runs without ../shared)."""
    return RECORDED_CHART.read_bytes()
