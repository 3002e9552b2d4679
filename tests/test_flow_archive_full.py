"""A full archive is not lost audio: the recording waits in the spool and is filed when space
returns; the alert is about the disk, once, not a missing recording or a gap on the call.

The archive is a real, tiny filesystem (a 1 MiB tmpfs mounted by the test, as root; CI runs as
root), filled to the last byte before the call ends.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.harness.calls import CALLEE_HZ, CALLER_HZ, assert_both_tones
from tests.harness.stack import running_stack


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Iterator[Path]:
    archive = tmp_path / "archive"
    archive.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0750", "tmpfs", str(archive)],
                   check=True)
    try:
        yield archive
    finally:
        subprocess.run(["umount", "-l", str(archive)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the filesystem is full; the filler's path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


async def test_a_full_archive_keeps_the_recording_waiting_then_files_it(
    tmp_path: Path, pg_dsn: str, tiny_archive: Path
) -> None:
    async with running_stack(tmp_path, pg_dsn,
                             storage={"spool_settle_s": 0.1, "spool_sweep_s": 0.3}) as st:
        st.sim.set_endpoint("PJSIP/201", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        call_id = await st.until_bridged()
        await st.advance(4.0)
        filler = await asyncio.to_thread(fill, tiny_archive)
        with capture_logs() as logs:
            call, legs, (rec,), _events = await st.hang_up(caller.id, call_id)
        assert call.status == "ended" and call.outcome == "answered"
        assert (rec.status, rec.path) == ("finished", None)
        assert rec.error and rec.error.startswith("waiting to be filed: archive full")
        assert rec.sha256 and rec.duration_ms and abs(rec.duration_ms - 4000) <= 100
        assert all(leg.covered_ms == leg.talked_ms for leg in legs)  # safe: not a gap
        assert await st.repo.gaps(call.started_at, call_id) == []
        alarms = [(e["event"], e["log_level"]) for e in logs
                  if e["log_level"] in ("warning", "error")]
        assert alarms == [("archive.full", "error")]  # the disk, once; nothing on the call
        (spooled,) = st.spool.iterdir()  # the audio is safe where Asterisk wrote it
        filler.unlink()  # space returns: the next sweep files it
        for _ in range(100):
            row = (await st.repo.recordings(call_id))[0]
            if row.status == "filed":
                break
            await asyncio.sleep(0.1)
        assert (row.status, row.sha256, row.error) == ("filed", rec.sha256, None)
        assert not spooled.exists()
        assert_both_tones(Path(row.path or ""), 4.0)
