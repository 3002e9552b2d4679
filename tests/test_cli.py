"""The `verbatim` command as ops staff run it: exit codes, messages, and the demo."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.harness.cli import ROOT, verbatim


def test_bad_config_exits_2_naming_file_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('ari:\n  url: "http://127.0.0.1:8088"\n  usrname: "x"\n')
    result = verbatim("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3: ari.usrname:" in result.stderr
    result = verbatim("run", "--config", str(bad))
    assert result.returncode == 2 and "ari.usrname" in result.stderr


def test_unknown_event_loop_exits_2_naming_the_variable() -> None:
    conf = str(ROOT / "config" / "verbatim.example.yaml")
    result = verbatim("run", "--config", conf, env={
        "VERBATIM_EVENT_LOOP": "tokio", "VERBATIM_ARI_PASSWORD": "x",
        "VERBATIM_DATABASE_DSN": "postgresql://u@127.0.0.1:9/v"})
    assert result.returncode == 2
    assert "VERBATIM_EVENT_LOOP='tokio': expected one of asyncio, uvloop" in result.stderr
    assert "Traceback" not in result.stderr and "never awaited" not in result.stderr


def test_example_config_is_valid_and_secrets_stay_out_of_output() -> None:
    secrets = {"VERBATIM_ARI_PASSWORD": "hunter2-ari",
               "VERBATIM_DATABASE_DSN": "postgresql://u:hunter2-db@127.0.0.1/v"}
    result = verbatim("check-config", str(ROOT / "config" / "verbatim.example.yaml"),
                      env=secrets)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_health_reports_each_part(tmp_path: Path, pg_dsn: str) -> None:
    conf = tmp_path / "v.yaml"
    conf.write_text(
        'ari:\n  url: "http://127.0.0.1:9"\n  username: "verbatim"\n'
        f'storage:\n  spool_dir: "{tmp_path}"\n  archive_dir: "{tmp_path / "archive"}"\n'
        "  min_free_mb: 1\n"
    )
    (tmp_path / "archive").mkdir()
    env = {"VERBATIM_ARI_PASSWORD": "pw-not-shown", "VERBATIM_DATABASE_DSN": pg_dsn}
    result = verbatim("health", "-c", str(conf), env=env)
    assert result.returncode == 1  # nothing listens on port 9
    report = json.loads(result.stdout)
    assert report["ari"]["ok"] is False and report["database"]["ok"] is True
    assert report["archive"]["ok"] is True and report["spool"]["ok"] is True
    assert "pw-not-shown" not in result.stdout


@pytest.mark.timeout(120)
def test_demo_runs_calls_and_shows_recordings() -> None:
    # Not under tmp_path: pytest's folders are closed to the postgres user the demo runs as.
    folder = Path(tempfile.mkdtemp(prefix="verbatim-demo-test-"))
    try:
        result = verbatim("demo", "--dir", str(folder), timeout=110)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    for outcome in ("answered", "busy", "no_answer", "abandoned"):
        assert outcome in out
    marks = [line.split(": ", 1)[1].split() for line in out.splitlines() if "-s" in line
             and ": " in line and line.rstrip().endswith(("CA", "C-", "-A", "--"))]
    # two calls in the app: both parties every second of their bridge recording (12 s and 8 s
    # of talk). After the hang-up the recording runs until the daemon's stop reaches the
    # simulator, whose clock ticks on meanwhile: a part second may follow, with both parties
    # or the one left; how long it is depends on the host's load.
    for talk_s, seen_marks in ((12, marks[0]), (8, marks[1])):
        assert seen_marks[:talk_s] == ["CA"] * talk_s, marks
        assert seen_marks[talk_s:] in ([], ["CA"], ["-A"]), marks
    # hook mode: the caller's snoop from before Dial() (alone while 305 rings), the callee's
    # from its answer to its hang-up; neither holds the 3 s paused while the card number was
    # read. 6 s of talk: whether a part second of the hang-up shows depends on where in its
    # second the hook's (real-time) AGI exchange landed the answer
    assert marks[2][:2] == ["C-"] * 2 and marks[2][2:] in (["CA"] * 6, ["CA"] * 7), marks
    assert marks[3] in (["CA"] * 6, ["CA"] * 7), marks
    assert len(marks) == 4
    # the shipped prompts' lengths: the caller's all-party prompt (6.5 s) + 2 s of ringing;
    # outbound, the outside party's prompt after 3 s of ringing; extensions hear none
    waits = out.split("Time before the parties could talk", 1)[1].split("\n\n", 1)[0]
    seen = [line.split()[-2:] for line in waits.splitlines()[1:]]
    assert seen[:5] == [
        ["8.5", "s"], ["9.5", "s"], ["never", "connected"], ["never", "connected"],
        ["never", "connected"]]
    # hook mode: the same 8.5 s within one of the demo's 0.5-s steps: the hook's AGI exchange is
    # real time while the simulator's clock ticks through a step, so the start and the answer
    # are each stamped on one of its ticks
    assert seen[5][1] == "s" and 8.0 <= float(seen[5][0]) <= 9.0, seen
    assert "Traceback" not in result.stderr


async def test_calls_lists_calls_and_tells_a_calls_story(tmp_path: Path, pg_dsn: str) -> None:
    from tests.harness.calls import bridged_call, recordings
    from tests.harness.stack import running_stack

    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        st.sim.hangup(caller_id)
        await st.settle()
    conf = tmp_path / "v.yaml"
    conf.write_text('ari:\n  username: "verbatim"\n'
                    f'storage:\n  archive_dir: "{tmp_path / "archive"}"\n')
    env = {"VERBATIM_ARI_PASSWORD": "x", "VERBATIM_DATABASE_DSN": pg_dsn}
    listing = await asyncio.to_thread(verbatim, "calls", "-c", str(conf), env=env)
    assert listing.returncode == 0, listing.stderr
    assert call_id in listing.stdout and "+14155550100" in listing.stdout
    (recording,) = recordings(st.sim)
    assert recording in listing.stdout and "filed" in listing.stdout
    story = await asyncio.to_thread(verbatim, "calls", "-c", str(conf), "--id", call_id, env=env)
    kinds = [line.split()[1] for line in story.stdout.splitlines() if line.startswith("  ")]
    assert kinds.index("consent.finished") < kinds.index("recording.started") < kinds.index(
        "call.bridged") < kinds.index("call.ended")
    as_json = await asyncio.to_thread(verbatim, "calls", "-c", str(conf), "--json", env=env)
    (row,) = json.loads(as_json.stdout)
    assert row["call_id"] == call_id and len(row["recordings"]) == 1


async def test_coverage_reports_legs_and_gaps(tmp_path: Path, pg_dsn: str) -> None:
    from tests.harness.calls import bridged_call, recordings
    from tests.harness.stack import running_stack

    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.advance(2.0)
        st.sim.fail_recording(recordings(st.sim)[0], cause="disk full")
        await st.settle()
        await st.advance(1.0)
        st.sim.hangup(caller_id)
        await st.settle()
    conf = tmp_path / "v.yaml"
    conf.write_text('ari:\n  username: "verbatim"\n'
                    f'storage:\n  archive_dir: "{tmp_path / "archive"}"\n')
    env = {"VERBATIM_ARI_PASSWORD": "x", "VERBATIM_DATABASE_DSN": pg_dsn}
    out = await asyncio.to_thread(verbatim, "coverage", "-c", str(conf), "--since", "1h",
                                  env=env)
    assert out.returncode == 1, out.stderr  # gaps found: a non-zero status for cron jobs
    assert out.stdout.startswith("calls: 1  legs: 2")
    gap_lines = [line for line in out.stdout.splitlines() if line.startswith("GAP ")]
    assert len(gap_lines) == 2 and all(call_id in line for line in gap_lines)
    bad = await asyncio.to_thread(verbatim, "coverage", "-c", str(conf), "--since", "lately",
                                  env=env)
    assert bad.returncode == 2 and "--since" in bad.stdout
