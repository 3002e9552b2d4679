"""A call's page: the verdict, the timeline (drawn and in words), consent in words, one playback
for the whole call and each recording with its waveform, hash and download.

Every value goes through `e()` (render.py); nothing is shown as a Python repr: missing values
are left out or shown as "–". Admins get each event's raw detail folded under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from recorder.api.serialize import call_url, recording_urls
from recorder.web.callview import CallView
from recorder.web.playback import waveform_svg
from recorder.web.render import _time, e, seconds, when
from recorder.web.svg import legend, timeline_svg
from recorder.web.words import consent_story, decision_words, sentence
from recorder.web.words import seconds as secs


def _party(number: str | None, e164: str | None) -> str:
    return e(e164 or number or "–")


def _facts(call: Mapping[str, Any], linked: Sequence[Mapping[str, Any]]) -> str:
    items = [
        ("Started", _time(call["started_at"])), ("Answered", _time(call["answered_at"])),
        ("Ended", _time(call["ended_at"])), ("Length", seconds(call["duration_s"])),
        ("Direction", e(call["direction"])),
        ("From", _party(call["caller_number"], call["caller_e164"])),
        ("To", _party(call["callee_number"], call["callee_e164"])),
        ("Extension", e(call["extension"] or "–")), ("Department", e(call["department"] or "–")),
        ("Outcome", e((call["outcome"] or call["status"]).replace("_", " "))),
        ("Call id", f"<code>{e(call['call_id'])}</code>"),
    ]  # fmt: skip
    if linked:
        links = ", ".join(
            f'<a href="/calls/{e(quote(x["call_id"], safe=""))}">call of '
            f'{e(when(x["started_at"]))}</a>' for x in linked)  # fmt: skip
        items.append(("Linked calls", f"{links} (joined by an attended transfer)"))
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _parties_table(view: CallView) -> str:
    rows = []
    by_lane = {lane.channel_id: lane for lane in view.timeline.lanes}
    for leg in view.parts["legs"]:
        lane = by_lane.get(str(leg["channel_id"]))
        if lane is None:
            continue
        gaps = [b for b in lane.bars if b.kind == "gap"]
        missing = "; ".join(f"{secs(b.ms)} ({b.label.removeprefix('Not recorded: ')})"
                            for b in gaps) or "none"  # fmt: skip
        rows.append(
            f"<tr><th scope=\"row\">{e(lane.label)}</th>"
            f"<td>{_time(leg['answered_at'])}</td><td>{_time(leg['ended_at'])}</td>"
            f"<td>{e(secs(leg.get('talked_ms')) or '–')}</td>"
            f"<td>{e(secs(leg.get('covered_ms')) or '–')}</td>"
            f"<td>{e(secs(leg.get('held_ms')) or '–')}</td><td>{e(missing)}</td></tr>"
        )
    heads = ("Party", "Answered", "Left", "Connected", "In a recording", "On hold", "Missing")
    return (
        '<table class="parties"><caption>Each party: connected time and what of it is in a '
        "recording</caption><thead><tr>"
        + "".join(f'<th scope="col">{h}</th>' for h in heads)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _timeline(view: CallView, can_play: bool) -> str:
    call_id = view.parts["call"]["call_id"]
    player = ""
    span = view.timeline.recorded_span()
    if can_play and view.pieces and span is not None:
        length = secs((span[1] - span[0]).total_seconds() * 1000)
        player = (
            '<p class="whole-call"><label for="whole-call">Play the whole call '
            f"({e(length)}, every recording in order, silence where nothing was recorded)"
            "</label>"
            f'<audio id="whole-call" controls preload="none" src="{e(call_url(call_id))}/audio">'
            "</audio></p>"
        )
    return (
        '<section aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>'
        + player
        + '<div class="timeline-box">'
        + timeline_svg(view.timeline, view.audio_start if player else None)
        + "</div>"
        + legend()
        + _parties_table(view)
        + "</section>"
    )


def _consent(view: CallView) -> str:
    rows = view.parts["consent"] or []
    decision = decision_words((view.story.get("state") or {}).get("decision"))
    if not decision:  # no snapshot: the last decision the call model recorded as an event
        for ev in reversed(view.parts["events"]):
            if ev["kind"] == "consent.decision":
                decision = decision_words(ev.get("detail"))
                break
    if not rows and not decision:
        return ""
    parties = []
    for p in consent_story(rows, view.names):
        words = f'<blockquote class="prompt-words">“{e(p.words)}”</blockquote>' if p.words else ""
        parties.append(
            f"<li><h3>{e(p.party[:1].upper() + p.party[1:])}</h3><dl class=\"facts\">"
            f"<dt>Law</dt><dd>{e(p.law)}</dd><dt>Why</dt><dd>{e(p.why)}</dd>"
            f"<dt>Announcement</dt><dd>{e(p.heard)}{words}</dd>"
            f"<dt>Outcome</dt><dd>{e(p.outcome)}</dd></dl></li>"
        )
    lines = []
    for line in decision:
        m = re.match(r"^(Decision|Decided by|Route to)\s+(.*)$", line)
        head, rest = (m.group(1), m.group(2)) if m else ("", line)
        lines.append(f"<dt>{e(head)}</dt><dd>{e(rest)}</dd>")
    said = (
        '<h3>The decision, as <code>verbatim explain</code> says it</h3>'
        f'<dl class="facts">{"".join(lines)}</dl>' if lines else ""
    )
    heard = f'<ul class="consent">{"".join(parties)}</ul>' if parties else (
        "<p>No party was due an announcement.</p>")
    return (f'<section aria-labelledby="h-consent"><h2 id="h-consent">Consent</h2>{said}'
            f"{heard}</section>")  # fmt: skip


def _recording(view: CallView, rec: Mapping[str, Any], can_download: bool,
               waves: Mapping[str, list[float]]) -> str:  # fmt: skip
    call_id = view.parts["call"]["call_id"]
    label = view.names.segment(rec["name"])
    label = label[:1].upper() + label[1:]
    length = secs(rec["duration_ms"]) or "no audio"
    status = "" if rec["status"] == "filed" else f", {rec['status']}"
    head = f"<h3>{e(label)} <small>({e(length)}{e(status)})</small></h3>"
    started = f"<p>From {_time(rec['started_at'])} to {_time(rec['ended_at'])}.</p>"
    if rec["status"] != "filed" or rec["name"] not in view.files:
        why = rec["error"] or "No file in the archive."
        return f"<li>{head}{started}<p>{e(why)}</p></li>"
    urls = recording_urls(call_id, rec["name"])
    wave = waves.get(rec["name"])
    picture = waveform_svg(wave, f"Waveform of {label}") if wave else ""
    download = (f'<a href="{e(urls["download_url"])}" download>Download {e(label)}</a>'
                if can_download else "")  # fmt: skip
    return (
        f"<li>{head}{started}{picture}"
        f'<audio controls preload="none" src="{e(urls["audio_url"])}" '
        f'aria-label="{e(label)}"></audio> {download}'
        f'<p class="hash">SHA-256 <code>{e(rec["sha256"])}</code></p></li>'
    )


def _detail_json(detail: Any) -> str:
    return json.dumps(detail or {}, sort_keys=True, default=str, ensure_ascii=False)


def _raw_events(view: CallView) -> str:
    """For admins: the events as stored, folded away under the sentences."""
    rows = "".join(
        f"<tr><td>{_time(ev['at'])}</td><td><code>{e(ev['kind'])}</code></td>"
        f"<td><code>{e(ev['channel_id'] or ev['recording_name'] or '')}</code></td>"
        f"<td><code>{e(_detail_json(ev['detail']))}</code></td></tr>"
        for ev in view.parts["events"]
    )
    return (
        '<details class="raw"><summary>The events as stored (for admins)</summary>'
        "<table><caption>call_events rows</caption><thead><tr>"
        + "".join(f'<th scope="col">{h}</th>' for h in ("At", "Kind", "Channel or recording",
                                                          "Detail"))
        + f"</tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _events(view: CallView, admin: bool) -> str:
    items = []
    start: datetime = view.parts["call"]["started_at"]
    for ev in view.parts["events"]:
        offset = (ev["at"] - start).total_seconds()
        minutes, rest = divmod(max(offset, 0.0), 60)
        stamp = f"{int(minutes)}:{rest:04.1f}"
        items.append(
            f'<li><time datetime="{e(ev["at"].isoformat())}">{e(stamp)}</time> '
            f"{e(sentence(ev, view.names))}</li>"
        )
    if not items:
        return ""
    return ('<section aria-labelledby="h-events"><h2 id="h-events">What happened</h2>'
            '<p class="hint">Times from the start of the call (minutes:seconds).</p>'
            f'<ol class="events">{"".join(items)}</ol>'
            f"{_raw_events(view) if admin else ''}</section>")  # fmt: skip


def call_page(view: CallView, *, can_play: bool, can_download: bool, admin: bool,
              waves: Mapping[str, list[float]]) -> str:  # fmt: skip
    parts = view.parts
    recs = "".join(_recording(view, r, can_download, waves) for r in parts["recordings"])
    tags = ", ".join(e(t) for t in parts["tags"]) or "none"
    return (
        f'<p class="verdict" role="status">{e(view.timeline.verdict)}</p>'
        + _facts(parts["call"], view.story.get("linked") or [])
        + f"<p>Tags: {tags}</p>"
        + _timeline(view, can_play)
        + _consent(view)
        + '<section aria-labelledby="h-recordings"><h2 id="h-recordings">Recordings</h2>'
        + (f'<ol class="recordings">{recs}</ol>' if recs else "<p>No recordings.</p>")
        + "</section>"
        + _events(view, admin)
    )
