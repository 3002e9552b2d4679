"""How long the parties wait before they can talk: the prompts they hear first, and the ring.

Both modes run a call's start in the same order: the caller hears its prompt; then the callee
is dialled and rings; when it answers it hears its own prompt (where one is due) while the
caller still hears ringback (Stasis mode's ringback, hook mode's Dial() `r` option); only then
are they connected. So the wait from the caller's answer is the caller's prompt + the ring time
+ the callee's prompt. Pure: prompt lengths come from the prompts manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recorder.policy.announce import Announcement, When


@dataclass(frozen=True)
class Wait:
    seconds: float  # from the caller's answer until the parties are connected
    parts: tuple[tuple[str, float], ...]  # ("caller's prompt consent-one-party-en", 4.44), ...
    unknown: tuple[str, ...] = ()  # prompt ids of no known length: not counted in `seconds`

    def json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "parts": [{"what": what, "seconds": s} for what, s in self.parts],
            "unknown": list(self.unknown),
        }

    def __str__(self) -> str:
        said = " + ".join(f"{what} {s:.1f} s" for what, s in self.parts)
        if not self.unknown:
            return f"{self.seconds:.1f} s ({said})"
        return (
            f"{self.seconds:.1f} s ({said}; length unknown, not counted: {', '.join(self.unknown)})"
        )


def time_to_talk(
    announcements: Sequence[Announcement], ring_s: float, lengths: Mapping[str, float]
) -> Wait:
    """The wait at a call's start, given the announcements due then (explain's first stage),
    the callee's ring time, and prompt id -> length in seconds."""
    parts: list[tuple[str, float]] = []
    unknown: list[str] = []

    def prompts(when: When) -> None:
        for a in (a for a in announcements if a.when == when):
            if a.prompt in lengths:
                parts.append((f"{a.to}'s prompt {a.prompt}", lengths[a.prompt]))
            elif a.prompt not in unknown:
                unknown.append(a.prompt)

    prompts("before-bridge")
    parts.append(("ring", ring_s))
    prompts("on-answer")
    return Wait(round(sum(s for _, s in parts), 3), tuple(parts), tuple(unknown))
