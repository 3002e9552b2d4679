"""Small PCM WAV files for tests that need real audio files of a known length."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

WavWriter = Callable[..., Path]


def write_wav(
    path: Path,
    seconds: float = 1.0,
    *,
    rate: int = 8000,
    channels: int = 1,
    sampwidth: int = 2,
    frames: int | None = None,
) -> Path:
    """A PCM WAV of a quiet sawtooth (not silence, so hashes differ by length and rate)."""
    n = frames if frames is not None else round(seconds * rate)
    sample = bytearray()
    for i in range(n):
        v = (i % 64) * 2  # fits every sample width
        sample += v.to_bytes(sampwidth, "little", signed=sampwidth > 1) * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(bytes(sample))
    return path
