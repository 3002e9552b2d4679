"""Measure a recording from its audio: sample rate, channels, frames, duration.

ARI reports durations in whole seconds and a crashed writer leaves WAV headers that lie, so the
archive measures what is really in the file. WAV (what Asterisk and the dialplan fallback write)
is parsed here without decoding; Asterisk's headerless formats are measured from their size; any
other format goes through ffprobe/ffmpeg (found by pydub).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydub.utils import get_encoder_name, get_prober_name

_PCM, _FLOAT, _ALAW, _MULAW, _GSM610, _EXTENSIBLE = 1, 3, 6, 7, 0x31, 0xFFFE
_GSM_BLOCK, _GSM_BLOCK_SAMPLES = 65, 320  # WAV49: two 33-byte GSM frames packed into 65 bytes
# WAV sizes of 0 or 0xFFFFFFFF mean "not written yet": the writer died before closing the file.
_UNSET_SIZES = (0, 0xFFFFFFFF)

# Asterisk's headerless formats: extension -> (sample rate, bytes per block, samples per block).
RAW_FORMATS: dict[str, tuple[int, int, int]] = {
    "sln": (8000, 2, 1),
    "sln16": (16000, 2, 1),
    "ulaw": (8000, 1, 1),
    "alaw": (8000, 1, 1),
    "gsm": (8000, 33, 160),
    "g722": (16000, 1, 2),
}


class AudioError(Exception):
    """The file is not audio we can measure; the message names the file."""


@dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav", "wav49", "sln", or ffprobe's format name ("ogg", "mp3"…)
    sample_rate: int
    channels: int
    frames: int  # samples per channel
    duration_ms: int


def _info(fmt: str, rate: int, channels: int, frames: int) -> AudioInfo:
    return AudioInfo(fmt, rate, channels, frames, frames * 1000 // rate)


def probe(path: Path) -> AudioInfo:
    """Measure `path`; raises AudioError naming the file when it cannot be decoded. Blocking."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _probe_wav(path, f)
    except OSError as e:
        raise AudioError(f"cannot read {path}: {e.strerror or e}") from e
    ext = path.suffix[1:].lower()
    if ext in RAW_FORMATS:
        return _probe_raw(path, ext)
    return _probe_ffmpeg(path)


def _probe_wav(path: Path, f: BinaryIO) -> AudioInfo:
    size = os.fstat(f.fileno()).st_size
    fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, block, bits
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        body = pos + 8
        if chunk_id == b"fmt ":
            raw = f.read(min(chunk_size, 40))
            if len(raw) < 16:
                raise AudioError(f"{path}: WAV fmt chunk is truncated")
            tag, channels, rate, _byte_rate, block, bits = struct.unpack("<HHIIHH", raw[:16])
            if tag == _EXTENSIBLE and len(raw) >= 26:
                tag = struct.unpack("<H", raw[24:26])[0]  # first two bytes of the SubFormat GUID
            fmt = (tag, channels, rate, block, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{path}: WAV data chunk before any fmt chunk")
            remaining = size - body
            if chunk_size in _UNSET_SIZES or chunk_size > remaining:
                chunk_size = remaining  # header never finalised: trust the file size
            return _wav_info(path, fmt, chunk_size)
        elif chunk_size == 0xFFFFFFFF:
            break  # an unfinished chunk before the data: nothing after it can be located
        pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise AudioError(f"{path}: WAV file has no data chunk")


def _wav_info(path: Path, fmt: tuple[int, int, int, int, int], data_bytes: int) -> AudioInfo:
    tag, channels, rate, block, _bits = fmt
    if channels < 1 or rate < 1 or block < 1:
        raise AudioError(
            f"{path}: WAV fmt chunk is invalid (channels={channels}, rate={rate}, block={block})"
        )
    if tag in (_PCM, _FLOAT, _ALAW, _MULAW):
        return _info("wav", rate, channels, data_bytes // block)
    if tag == _GSM610 and block == _GSM_BLOCK:
        return _info("wav49", rate, channels, data_bytes // _GSM_BLOCK * _GSM_BLOCK_SAMPLES)
    return _probe_ffmpeg(path)  # ADPCM and other compressed WAV: let ffmpeg count


def _probe_raw(path: Path, ext: str) -> AudioInfo:
    rate, block_bytes, block_samples = RAW_FORMATS[ext]
    size = path.stat().st_size
    return _info(ext, rate, 1, size // block_bytes * block_samples)


def _run(argv: list[str], path: Path, timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, check=False, timeout=timeout)
    except FileNotFoundError as e:
        raise AudioError(f"cannot measure {path}: {argv[0]} is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise AudioError(f"cannot measure {path}: {argv[0]} timed out") from e


def _probe_ffmpeg(path: Path) -> AudioInfo:
    """ffprobe for rate/channels, then a full decode to count frames: container durations can be
    missing or wrong in a file whose writer crashed, decoded samples cannot."""
    # "file:" stops ffmpeg from reading a name like "concat:…" or "http:…" as a protocol.
    url = f"file:{path.absolute()}"
    probe = _run(
        [str(get_prober_name()), "-v", "error", "-print_format", "json", "-show_streams",
         "-show_format", url],
        path,
        60,
    )  # fmt: skip
    try:
        info: dict[str, Any] = json.loads(probe.stdout or b"{}")
    except ValueError:
        info = {}
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if probe.returncode != 0 or stream is None:
        why = probe.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path} is not decodable audio" + (f": {why[-1]}" if why else ""))
    rate = int(stream.get("sample_rate") or 0)
    channels = int(stream.get("channels") or 0)
    if rate < 1 or channels < 1:
        raise AudioError(f"{path}: audio stream has no sample rate or channels")
    # Decode to 16-bit mono at the source rate and count bytes: 2 per frame, constant memory.
    argv = [str(get_encoder_name()), "-nostdin", "-v", "error", "-i", url, "-map", "0:a:0",
            "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]  # fmt: skip
    frames = 0
    # stderr goes to a file: a pipe nobody reads while we drain stdout could fill and block ffmpeg.
    with tempfile.TemporaryFile() as err:
        try:
            with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err) as proc:
                assert proc.stdout is not None
                while chunk := proc.stdout.read(1 << 16):
                    frames += len(chunk)
        except FileNotFoundError as e:
            raise AudioError(f"cannot measure {path}: {argv[0]} is not installed") from e
        err.seek(0)
        err_text = err.read().decode(errors="replace")
    if proc.returncode != 0:
        why = err_text.strip().splitlines()
        raise AudioError(f"{path}: decoding failed" + (f": {why[-1]}" if why else ""))
    fmt = str(info.get("format", {}).get("format_name", "unknown")).split(",")[0]
    return _info(fmt, rate, channels, frames // 2)
