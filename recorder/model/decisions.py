"""Deciding again whenever the call's path changes, and acting on a flip. Both modes.

Policy decides at the start (consent.decide_at_start) and again at every change of the path: a
party joining by blind or attended transfer, a forward (a 302, or on no answer), a ring group's
member answering (it becomes the callee), a hook-mode Dial() followed to a new party — from the
same facts `verbatim explain` builds (consent.facts_of). When the decision flips:

- recording → not recording: every live recording stops at once, before the joining party can
  be heard in it, and the rest of the call (until policy records again) is stored as not
  recorded on purpose (`Call.unrecorded_since`): a policy stop, never a gap. Stopping is
  immediate because a party whom policy forbids recording must not be recorded for a second.
- not recording → recording: nothing is recorded until every party present has heard the
  announcement now due (policy.announcements_on_start: whoever heard none, one-party wording
  included), the joining party before it joins; only then does a recording start. Nobody is
  recorded unannounced, at the cost of the seconds the announcements take.

The retention class and `decided_by` follow the new deciding rule (`Call.decision`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from recorder.model.consent import decision_of, remember
from recorder.model.flow import Step, stop_recordings
from recorder.policy import Join


def path_changed(
    s: Step,
    why: str,
    channel_id: str | None = None,
    *,
    join: Join | None = None,
    answered_by: str | None = None,
) -> None:
    """Note the change in the call's path, decide again, and stop recording if policy says so
    now (starting again waits for the announcements: `Call.recording_due`)."""
    call, policy = s.call, s.settings.policy
    if join is not None:
        call.joins.append(join)
    if answered_by is not None:
        call.answered_by = answered_by
    if policy is None:
        return
    was = call.record
    decision = decision_of(call, policy)
    remember(call, decision)
    detail: dict[str, Any] = call.decision.detail() if call.decision else {}
    s.record("consent.decision", channel_id, why=why, **detail)
    if was == decision.record:
        return
    fields: dict[str, Any] = {
        "channel_id": channel_id, "why": why, "decided_by": list(decision.decided_by),
        "reason": decision.reason, "retention": decision.retention,
    }
    kind = "consent.recording_stopped" if was else "consent.recording_due"
    if was:
        call.unrecorded_since = s.at
        stop_recordings(s)
    s.log(kind, **fields)
    s.record(kind, channel_id, why=why, decided_by=fields["decided_by"],
             reason=decision.reason, retention=decision.retention)


# did=<number>, trunk=<endpoint name>: what the dialplan may add after a call's target.
_PATH_ARG = re.compile(r"^(did|trunk)=([0-9A-Za-z*#+._-]{0,64})$")


def take_path_args(s: Step, args: Sequence[str], channel_name: str) -> None:
    """The DID and trunk a call came in on, for policy's route rules: `did=<number>` and
    `trunk=<name>` among the dialplan's arguments (Stasis() after the target, or the record
    hook's); empty values (an unset variable) are "not known". A trunk not given is the
    calling endpoint of an inbound call (PJSIP/<endpoint>-<n>), or the endpoint an outbound
    dial string names (PJSIP/{number}@<endpoint>)."""
    call = s.call
    for arg in args:
        if "=" not in arg:
            continue  # a positional argument of the hook (an inherited call id)
        m = _PATH_ARG.match(arg)
        if m is None:
            s.log("call.arg_ignored", "warning", arg=arg[:80],
                  reason="expected did=<number> or trunk=<name> (letters, digits, +*#._-)")
            continue
        setattr(call, m.group(1), m.group(2) or None)
    local = channel_name.startswith("Local/")
    if call.trunk is None and call.direction == "inbound" and "/" in channel_name and not local:
        resource = channel_name.split("/", 1)[1]
        call.trunk = resource.rsplit("-", 1)[0] if "-" in resource else None
    elif call.trunk is None and call.direction == "outbound":
        _, at, endpoint = s.settings.dial_strings["outbound"].partition("@")
        call.trunk = endpoint or None if at else None
