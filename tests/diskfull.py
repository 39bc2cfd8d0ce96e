"""A real full disk for tests: a small tmpfs, filled to the last page and freed again.

Mounting needs root, as the test command runs (``make test``); without it the test
fails saying so — never a silent skip.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CHUNK = 64 * 1024


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kb: int = 4096) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` mounted at ``path`` for the block, unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"a disk-full test needs root to mount a tmpfs (make test runs as root): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


class DiskFiller:
    """Fills a filesystem with one file until ``ENOSPC``; :meth:`free` gives it back."""

    def __init__(self, directory: Path) -> None:
        self.file = directory / "filler"

    def fill(self) -> int:
        """Write until the disk is full (to the last byte); the bytes written."""
        written = 0
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (CHUNK, 4096, 1):
                chunk = b"\0" * size
                while True:
                    try:
                        n = os.write(fd, chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    written += n
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.file.unlink(missing_ok=True)
