"""Hook mode: the recordings of a followed call's snoops (refused: recorder.model.failures)."""

from __future__ import annotations

from recorder.ari import events as ev
from recorder.model.flow import Result, Step, for_call
from recorder.model.inputs import (
    ChannelChecked,
)
from recorder.model.sessions import answer_waiting
from recorder.model.settings import CallSettings
from recorder.model.snooping import (
    check_answered,
    snoop_ended,
    snoop_started,
    snooped_leg,
)
from recorder.model.state import (
    ModelState,
)


def hooked_recording(state: ModelState, e: ev.RecordingEvent, settings: CallSettings,
                 call_id: str) -> Result:
    def body(s: Step) -> None:
        call = s.call
        rec = call.recordings.get(e.recording.name)
        if rec is None:
            return
        if isinstance(e, ev.RecordingStarted):
            snoop_started(s, rec)
            answer_waiting(s, snooped_leg(rec) or "", "RECORDING")
        else:
            failed = isinstance(e, ev.RecordingFailed)
            snoop_ended(s, rec, failed, e.recording.cause or ("failed" if failed else ""))
            if failed:
                answer_waiting(s, snooped_leg(rec) or "", "FAILED")

    return for_call(state, call_id, e, settings, body)


def checked(s: Step, e: ChannelChecked) -> None:
    check_answered(s, e.channel_id, e.exists)
