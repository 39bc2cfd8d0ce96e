"""Progress bars for long runs (scenario run, replay, backtest, export): rich on a
terminal only.

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

    ``in_bytes``: ``total`` is a size in bytes (shown as MB and MB/s); ``unit``: shown
    as ``done/total unit`` (``"s of scenario time"``); otherwise a percentage only.
    """

    def __init__(
        self,
        description: str,
        total: float,
        *,
        in_bytes: bool = False,
        unit: str | None = None,
        console: Console | None = None,
    ) -> None:
        console = console or Console(stderr=True)
        columns: list[ProgressColumn] = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
        ]
        if in_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        if unit is not None:
            columns.append(TextColumn(f"{{task.completed:.0f}}/{{task.total:.0f}} {unit}"))
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

    def update(self, completed: float, total: float | None = None) -> None:
        """Move the bar; ``total`` when it is known only once the work has started."""
        self._progress.update(self._task, completed=completed, total=total)


def tracked(reader: RecordingReader, bar: ProgressBar) -> Iterator[RecordedMessage]:
    """The reader's messages, moving ``bar`` (total: the file's size) as they are read."""
    for n, message in enumerate(reader, 1):
        yield message
        if n % UPDATE_EVERY == 0:
            bar.update(reader.bytes_read)
    bar.update(reader.bytes_read)
