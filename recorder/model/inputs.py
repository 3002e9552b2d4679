"""Inputs to the call model that do not come from Asterisk's WebSocket.

Adapters report the outcome of commands they ran (a failed request, a filed recording) as events,
so the model's state changes only through `step`, and a replay sees the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.ari.events import Event
from recorder.model.commands import Command


@dataclass(frozen=True)
class CommandFailed(Event):
    command: Command | None = None
    status: int = 0  # HTTP status from ARI, 0 when Asterisk could not be reached
    message: str = ""


@dataclass(frozen=True)
class RecordingFiled(Event):
    name: str = ""
    path: str = ""
    sha256: str = ""
    bytes: int = 0
    duration_ms: int | None = None  # None: the audio could not be measured (filed anyway)
    audio_error: str | None = None


@dataclass(frozen=True)
class RecordingFileFailed(Event):
    name: str = ""
    error: str = ""
