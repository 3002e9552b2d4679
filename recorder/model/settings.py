"""The part of the configuration the call model needs, as one frozen value passed to `step`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallSettings:
    app: str = "verbatim"
    dial_strings: Mapping[str, str] = field(
        default_factory=lambda: {
            "inbound": "PJSIP/{target}",
            "outbound": "PJSIP/{number}@trunk",
            "internal": "PJSIP/{target}",
        }
    )
    dial_timeout_s: int = 30
    # How dialled legs are made: "create" (/channels/create, then /dial after its StasisStart)
    # or "originate" (POST /channels). Both are handled, forwards included.
    dial_method: str = "create"
    consent_media: str = "sound:verbatim/consent"
    ringback_media: str = "tone:ring"
    format: str = "wav"
    default_region: str = "US"
    outside_line_prefix: str = "9"
    extension_pattern: str = r"^[0-9]{2,6}$"
    departments: Mapping[str, str] = field(default_factory=dict)  # extension -> department
    # Attempts to start a segment before the answered party is connected anyway (and the gap
    # reported): a caller must not be left unconnected because the recorder misbehaves.
    max_recording_attempts: int = 3
    # An uncovered interval shorter than this is a request round trip between segments, not a
    # gap worth an ops alert.
    gap_threshold_ms: int = 250
    ring_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # target -> members
    # recorder.policy.Policy: decisions and announcements per party. None: one fixed prompt
    # (consent_media) to the caller and every call recorded (the model's own tests).
    policy: Any = None
    # In-call DTMF controls for calls in the app: {"pause": "*1", "resume": "*2"}; empty: none.
    controls: Mapping[str, str] = field(default_factory=dict)
    max_forwards: int = 5  # a forward loop (A → B → A …) ends as failed after this many hops
