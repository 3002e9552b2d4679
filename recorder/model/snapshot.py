"""A call's snapshot: its state as stored with its row (`calls.state`, JSONB) and in the
write-ahead journal, from which a restarted daemon adopts the call where it was.

Encoded and decoded by msgspec from the state's own types (recorder.model.state): datetimes as
RFC 3339 strings, the enums as their values, the small records (Stay, Pause...) as arrays and
the others (Prompt, CallDecision...) as objects. Unknown keys are ignored and missing ones take
their defaults, so a snapshot of an older or newer daemon loads. Snapshots written before this
codec (datetimes as {"$dt": iso}) still decode: a daemon upgraded with calls in flight adopts
them. So do snapshots written before each mode's data had its own record (Call.stasis and
Call.hook, Leg.stasis and Leg.hook): their flat fields are moved there (`_by_mode`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from recorder.model.state import Call, HookCall, HookLeg, StasisCall, StasisLeg

_LEGACY_DT = "$dt"


def encode(call: Call) -> dict[str, Any]:
    """The call's snapshot, as JSON-ready builtins."""
    out: dict[str, Any] = msgspec.to_builtins(call)
    return out


def decode(data: Any) -> Call:
    """A call from its snapshot (either form, as builtins); ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError(f"not a call snapshot: a {type(data).__name__}")
    if isinstance(data.get("started_at"), dict):  # the form before msgspec
        data = _untag(data)
    if "stasis" not in data:  # the form before the per-mode records
        data = _by_mode(data)
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


def _names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)


# Where the flat form kept each mode's fields (its name: the record's, but for one renamed).
_CALL = {"stasis": {n: n for n in _names(StasisCall)},
         "hook": {**{n: n for n in _names(HookCall)}, "hook_sessions": "sessions"}}
_LEG = {"stasis": {n: n for n in _names(StasisLeg)}, "hook": {n: n for n in _names(HookLeg)}}


def _by_mode(data: dict[str, Any]) -> dict[str, Any]:
    """A flat snapshot's mode fields moved into their records (a new dict: `data` is kept)."""
    out = _moved(data, _CALL)
    legs = out.get("legs")
    if isinstance(legs, dict):
        out["legs"] = {k: _moved(v, _LEG) if isinstance(v, dict) else v for k, v in legs.items()}
    return out


def _moved(flat: dict[str, Any], where: dict[str, dict[str, str]]) -> dict[str, Any]:
    out = dict(flat)
    for record, names in where.items():
        out[record] = {new: out.pop(old) for old, new in names.items() if old in out}
    return out
