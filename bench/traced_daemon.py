"""The daemon under tracemalloc, for bench/load.py --soak --trace: SIGUSR1 writes a snapshot.

Run: python -m bench.traced_daemon DIR run -c verbatim.yaml (the daemon's own arguments after
DIR). Each SIGUSR1 dumps DIR/snapshot-N.bin (N = 1, 2, ...), for `tracemalloc.Snapshot.load`.
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
        tracemalloc.take_snapshot().dump(str(out / f"snapshot-{taken}.bin"))

    tracemalloc.start(8)
    signal.signal(signal.SIGUSR1, dump)
    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
