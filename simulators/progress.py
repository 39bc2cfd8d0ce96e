"""Progress bars for long runs (replay, backtest, export): rich on a terminal only.

Without a terminal (a pipe, a CI log) nothing is drawn, so output stays plain and
the same from run to run. Bars go to stderr: stdout keeps the result (``--json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from simulators.recording import RecordedMessage, RecordingReader

UPDATE_EVERY = 1000
"""Messages between two updates of a bar that follows a recording."""


class ProgressBar:
    """``with ProgressBar("backtest", total) as bar: ... bar.update(done)``.

    ``in_bytes``: ``total`` is a size in bytes (shown as MB and MB/s); otherwise the
    bar shows a percentage only.
    """

    def __init__(
        self, description: str, total: int, *, in_bytes: bool, console: Console | None = None
    ) -> None:
        console = console or Console(stderr=True)
        columns: list[ProgressColumn] = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
        ]
        if in_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        columns.append(TimeRemainingColumn())
        self._progress = Progress(
            *columns, console=console, transient=True, disable=not console.is_terminal
        )
        self._task = self._progress.add_task(description, total=max(total, 1))

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)


def tracked(reader: RecordingReader, bar: ProgressBar) -> Iterator[RecordedMessage]:
    """The reader's messages, moving ``bar`` (total: the file's size) as they are read."""
    for n, message in enumerate(reader, 1):
        yield message
        if n % UPDATE_EVERY == 0:
            bar.update(reader.bytes_read)
    bar.update(reader.bytes_read)
