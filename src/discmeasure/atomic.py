"""Atomic file output: write to a temporary file beside the target, then rename.

A reader (or a resumed batch) therefore sees either the complete old file, the
complete new file, or nothing -- never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "write_text", "write_bytes", "default_mode"]


def default_mode(*, folder: bool = False) -> int:
    """The permissions a plain ``open()`` / ``mkdir()`` would give under the current umask.

    ``tempfile`` creates its files 0600 and folders 0700 (private); outputs renamed from them
    would stay unreadable to colleagues on a shared server, unlike files written directly.
    """
    return (0o777 if folder else 0o666) & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux); else set
    and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None):
    """Context manager yielding a temporary path that is renamed onto ``path`` on success.

    The temporary file is in the same folder (same file system, so the rename is
    atomic) and keeps the target's suffixes (writers that look at the extension,
    like nibabel, still work). On error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
