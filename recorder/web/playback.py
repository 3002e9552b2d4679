"""One playback for the whole call, and a waveform per recording, made from the archive's files.

The whole call is one WAV: each file's audio placed where the timeline lays it
(recorder.web.timeline.Track spans: the coverage proof's placement), silence where nothing was
recorded, so it plays with the timeline's spacing and its length is the call's recorded span.
Where files overlap (hook mode records each party through its own snoop, and a snoop hears
both directions of that party's bridge), each instant is taken from one file only, the one
covering most of the call first: two snoops of one conversation summed would double every
voice. ffmpeg places the pieces (atrim, adelay) and mixes them (amix) into one stream.

Both are derived files, kept under the archive (`<archive>/.derived/<call_id>/`, mode 0640,
named by a hash of their inputs, so a changed input makes a new file) and served with the same
scope and access-log rows as the recordings themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydub.utils import get_encoder_name

from recorder.model.coverage import Span, subtract
from recorder.storage.audio import AudioError, probe
from recorder.storage.store import DERIVED
from recorder.web.timeline import Track

PEAKS: Final = 160  # bars per waveform
_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True)
class Piece:
    path: str
    offset_s: float  # where in the file
    length_s: float
    at_s: float  # where in the whole-call stream


def pieces(tracks: Sequence[Track], paths: Mapping[str, Path]) -> tuple[datetime | None,
                                                                        list[Piece]]:
    """Where the stream starts (None: nothing recorded), and the pieces of files it plays:
    every instant from one file, the files covering most taken first."""
    usable = [t for t in tracks if t.spans and t.name in paths]
    usable.sort(key=lambda t: -sum((b - a).total_seconds() for a, b in t.spans))
    taken: list[Span] = []
    chosen: list[tuple[str, float, datetime, datetime]] = []
    for track in usable:
        in_file = 0.0
        for a, b in track.spans:
            for c, d in subtract([(a, b)], taken):
                chosen.append((str(paths[track.name]), in_file + (c - a).total_seconds(), c, d))
            in_file += (b - a).total_seconds()
        taken += list(track.spans)
    if not chosen:
        return None, []
    start = min(c for _, _, c, _ in chosen)
    out = [Piece(path, round(off, 4), round((d - c).total_seconds(), 4),
                 round((c - start).total_seconds(), 4))
           for path, off, c, d in sorted(chosen, key=lambda x: x[2])]  # fmt: skip
    return start, out


def _derived(archive: Path, call_id: str) -> Path:
    folder = archive / DERIVED / call_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    return folder


def _write(path: Path, make: Any) -> Path:
    """Make `path` through a temporary file beside it (another request may be making it too:
    the last rename wins, and both wrote the same bytes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        make(Path(tmp))
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def whole_call(archive: Path, call_id: str, parts: Sequence[Piece]) -> Path:
    """The whole call's WAV, made once per set of inputs. Blocking (ffmpeg)."""
    rate = max((_rate(Path(p.path)) for p in parts), default=8000)
    key = hashlib.sha256(json.dumps(
        [rate, [asdict(p) | {"sha": _file_id(Path(p.path))} for p in parts]]).encode()
    ).hexdigest()[:20]  # fmt: skip
    target = _derived(archive, call_id) / f"call-{key}.wav"
    if target.is_file():
        return target
    return _write(target, lambda tmp: _mix(parts, rate, tmp))


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _rate(path: Path) -> int:
    try:
        return probe(path).sample_rate
    except AudioError:
        return 8000


def _mix(parts: Sequence[Piece], rate: int, out: Path) -> None:
    files = list(dict.fromkeys(p.path for p in parts))
    argv = [get_encoder_name(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for f in files:
        argv += ["-i", f]
    chains = []
    for i, p in enumerate(parts):
        delay = round(p.at_s * rate)
        chains.append(
            f"[{files.index(p.path)}:a]atrim=start={p.offset_s}:duration={p.length_s},"
            f"asetpts=PTS-STARTPTS,aresample={rate},aformat=channel_layouts=mono,"
            f"adelay={delay}S:all=1[p{i}]"
        )
    inputs = "".join(f"[p{i}]" for i in range(len(parts)))
    chains.append(f"{inputs}amix=inputs={len(parts)}:duration=longest:normalize=0[out]")
    argv += ["-filter_complex", ";".join(chains), "-map", "[out]", "-ac", "1", "-ar",
             str(rate), "-c:a", "pcm_s16le", "-f", "wav", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AudioError(f"ffmpeg could not mix the call: {done.stderr.decode()[-300:]}")


def waveform(archive: Path, call_id: str, name: str, path: Path, sha256: str) -> list[float]:
    """PEAKS loudest sample values (0..1) across the file, computed once and kept. Blocking."""
    target = _derived(archive, call_id) / f"{name}-{sha256[:16]}.peaks.json"
    try:
        found = json.loads(target.read_text(encoding="utf-8"))
        if isinstance(found, list):
            return [float(x) for x in found]
    except (OSError, ValueError):
        pass
    values = _peaks(path)
    _write(target, lambda tmp: tmp.write_text(json.dumps(values), encoding="utf-8"))
    return values


def _peaks(path: Path) -> list[float]:
    argv = [get_encoder_name(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i",
            str(path), "-ac", "1", "-ar", "4000", "-f", "s16le", "-"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AudioError(f"{path}: ffmpeg could not decode it")
    samples = array("h")
    samples.frombytes(done.stdout[: len(done.stdout) // 2 * 2])
    if not samples:
        return [0.0] * PEAKS
    size = max(len(samples) // PEAKS, 1)
    out = []
    for i in range(PEAKS):
        chunk = samples[i * size:(i + 1) * size]
        out.append(round(max((abs(x) for x in chunk), default=0) / 32768, 3))
    return out


def waveform_svg(values: Sequence[float], label: str) -> str:
    """A small bar chart of the peaks, drawn on the server."""
    bars = "".join(
        f'<rect x="{i * 3}" y="{round(20 - v * 19, 1)}" width="2" height="{round(max(v * 38, 0.5), 1)}"/>'  # noqa: E501
        for i, v in enumerate(values)
    )
    return (f'<svg class="waveform" viewBox="0 0 {len(values) * 3} 40" role="img" '
            f'aria-label="{label}" preserveAspectRatio="none">{bars}</svg>')  # fmt: skip


def stream_paths(recordings: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """name -> stored path of each filed recording (checked against the archive later)."""
    return {r["name"]: r["path"] for r in recordings
            if r.get("status") == "filed" and r.get("path")}  # fmt: skip
