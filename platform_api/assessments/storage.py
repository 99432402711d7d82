"""Object storage for uploaded scans and photos, behind settings.storage_url.

A plain path (the default, `.platform/objects`) or a file:// URL is a local folder, written atomically: a
temporary file in the same folder, then os.replace, so a reader never sees half an object. Any other URL is
handed to fsspec (s3://bucket/prefix with s3fs installed, memory:// in tests); object stores write whole
objects, which is atomic already.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path, PurePosixPath

from platform_api.errors import NotFound


class Storage:
    """Bytes under keys such as scans/{scan_id}/scan.ply."""

    def __init__(self, url: str) -> None:
        self.url = url
        local = "://" not in url or url.startswith("file://")
        self.root = Path(url.removeprefix("file://")) if local else None
        self.fs, self.prefix = (None, None) if local else _fsspec(url)

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there."""
        key = _checked(key)
        if self.root is None:
            self.fs.pipe_file(f"{self.prefix}/{key}", data)
            return
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; NotFound when there are none."""
        key = _checked(key)
        try:
            if self.root is None:
                return self.fs.cat_file(f"{self.prefix}/{key}")
            return (self.root / key).read_bytes()
        except FileNotFoundError as e:
            raise NotFound(f"no stored object {key}") from e

    def exists(self, key: str) -> bool:
        key = _checked(key)
        return self.fs.exists(f"{self.prefix}/{key}") if self.root is None else (self.root / key).is_file()


def _fsspec(url: str):
    import fsspec

    fs, prefix = fsspec.core.url_to_fs(url)
    return fs, prefix.rstrip("/")


def _checked(key: str) -> str:
    # keys are built by the service from ids, but a key must never climb out of the storage root
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(part in ("..", ".") for part in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


@lru_cache(maxsize=8)
def storage_for(url: str) -> Storage:
    """The process's storage for this URL (an fsspec filesystem is worth reusing)."""
    return Storage(url)
