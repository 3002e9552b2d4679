"""probe(): durations measured from real audio files (wave module, sox, ffmpeg)."""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.storage.audio import AudioError, AudioInfo, probe

WavWriter = Callable[..., Path]  # the make_wav fixture (conftest.py)


def _patch_sizes(path: Path, riff: int, data: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", riff)
    pos = raw.index(b"data")
    raw[pos + 4 : pos + 8] = struct.pack("<I", data)
    path.write_bytes(bytes(raw))


def _soxi_samples(path: Path) -> int:
    return int(subprocess.run(["soxi", "-s", str(path)], capture_output=True, text=True,
                              check=True).stdout)  # fmt: skip


@pytest.mark.parametrize(
    "seconds,rate,channels,sampwidth",
    [(1.0, 8000, 1, 2), (2.5, 16000, 2, 2), (0.37, 48000, 1, 3), (1.0, 8000, 1, 1)],
)
def test_pcm_wav(
    make_wav: WavWriter, seconds: float, rate: int, channels: int, sampwidth: int
) -> None:
    path = make_wav("a.wav", seconds, rate=rate, channels=channels, sampwidth=sampwidth)
    frames = round(seconds * rate)
    assert probe(path) == AudioInfo("wav", rate, channels, frames, frames * 1000 // rate)


def test_empty_data_chunk_is_zero_duration(make_wav: WavWriter) -> None:
    info = probe(make_wav("empty.wav", frames=0))
    assert (info.frames, info.duration_ms) == (0, 0)


@pytest.mark.parametrize("riff,data", [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0, 0xFFFFFFFF)])
def test_crashed_writer_header_uses_file_size(make_wav: WavWriter, riff: int, data: int) -> None:
    path = make_wav("crashed.wav", 3.0)
    _patch_sizes(path, riff, data)
    assert probe(path).duration_ms == 3000


def test_file_cut_short_counts_what_is_there(make_wav: WavWriter) -> None:
    path = make_wav("cut.wav", 2.0)
    path.write_bytes(path.read_bytes()[: 44 + 8000 * 2 + 1])  # 1 s of audio and half a sample
    assert probe(path).frames == 8000


def test_sox_wav_and_gsm_wav49(tmp_path: Path) -> None:
    pcm, gsm = tmp_path / "sox.wav", tmp_path / "gsm.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(pcm), "synth", "1.5", "sine", "440"],
                   check=True)  # fmt: skip
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "gsm-full-rate", str(gsm),
                    "synth", "2", "sine", "440"], check=True)  # fmt: skip
    assert probe(pcm) == AudioInfo("wav", 8000, 1, _soxi_samples(pcm), 1500)
    info = probe(gsm)
    assert (info.format, info.frames, info.duration_ms) == ("wav49", _soxi_samples(gsm), 2000)


def test_adpcm_wav_goes_through_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "adpcm.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "ima-adpcm", str(path),
                    "synth", "1", "sine", "440"], check=True)  # fmt: skip
    info = probe(path)
    assert info.sample_rate == 8000 and abs(info.duration_ms - 1000) <= 70  # whole ADPCM blocks


@pytest.mark.parametrize("ext,codec", [("ogg", "libopus"), ("mp3", "libmp3lame")])
def test_compressed_formats_via_ffmpeg(tmp_path: Path, ext: str, codec: str) -> None:
    path = tmp_path / f"call.{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=2", "-c:a", codec, str(path)],
                   check=True)  # fmt: skip
    info = probe(path)
    assert (info.sample_rate, info.channels) == (48000, 1)
    assert abs(info.duration_ms - 2000) <= 60  # codec priming/padding frames


def test_raw_sln(tmp_path: Path) -> None:
    path = tmp_path / "x.sln"
    path.write_bytes(b"\0\1" * 12000)
    assert probe(path) == AudioInfo("sln", 8000, 1, 12000, 1500)


@pytest.mark.parametrize("name", ["notes.wav", "notes.mp3", "notes"])
def test_non_audio_is_an_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("Dear client, this is not audio.\n" * 20)
    with pytest.raises(AudioError, match=re.escape(str(path))):
        probe(path)


def test_broken_wav_structures(tmp_path: Path, make_wav: WavWriter) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match=r"cannot read .*missing\.wav"):
        probe(missing)
    no_data = tmp_path / "nodata.wav"
    no_data.write_bytes(make_wav("ok.wav").read_bytes()[:36])  # header up to the data chunk
    with pytest.raises(AudioError, match=r"nodata\.wav: WAV file has no data chunk"):
        probe(no_data)
    zero_rate = tmp_path / "zero.wav"
    raw = bytearray(make_wav("ok2.wav").read_bytes())
    raw[24:28] = b"\0\0\0\0"
    zero_rate.write_bytes(bytes(raw))
    with pytest.raises(AudioError, match=r"zero\.wav: WAV fmt chunk is invalid"):
        probe(zero_rate)
