"""arisim: a simulated Asterisk 22 speaking ARI (REST + events WebSocket) on a virtual clock.

    sim = Simulator(spool_dir=tmp_path, apps=["verbatim"])
    base_url = await sim.start()          # http://127.0.0.1:PORT, ARI under /ari
    channel = sim.start_call(args=["inbound", "201"])
    await sim.advance(2.0)                # manual clock: timers fire, the client reacts
    await sim.stop()

Hook mode (calls the dialplan keeps, followed with subscribeAll=true): start_dialplan_call,
AGI() against a FastAGI server (agi.py: agi_sessions, wait_agi), Dial() and basic bridges,
applicationmap DTMF features (appdial.py), blind transfers out of basic bridges (transfers.py).

See server.Simulator, control.SimControl, spec.check_request/check_event and audio.tone_map.
"""

from .audio import tone_map, tones_per_second, wav_duration
from .control import SimControl
from .dialplan import EndpointBehaviour
from .server import Simulator
from .spec import check_event, check_request
from .transfers import TransferOutcome

__all__ = [
    "EndpointBehaviour",
    "SimControl",
    "Simulator",
    "TransferOutcome",
    "check_event",
    "check_request",
    "tone_map",
    "tones_per_second",
    "wav_duration",
]
