"""API keys: compared as SHA-256 digests in constant time; never logged."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from fastapi import HTTPException, Request


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    def __init__(self, keys: Iterable[str]):
        # Only digests are kept, so a memory dump or a debugger shows no key.
        self._digests = [_digest(key) for key in keys]

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def accepts(self, presented: str) -> bool:
        candidate = _digest(presented)
        found = False
        for known in self._digests:  # every digest compared, whichever matches
            found |= hmac.compare_digest(candidate, known)
        return found


def presented_key(request: Request) -> str | None:
    """The key a request presents (``X-API-Key``, else ``Authorization: Bearer``), read from the
    raw headers: on the forecast routes the rate limiter asks this of every request."""
    header = authorization = None
    for name, value in request.scope.get("headers") or ():
        if name == b"x-api-key" and header is None:
            header = value
        elif name == b"authorization" and authorization is None:
            authorization = value
    if header:
        return header.decode("latin-1")
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def check_key(request: Request, keys: ApiKeys) -> None:
    """401 without a key, 403 with a wrong one, 403 when the server has no keys at all."""
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, "this route needs an API key (X-API-Key or Authorization: Bearer)")
    if not keys.configured or not keys.accepts(key):
        raise HTTPException(403, "the API key is not valid")
