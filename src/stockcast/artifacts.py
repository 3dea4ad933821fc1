"""The artifact store: raw batches, feature tables and reports under one root, local or remote.

The root is a folder or any fsspec URL (``s3://bucket/prefix``); keys are relative paths.
Writes go to a temporary key first and are moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class ArtifactStoreUnavailableError(RuntimeError):
    """The artifact store cannot be reached or written (endpoint down, no permission, full)."""


def _is_transport_error(error: Exception) -> bool:
    if isinstance(error, FileNotFoundError):
        return False  # an answer, not a failure to get one
    module = type(error).__module__
    return isinstance(error, OSError) or module.startswith(("botocore", "aiobotocore", "s3fs"))


class ArtifactStore:
    def __init__(self, root: str, s3_endpoint: str | None = None):
        """``s3_endpoint``: an S3-compatible server (MinIO) for s3:// roots; credentials come
        from the standard AWS variables or files, never from here."""
        from fsspec.core import url_to_fs

        self.root = root.rstrip("/")
        options = {}
        if s3_endpoint and self.root.startswith(("s3://", "s3a://")):
            options["client_kwargs"] = {"endpoint_url": s3_endpoint}
        self.fs: AbstractFileSystem
        self.fs, self._base = url_to_fs(self.root, **options)

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def version(self, key: str) -> str:
        """An identity of the object's current content (ETag on S3, size and time elsewhere)."""
        with self._reaching("looking up", key):
            info = self.fs.info(self._path(key))
        tag = info.get("ETag") or info.get("etag")
        return str(tag) if tag else f"{info.get('size')}:{info.get('mtime') or info.get('LastModified')}"

    def download(self, key: str, destination: Path) -> None:
        """Copy an object to a local file, replacing it whole (written aside, then renamed)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = destination.with_name(f".tmp-{uuid.uuid4().hex}")
        staging.write_bytes(self.read_bytes(key))
        os.replace(staging, destination)

    @contextmanager
    def _reaching(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if not _is_transport_error(error):
                raise
            raise ArtifactStoreUnavailableError(
                f"artifact store {self.root} unavailable ({action} {key}): {error}"
            ) from error

    def url(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}"

    def _path(self, key: str) -> str:
        return f"{self._base.rstrip('/')}/{key.lstrip('/')}"

    def exists(self, key: str) -> bool:
        with self._reaching("looking up", key):
            return bool(self.fs.exists(self._path(key)))

    def write_bytes(self, key: str, payload: bytes) -> str:
        path = self._path(key)
        parent = path.rsplit("/", 1)[0]
        with self._reaching("writing", key):
            self.fs.makedirs(parent, exist_ok=True)
            staging = f"{parent}/.tmp-{uuid.uuid4().hex}"
            with self.fs.open(staging, "wb") as handle:
                handle.write(payload)
            self.fs.mv(staging, path)
        return self.url(key)

    def read_bytes(self, key: str) -> bytes:
        with self._reaching("reading", key), self.fs.open(self._path(key), "rb") as handle:
            return bytes(handle.read())

    def write_parquet(self, key: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.write_bytes(key, buffer.getvalue())

    def read_parquet(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(key)))

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        start = len(self._base.rstrip("/")) + 1
        with self._reaching("listing", prefix):
            if not self.fs.exists(base):
                return []
            return sorted(path[start:] for path in self.fs.find(base))
