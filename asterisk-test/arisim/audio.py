"""Audio for the simulator and for tests: tones, a crash-safe WAV writer, tone detection.

Every simulated party sends a sine tone of its own frequency; a bridge recording holds the sum of
the tones of the parties that were bridged, sample-accurately. `tone_map` tells, window by window,
which of a set of frequencies a WAV file contains, so a test can check what was recorded when.

Files are 8 kHz, 16-bit, mono PCM WAV, as Asterisk writes `format=wav` (formats/format_wav.c).
The header is rewritten after every append, so a reader (or a crash) never sees a stale size.
"""

from __future__ import annotations

import math
import operator
import os
import struct
import wave
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

RATE = 8000
TONE_AMPLITUDE = 6000  # per tone; three parties still fit in int16
_HEADER_SIZE = 44


def tone_samples(
    freqs: Iterable[float], start: int, count: int, amplitude: int = TONE_AMPLITUDE
) -> array[int]:
    """`count` int16 samples of the sum of sines at `freqs`, from absolute sample index `start`.

    The phase depends only on the absolute index, so consecutive chunks join without clicks and a
    tone keeps its phase across a file.
    """
    hz = [round(f) for f in freqs if f]
    if not hz or count <= 0:
        return silence(count)
    acc: list[int] | None = None
    for f in hz:
        seg = _periodic(f, amplitude, start, count)
        acc = seg if acc is None else list(map(operator.add, acc, seg))
    assert acc is not None
    if len(hz) * amplitude > 32767:
        acc = [32767 if s > 32767 else (-32768 if s < -32768 else s) for s in acc]
    return array("h", acc)


_PERIOD_CACHE: dict[tuple[int, int], list[int]] = {}


def _periodic(f: int, amplitude: int, start: int, count: int) -> list[int]:
    """Samples of one integer-Hz tone; one period is cached (8000/gcd(f, 8000) samples)."""
    key = (f, amplitude)
    table = _PERIOD_CACHE.get(key)
    if table is None:
        period = RATE // math.gcd(f, RATE)
        w = 2.0 * math.pi * f / RATE
        table = [round(amplitude * math.sin(w * i)) for i in range(period)]
        _PERIOD_CACHE[key] = table
    period = len(table)
    offset = start % period
    reps = (offset + count) // period + 1
    return (table * reps)[offset : offset + count]


def silence(count: int) -> array[int]:
    return array("h", bytes(2 * max(0, count)))


def _header(data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        RATE,
        RATE * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


class WavWriter:
    """Appends 16-bit mono samples to a WAV file, keeping the header valid after every write.

    `append=True` continues an existing valid WAV (ifExists=append), else the file is truncated.
    """

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.samples = 0
        self._unwritten = 0  # trailing silence counted in `samples` but not yet in the file
        if append and path.exists() and path.stat().st_size >= _HEADER_SIZE:
            self.samples = (path.stat().st_size - _HEADER_SIZE) // 2
            self._f = open(path, "r+b")  # noqa: SIM115 - kept open for the recording's life
            self._f.seek(0, os.SEEK_END)
        else:
            self._f = open(path, "w+b")  # noqa: SIM115
            self._f.write(_header(0))
        self._fix_header()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(self, samples: array[int]) -> None:
        if not samples or self._f.closed:
            return
        self._write_silence()
        self._f.seek(0, os.SEEK_END)
        self._f.write(samples.tobytes())
        self.samples += len(samples)
        self._fix_header()

    def add_silence(self, count: int) -> None:
        """`count` samples of silence, put in the file only at the next write, truncate or
        close (load benchmarks: one file extension instead of a write and a header per step;
        until then the file is shorter than `samples`)."""
        if count > 0 and not self._f.closed:
            self.samples += count
            self._unwritten += count

    def _write_silence(self) -> None:
        if self._unwritten:
            self._unwritten = 0
            self._f.truncate(_HEADER_SIZE + 2 * self.samples)  # extends with zero bytes

    def truncate(self, samples: int) -> None:
        """Drop audio after `samples` (silence trimming at the end of a recording)."""
        self._write_silence()
        if self._f.closed or samples >= self.samples:
            return
        self.samples = samples
        self._f.truncate(_HEADER_SIZE + 2 * samples)
        self._fix_header()

    def _fix_header(self) -> None:
        self._f.seek(0)
        self._f.write(_header(self.samples * 2))
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._write_silence()
            self._fix_header()
            self._f.close()


def read_samples(path: str | os.PathLike[str]) -> tuple[int, array[int]]:
    """(rate, samples) of a 16-bit mono WAV."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: not 16-bit mono")
        data = array("h")
        data.frombytes(w.readframes(w.getnframes()))
        return w.getframerate(), data


def wav_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in a WAV file (0.0 for a header-only file)."""
    with wave.open(os.fspath(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def tone_levels(
    samples: Sequence[int], freqs: Sequence[int], rate: int = RATE, window_s: float = 0.1
) -> list[dict[int, float]]:
    """Per window, the amplitude (int16 units) of each frequency: a DFT bin by sin/cos sums."""
    n = max(1, round(rate * window_s))
    tables: dict[int, tuple[list[float], list[float]]] = {}
    for f in freqs:
        w = 2.0 * math.pi * f / rate
        tables[f] = ([math.cos(w * i) for i in range(n)], [math.sin(w * i) for i in range(n)])
    out: list[dict[int, float]] = []
    for start in range(0, len(samples), n):
        chunk = samples[start : start + n]
        m = len(chunk)
        levels: dict[int, float] = {}
        for f, (cos_t, sin_t) in tables.items():
            c = sum(map(operator.mul, chunk, cos_t))
            s = sum(map(operator.mul, chunk, sin_t))
            levels[f] = 2.0 * math.hypot(c, s) / m
        out.append(levels)
    return out


def tone_map(
    wav_path: str | os.PathLike[str],
    freqs: Sequence[int],
    window_s: float = 0.1,
    min_amplitude: float = TONE_AMPLITUDE / 4,
) -> list[set[int]]:
    """Which of `freqs` are present in each `window_s` window of the file (last may be partial)."""
    rate, samples = read_samples(wav_path)
    return [
        {f for f, a in levels.items() if a >= min_amplitude}
        for levels in tone_levels(samples, freqs, rate, window_s)
    ]


def tones_per_second(
    wav_path: str | os.PathLike[str], freqs: Sequence[int], min_fraction: float = 0.5
) -> list[set[int]]:
    """Per whole second, the tones present in at least `min_fraction` of its 0.1-s windows."""
    windows = tone_map(wav_path, freqs, 0.1)
    out: list[set[int]] = []
    for i in range(0, len(windows), 10):
        group = windows[i : i + 10]
        out.append({f for f in freqs if sum(f in w for w in group) >= min_fraction * len(group)})
    return out
