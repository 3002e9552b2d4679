"""A call's snapshot: its state as stored with its row (`calls.state`, JSONB) and in the
write-ahead journal, from which a restarted daemon adopts the call where it was.

Encoded and decoded by msgspec from the state's own types (recorder.model.state): datetimes as
RFC 3339 strings, the enums as their values, the small records (Stay, Pause...) as arrays and
the others (Prompt, CallDecision...) as objects. Unknown keys are ignored and missing ones take
their defaults, so a snapshot of an older or newer daemon loads. Snapshots written before this
codec (datetimes as {"$dt": iso}) still decode: a daemon upgraded with calls in flight adopts
them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from recorder.model.state import Call

_LEGACY_DT = "$dt"


def encode(call: Call) -> dict[str, Any]:
    """The call's snapshot, as JSON-ready builtins."""
    out: dict[str, Any] = msgspec.to_builtins(call)
    return out


def decode(data: dict[str, Any]) -> Call:
    """A call from its snapshot (either form); ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError(f"not a call snapshot: a {type(data).__name__}")
    if isinstance(data.get("started_at"), dict):  # the form before msgspec
        data = _untag(data)
    try:
        return msgspec.convert(data, Call, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a call snapshot: {exc}") from exc


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _LEGACY_DT in value:
            return value[_LEGACY_DT]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value
