"""Calls between parts that need each other both ways, forwarded once both exist.

ChannelLife answers the far end of a Local half and tells Dialling of a dialled channel that
went away, and asks Agi whether an application still holds a hung-up channel; the Pbx signals
ringing or busy to the far end and starts AGI(), Dial() and MixMonitor(); Dialling tells DialApp
what the lines Dial() rings do. Those parts are built before the ones they call, so they are
given a `Wiring`, whose attributes the Simulator sets as it builds the rest.
"""

from __future__ import annotations

from .agi import Agi
from .appdial import DialApp
from .dialing import Dialling
from .mixmonitor import Monitor
from .model import Channel


class Wiring:
    dialling: Dialling
    dial_app: DialApp
    agi: Agi
    monitor: Monitor

    # ChannelLife (FarEnd, Applications); AttendedTransfers gets Dialling itself
    def far_answered(self, ch: Channel) -> None:
        self.dialling.far_answered(ch)

    def dial_hung_up(self, ch: Channel) -> None:
        self.dialling.dial_hung_up(ch)

    def hold_destroy(self, ch: Channel) -> bool:
        return self.agi.hold_destroy(ch)

    # Pbx (FarSignals, DialplanApps)
    def far_ringing(self, ch: Channel) -> None:
        self.dialling.far_ringing(ch)

    def far_busy(self, ch: Channel, hangup_after: float = 0.0) -> None:
        self.dialling.far_busy(ch, hangup_after)

    def start_agi(self, ch: Channel, data: str) -> None:
        self.agi.start_agi(ch, data)

    def start_dial(self, ch: Channel, data: str) -> None:
        self.dial_app.start_dial(ch, data)

    def start_mixmonitor(self, ch: Channel, data: str) -> None:
        self.monitor.start_mixmonitor(ch, data)

    # Dialling (AppDial)
    def app_dial_answered(self, ch: Channel) -> None:
        self.dial_app.app_dial_answered(ch)

    def app_dial_busy(self, ch: Channel, status: str) -> None:
        self.dial_app.app_dial_busy(ch, status)

    def app_dial_gone(self, ch: Channel) -> None:
        self.dial_app.app_dial_gone(ch)

    def app_dial_forward(self, ch: Channel, target: str) -> None:
        self.dial_app.app_dial_forward(ch, target)
