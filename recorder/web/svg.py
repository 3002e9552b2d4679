"""The call's timeline drawn as SVG, on the server: the page reads without any script.

Colours come from classes in static/style.css (the CSP allows no inline style); every bar has
a <title> with its words, and the page repeats the figures as text (the verdict, the parties'
table, the timeline in words), so nothing is said by colour alone. static/call.js only moves the
playback cursor (a <line> here) and seeks when a recorded bar is clicked.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Final

from recorder.web.timeline import KINDS, Lane, Timeline

WIDTH: Final = 960
LABELS: Final = 200  # the lanes' names, left of the plot
RIGHT: Final = 16
LANE: Final = 46
TRACK: Final = 24
TOP: Final = 8
AXIS: Final = 28
_STEPS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def e(value: str) -> str:
    return html.escape(value)


def _clock(offset_s: float) -> str:
    minutes, secs = divmod(round(offset_s), 60)
    return f"{minutes}:{secs:02d}"


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.span_s = max((end - start).total_seconds(), 1.0)
        self.per_s = (WIDTH - LABELS - RIGHT) / self.span_s

    def x(self, at: datetime) -> float:
        return round(LABELS + (at - self.start).total_seconds() * self.per_s, 2)

    def w(self, a: datetime, b: datetime) -> float:
        return max(round((b - a).total_seconds() * self.per_s, 2), 1.0)


def _bar(kind: str, x: float, y: float, w: float, h: float, title: str) -> str:
    return (f'<rect class="bar bar-{kind}" x="{x}" y="{y}" width="{w}" height="{h}">'
            f"<title>{e(title)}</title></rect>")  # fmt: skip


def _lane(lane: Lane, y: float, s: _Scale) -> str:
    out = [f'<g class="lane" data-channel="{e(lane.channel_id)}">'
           f'<text class="lane-label" x="8" y="{y + 20}">{e(lane.label)}</text>',
           f'<line class="lane-line" x1="{LABELS}" x2="{WIDTH - RIGHT}" y1="{y + 15}" '
           f'y2="{y + 15}"/>']  # fmt: skip
    order = ("ringing", "announcement", "connected", "hold", "paused", "unrecorded", "gap")
    for kind in order:
        for bar in (b for b in lane.bars if b.kind == kind):
            when = f"{_clock((bar.start - s.start).total_seconds())}–" \
                f"{_clock((bar.end - s.start).total_seconds())}"  # fmt: skip
            out.append(_bar(kind, s.x(bar.start), y + 6, s.w(bar.start, bar.end), 18,
                            f"{lane.label}: {bar.label}, {when}"))  # fmt: skip
    for bar in (b for b in lane.bars if b.kind == "recorded"):
        out.append(_bar("recorded", s.x(bar.start), y + 28, s.w(bar.start, bar.end), 7,
                        f"{lane.label}: in a recording"))  # fmt: skip
    return "".join(out) + "</g>"


def _axis(y: float, s: _Scale) -> str:
    step = next((x for x in _STEPS if s.span_s / x <= 10), _STEPS[-1])
    out = [f'<line class="axis" x1="{LABELS}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>']
    t = 0
    while t <= s.span_s + 1e-6:
        x = round(LABELS + t * s.per_s, 2)
        out.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{y}" y2="{y + 5}"/>'
                   f'<text class="tick" x="{x}" y="{y + 18}">{_clock(t)}</text>')  # fmt: skip
        t += step
    return "".join(out)


def timeline_svg(t: Timeline, audio_start: datetime | None) -> str:
    """The timeline as an <svg> element; `audio_start`: where the whole-call playback begins
    (the cursor's zero), None without one."""
    s = _Scale(t.start, t.end)
    lanes = {lane.channel_id: TOP + i * LANE for i, lane in enumerate(t.lanes)}
    body = [_lane(lane, lanes[lane.channel_id], s) for lane in t.lanes]
    y = TOP + len(t.lanes) * LANE + 6
    for track in t.tracks:
        body.append(f'<text class="lane-label" x="8" y="{y + 15}">{e(track.label)}</text>')
        status = "" if track.status == "filed" else f" ({track.status})"
        for a, b in track.spans:
            body.append(_bar("file", s.x(a), y + 5, s.w(a, b), 12,
                             f"{track.label}{status}: audio of the file"))  # fmt: skip
        if not track.spans:
            body.append(f'<text class="tick" x="{LABELS + 4}" y="{y + 15}">'
                        f"no audio counted{e(status)}</text>")  # fmt: skip
        y += TRACK
    for arrow in t.arrows:
        if arrow.source not in lanes or arrow.target not in lanes:
            continue
        x = s.x(arrow.at)
        y1, y2 = lanes[arrow.source] + 15, lanes[arrow.target] + 15
        body.append(f'<line class="arrow" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}" '
                    f'marker-end="url(#arrowhead)"><title>{e(arrow.label)}</title></line>'
                    f'<text class="arrow-label" x="{x - 4}" y="{(y1 + y2) / 2 + 4}">'
                    f"{e(arrow.label.split(' by ')[0].lower())}</text>")
    height = y + AXIS
    body.append(_axis(y + 2, s))
    cursor = ""
    data = ""
    if audio_start is not None:
        cursor = (f'<line id="cursor" class="cursor" x1="{s.x(audio_start)}" '
                  f'x2="{s.x(audio_start)}" y1="{TOP}" y2="{y}"/>')  # fmt: skip
        data = f' data-x0="{s.x(audio_start)}" data-per-s="{s.per_s}"'
    defs = (
        "<defs>"
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect class="hatch-bg" width="6" height="6"/>'
        '<rect class="hatch-line" width="3" height="6"/></pattern>'
        '<pattern id="dots" width="5" height="5" patternUnits="userSpaceOnUse">'
        '<rect class="dots-bg" width="5" height="5"/><circle class="dots-dot" cx="2.5" '
        'cy="2.5" r="1.3"/></pattern>'
        '<marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="arrowhead" '
        'd="M0,0 L10,5 L0,10 z"/></marker></defs>'
    )
    summary = f"Timeline of the call: {len(t.lanes)} parties. {t.verdict}"
    return (
        f'<svg id="timeline" class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="timeline-title"{data}>'
        f'<title id="timeline-title">{e(summary)}</title>{defs}{"".join(body)}{cursor}</svg>'
    )


def legend() -> str:
    items = "".join(
        f'<li><svg class="swatch" viewBox="0 0 16 12" aria-hidden="true">'
        f'<rect class="bar bar-{kind}" width="16" height="12"/></svg> {e(words)}</li>'
        for kind, words in (*KINDS.items(), ("file", "Audio of a recording file"))
    )
    return f'<ul class="legend" aria-label="What the colours mean">{items}</ul>'
