"""Spool scan: the daemon's files, the dialplan fallback's files, and everything else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recorder.storage.spool import FallbackRecording, OwnRecording, UnknownFile, classify, scan


def test_scan_classifies_and_never_touches(tmp_path: Path) -> None:
    names = {
        "20261125T191425-3fa9c2d1-s1.wav": b"a" * 10,
        "20261125T191425-3fa9c2d1-s12.WAV": b"b",
        "fallback-1795631195-1795631195.79-inbound-+4930123456-214.wav": b"c",
        "fallback-1795631195-1795631195.80-outbound--.wav": b"d",
        "notes.txt": b"e",
        "20261125T191425-3FA9C2D1-s1.wav": b"f",  # upper-case hex: not our call id
        "20261125T191425-3fa9c2d1.wav": b"g",  # no segment
        "fallback-1795631195-1795631195.79-sideways-1-2.wav": b"h",
        "fallback-1795631195-sys-1795631195.79-inbound-1-2.wav": b"i",
        ".20261125T191425-3fa9c2d1-s1.wav.tmp": b"j",
    }
    for name, data in names.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "subdir").mkdir()
    (tmp_path / "link.wav").symlink_to(tmp_path / "notes.txt")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    entries = scan(tmp_path)
    by_name = {e.path.name: e for e in entries}
    assert [e.path.name for e in entries] == sorted(by_name)

    own = by_name["20261125T191425-3fa9c2d1-s1.wav"]
    assert isinstance(own, OwnRecording)
    assert (own.call_id, own.segment, own.fmt, own.size) == (
        "20261125T191425-3fa9c2d1",
        1,
        "wav",
        10,
    )
    assert own.name == "20261125T191425-3fa9c2d1-s1"
    assert own.mtime.tzinfo is UTC
    own12 = by_name["20261125T191425-3fa9c2d1-s12.WAV"]
    assert isinstance(own12, OwnRecording) and (own12.segment, own12.fmt) == (12, "WAV")

    fb = by_name["fallback-1795631195-1795631195.79-inbound-+4930123456-214.wav"]
    assert isinstance(fb, FallbackRecording)
    assert fb.started_at == datetime.fromtimestamp(1795631195, UTC)
    assert (fb.uniqueid, fb.direction, fb.from_number, fb.to_number, fb.fmt) == (
        "1795631195.79", "inbound", "+4930123456", "214", "wav",
    )  # fmt: skip
    assert fb.name == "fallback-1795631195-1795631195.79-inbound-+4930123456-214"
    empty = by_name["fallback-1795631195-1795631195.80-outbound--.wav"]
    assert isinstance(empty, FallbackRecording)
    assert (empty.from_number, empty.to_number) == (None, None)

    unknown = {n for n, e in by_name.items() if isinstance(e, UnknownFile)}
    assert unknown == set(names) - {
        "20261125T191425-3fa9c2d1-s1.wav", "20261125T191425-3fa9c2d1-s12.WAV",
        "fallback-1795631195-1795631195.79-inbound-+4930123456-214.wav",
        "fallback-1795631195-1795631195.80-outbound--.wav",
    } | {"subdir", "link.wav"}  # fmt: skip
    link = by_name["link.wav"]
    assert isinstance(link, UnknownFile) and link.reason == "symbolic link"
    dir_entry = by_name["subdir"]
    assert isinstance(dir_entry, UnknownFile) and dir_entry.reason == "not a regular file"

    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before and (tmp_path / "link.wav").is_symlink()


def test_classify_by_name_alone() -> None:
    assert isinstance(classify(Path("/x/../20261125T191425-3fa9c2d1-s1.wav")), OwnRecording)
    assert isinstance(classify(Path("20261125T191425-3fa9c2d1-s1.wav/")), OwnRecording)
    big_epoch = classify(Path("fallback-999999999999-1.2-inbound-1-2.wav"))
    assert isinstance(big_epoch, UnknownFile) and "epoch" in big_epoch.reason


def test_empty_spool(tmp_path: Path) -> None:
    assert scan(tmp_path) == []
