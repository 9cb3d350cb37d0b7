"""The metadata scan's records kept across processes: one file per user and Python, never trusted
blindly.

The file is ``metadata-<cache tag>-<uid>-<format>.marshal`` in the cache directory (``marshal``
is built in, already loaded, and reads a record without a Python object per distribution; the
format in the name keeps two releases of lazypatch that share a Python from overwriting each
other's file at every start). It is used only if it belongs to this user and nobody else may
write it, and if its header names this format, this exact Python (``sys.hexversion``) and this
uid; anything else (truncated, garbage, another version's format) is ignored and the scan runs as
without a cache. It is written to a temporary file that is then renamed over it (``os.replace``),
so concurrent starts and a writer killed midway never leave a torn file to read. Failures are
logged once at DEBUG, never raised.
"""

import marshal
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

_MAGIC = b"lazypatch-metadata"
_FORMAT = 2  # 2: a record of an absent directory holds while it is absent
_MAX_BYTES = 64 << 20
_MAX_DIRECTORIES = 256
_STALE_TEMP_NS = 3600 * 10**9


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else -1


def path(cache_dir: str) -> "Optional[str]":
    """The cache file of this user and Python in ``cache_dir``; None where there can be none."""
    tag = sys.implementation.cache_tag
    if not tag:
        return None
    return os.path.join(cache_dir, f"metadata-{tag}-{_uid()}-{_FORMAT}.marshal")


def _header() -> "Tuple[bytes, int, int, int]":
    return (_MAGIC, _FORMAT, sys.hexversion, _uid())


def _debug(message: str, *args: object) -> None:
    from ._log import logger

    logger().debug("metadata cache: " + message, *args)


def load(cache_dir: str) -> "Dict[str, Tuple[Any, ...]]":
    """Directory -> record tuple from the cache file; empty if absent or not trustworthy."""
    filename = path(cache_dir)
    if filename is None:
        return {}
    try:
        fd = os.open(filename, os.O_RDONLY)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
            _debug("ignoring %s: owned by uid %d, mode %o", filename, info.st_uid, info.st_mode)
            return {}
        if info.st_size > _MAX_BYTES:
            _debug("ignoring %s: %d bytes", filename, info.st_size)
            return {}
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        data = marshal.loads(b"".join(chunks))
        if data.__class__ is not tuple or len(data) != 2 or data[0] != _header():
            _debug("ignoring %s: written by another version or Python", filename)
            return {}
        records = data[1]
        if type(records) is not dict:
            raise ValueError("records are not a dict")
        return records
    except Exception as exc:
        _debug("ignoring %s: %s: %s", filename, type(exc).__name__, exc)
        return {}
    finally:
        os.close(fd)


def store(cache_dir: str, records: "Dict[str, Tuple[Any, ...]]") -> None:
    """Replace the cache file with ``records`` (atomically); failures are logged at DEBUG."""
    filename = path(cache_dir)
    if filename is None:
        return
    if len(records) > _MAX_DIRECTORIES:
        records = dict(list(records.items())[-_MAX_DIRECTORIES:])
    temp = f"{filename}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        _remove_stale_temp_files(cache_dir)
        data = marshal.dumps((_header(), records))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temp, filename)
    except Exception as exc:
        _debug("not written to %s: %s: %s", cache_dir, type(exc).__name__, exc)
        try:
            os.unlink(temp)
        except OSError:
            pass


def _remove_stale_temp_files(cache_dir: str) -> None:
    """Temporary files of writers killed long ago (a live writer renames its own in moments)."""
    old = time.time_ns() - _STALE_TEMP_NS
    for name in os.listdir(cache_dir):
        if name.startswith("metadata-") and name.endswith(".tmp"):
            full = os.path.join(cache_dir, name)
            try:
                if os.stat(full).st_mtime_ns < old:
                    os.unlink(full)
            except OSError:
                pass
