"""AGI hook sessions waiting on the model (hook mode): their final answers.

A session is kept in `Call.hook.sessions` while the dialplan waits for it (a record hook waits
for its leg's recording to run); these put its answer — VERBATIM_STATUS and other channel
variables — in the step's commands.
"""

from __future__ import annotations

from recorder.model import commands as cmd
from recorder.model.flow import Step


def reply(s: Step, call_id: str, session: str, status: str, **variables: str) -> None:
    """The final answer to an AGI hook session: VERBATIM_STATUS and other variables."""
    values = (("VERBATIM_STATUS", status), *((k, v) for k, v in variables.items()))
    s.add(cmd.HookReply(call_id, session, values, (), True))


def answer_waiting(s: Step, leg_id: str, status: str) -> None:
    """Hook sessions waiting for this leg's recording to run get their answer."""
    call = s.call
    for session, info in list(call.hook.sessions.items()):
        if info.leg == leg_id and info.prompt is None:
            del call.hook.sessions[session]
            reply(s, call.call_id, session, status, __VERBATIM_CALL_ID=call.call_id)
