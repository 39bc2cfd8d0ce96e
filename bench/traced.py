"""Run a module as ``__main__`` under tracemalloc (bench/memory.py ``--trace``).

    python bench/traced.py hazwatch.cli run --config FILE

On SIGUSR1 the process collects garbage and writes a tracemalloc snapshot to the file
named by ``TRACED_SNAPSHOT`` (written under a temporary name, then renamed, so the
benchmark sees a complete file). One frame per allocation (``TRACED_FRAMES``
for more): the figures are grouped by the line that allocated.
"""

from __future__ import annotations

import gc
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def _dump(_signum: int, _frame: FrameType | None) -> None:
    out = Path(os.environ["TRACED_SNAPSHOT"])
    part = out.with_name(out.name + ".part")
    gc.collect()
    tracemalloc.take_snapshot().dump(str(part))
    part.replace(out)


def main() -> None:
    tracemalloc.start(int(os.environ.get("TRACED_FRAMES", "1")))
    signal.signal(signal.SIGUSR1, _dump)
    module = sys.argv[1]
    # as ``python -m`` would have it: the working directory first, not bench/ (whose
    # ingest.py would shadow the ingest package)
    sys.path[0] = str(Path.cwd())
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
