"""In-call controls by DTMF (calls in the app): pause and resume the recording.

A staff member pauses while a card number is read, then resumes. Asterisk's live recording is
paused (POST /recordings/live/{name}/pause) so the audio is not kept; the paused interval is
stored (event rows) and excluded from the coverage proof: a pause is not a gap. Codes are keyed
in by a party during the call (`CallSettings.controls`, e.g. "*1" pause, "*2" resume); the last
few digits of each channel are kept to match them.
"""

from __future__ import annotations

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.flow import Step
from recorder.model.state import BRIDGED, REC_RECORDING

MAX_CODE = 4  # digits kept per channel to match a control code


def control_digit(s: Step, e: ev.ChannelDtmfReceived) -> None:
    call = s.call
    leg = call.legs.get(e.channel.id)
    controls = s.settings.controls
    if leg is None or not controls or call.phase != BRIDGED:
        return
    typed = (call.dtmf.get(leg.channel_id, "") + e.digit)[-MAX_CODE:]
    call.dtmf[leg.channel_id] = typed
    rec = call.recordings.get(call.current_recording or "")
    if rec is None or rec.status != REC_RECORDING:
        return
    open_pause = next((p for p in call.pauses if p[1] is None), None)
    if typed.endswith(controls.get("pause", "\0")) and open_pause is None:
        call.pauses.append([s.at, None])
        call.dtmf[leg.channel_id] = ""
        s.add(cmd.PauseRecording(call.call_id, rec.name, True))
        s.record("recording.paused", leg.channel_id, recording=rec.name, by="dtmf")
        s.log("recording.paused", channel_id=leg.channel_id, recording=rec.name, by="dtmf")
        s.save()
    elif typed.endswith(controls.get("resume", "\0")) and open_pause is not None:
        open_pause[1] = s.at
        call.dtmf[leg.channel_id] = ""
        s.add(cmd.PauseRecording(call.call_id, rec.name, False))
        s.record("recording.resumed", leg.channel_id, recording=rec.name, by="dtmf")
        s.log("recording.resumed", channel_id=leg.channel_id, recording=rec.name, by="dtmf")
        s.save()
