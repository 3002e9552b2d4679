"""The daemon under tracemalloc, for bench/load.py --soak --trace.

Run: python -m bench.traced_daemon DIR run -c verbatim.yaml (the daemon's own arguments after
DIR). The first SIGUSR1 starts tracing (not from the start: the daemon's imports under
tracemalloc take minutes); each SIGUSR1 dumps DIR/snapshot-N.bin (N = 1, 2, ...), for
`tracemalloc.Snapshot.load`: snapshot-2 against snapshot-1 is what was allocated in between and
is still held.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from recorder.cli.main import main as daemon_main


def main() -> int:
    out = Path(sys.argv[1])
    taken = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        if not tracemalloc.is_tracing():
            tracemalloc.start(8)
        part = out / f"snapshot-{taken}.part"
        tracemalloc.take_snapshot().dump(str(part))
        part.rename(out / f"snapshot-{taken}.bin")  # complete when it has its name

    signal.signal(signal.SIGUSR1, dump)
    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
