"""Phones Asterisk cannot call: an everyday status one at a time, an outage in a row.

Asterisk answers a channel it cannot request (an endpoint not registered or unreachable, not
configured, its channel driver not loaded, no memory) with the same 500 (resource_channels.c:
ast_request failed). One such refusal is a phone logged off, logged at info like Dial()'s
CHANUNAVAIL (recorder.model.failures.line_unavailable). Many in a row, with no channel made
between them, are likely the whole line side down (chan_pjsip not loaded, the network to
the phones gone): that is said once, as a warning, and its end at info.
"""

from __future__ import annotations

from typing import Final

import structlog

log = structlog.get_logger("verbatim.ari")

# Refused channel requests in a row, none made between them, that are an outage
IN_A_ROW: Final = 10


class RefusedLines:
    def __init__(self, in_a_row: int = IN_A_ROW) -> None:
        self.in_a_row = in_a_row
        self.refused = 0  # in a row, since the last channel made
        self.warned = False

    def refused_one(self, endpoint: str) -> None:
        self.refused += 1
        if self.refused >= self.in_a_row and not self.warned:
            self.warned = True
            log.warning("ari.channels_refused", in_a_row=self.refused, last_endpoint=endpoint,
                        reason="Asterisk could not create any of the last channels asked "
                               "for: is the channel driver loaded, are the phones reachable?")

    def made_one(self) -> None:
        if self.warned:
            log.info("ari.channels_made_again", after_refused=self.refused)
        self.refused, self.warned = 0, False
