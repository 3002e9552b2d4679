"""A call's direction: one definition for the configuration's dial strings, the policy, the call
model and the API's search filter."""

from __future__ import annotations

from typing import Final, Literal

Direction = Literal["inbound", "outbound", "internal"]
DIRECTIONS: Final[tuple[Direction, ...]] = ("inbound", "outbound", "internal")
