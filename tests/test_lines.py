"""Channels Asterisk could not create: one is a phone logged off, many in a row an outage."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from recorder.service.lines import RefusedLines


@pytest.mark.parametrize(("story", "said"), [
    ("r" * 9, []),  # nine phones off in a row: each an everyday CHANUNAVAIL
    ("r" * 10, [("ari.channels_refused", "warning")]),
    ("r" * 25, [("ari.channels_refused", "warning")]),  # said once for the outage
    ("r" * 9 + "m" + "r" * 9, []),  # a channel made between them: phones, not the PBX
    ("r" * 10 + "m", [("ari.channels_refused", "warning"), ("ari.channels_made_again", "info")]),
    ("r" * 10 + "m" + "r" * 10, [("ari.channels_refused", "warning"),
                                 ("ari.channels_made_again", "info"),
                                 ("ari.channels_refused", "warning")]),
    ("mmm", []),
])
def test_refused_channels_in_a_row_are_an_outage(story: str, said: list[tuple[str, str]]
                                                 ) -> None:
    lines = RefusedLines()
    with capture_logs() as logs:
        for step in story:
            if step == "r":
                lines.refused_one("PJSIP/201")
            else:
                lines.made_one()
    assert [(x["event"], x["log_level"]) for x in logs] == said
