"""HTML for the web page: plain functions returning escaped strings (no template engine, no
script). Every value from the database or the request goes through `e()`.

Accessibility: one <main> with a skip link, a label for every field, captions and scoped
headers on tables, errors in role="alert", native <audio controls> (keyboard-operable),
preload="none" so opening a call neither downloads nor logs a playback.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from recorder.api.auth import Permission, Principal

TITLE = "Verbatim"


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _time(value: datetime | None) -> str:
    if value is None:
        return "–"
    return f'<time datetime="{e(value.isoformat())}">{e(when(value))}</time>'


def seconds(value: int | None) -> str:
    if value is None:
        return "–"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}:{secs:02d}"


def page(title: str, body: str, principal: Principal | None = None,
         scripts: Sequence[str] = ()) -> str:  # fmt: skip
    nav = ""
    if principal is not None:
        links = []
        if principal.may(Permission.CALLS_SEARCH):
            links.append('<a href="/calls">Calls</a>')
        if principal.may(Permission.ACCESS_LOG_READ):
            links.append('<a href="/access-log">Access log</a>')
        if principal.may(Permission.HOLDS_MANAGE):
            links.append('<a href="/holds">Legal holds</a>')
        logout = ""
        if principal.csrf_token:
            logout = (
                '<form method="post" action="/logout" class="inline">'
                f'<input type="hidden" name="csrf" value="{e(principal.csrf_token)}">'
                '<button type="submit">Log out</button></form>'
            )
        nav = (
            f'<nav aria-label="Main">{" ".join(links)}</nav>'
            f'<p class="who">{e(principal.name)} ({e(principal.role)}) {logout}</p>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} – {TITLE}</title>"
        '<link rel="stylesheet" href="/static/style.css">'
        + "".join(f'<script src="{e(src)}" defer></script>' for src in scripts)
        + "</head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><p class="brand">{TITLE}</p>{nav}</header>'
        f'<main id="main"><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def alert(message: str | None) -> str:
    return f'<p class="error" role="alert">{e(message)}</p>' if message else ""


def login_form(csrf: str, next_url: str, name: str = "", error: str | None = None) -> str:
    body = (
        f"{alert(error)}"
        '<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<input type="hidden" name="next" value="{e(next_url)}">'
        '<p><label for="name">User name</label>'
        f'<input id="name" name="name" autocomplete="username" required value="{e(name)}"></p>'
        '<p><label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required></p>'
        '<p><button type="submit">Log in</button></p></form>'
    )
    return page("Log in", body)


def _input(name: str, label: str, values: Mapping[str, str], **attrs: str) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{e(v)}"' for k, v in attrs.items())
    return (
        f'<p><label for="f-{name}">{e(label)}</label>'
        f'<input id="f-{name}" name="{name}" value="{e(values.get(name, ""))}" {extra}></p>'
    )


def _select(name: str, label: str, options: Iterable[str], values: Mapping[str, str]) -> str:
    chosen = values.get(name, "")
    items = ['<option value="">Any</option>'] + [
        f'<option value="{e(o)}"{" selected" if o == chosen else ""}>{e(o)}</option>'
        for o in options
    ]
    return f'<p><label for="f-{name}">{e(label)}</label><select id="f-{name}" name="{name}">' \
        f'{"".join(items)}</select></p>'  # fmt: skip


def search_form(values: Mapping[str, str], departments: Iterable[str],
                directions: Iterable[str], outcomes: Iterable[str]) -> str:  # fmt: skip
    return (
        '<form method="get" action="/calls" class="search" role="search">'
        "<fieldset><legend>Find calls</legend>"
        + _input("number", "Phone number (full or part)", values, inputmode="tel",
                 autocomplete="off")
        + _input("from", "From (date)", values, type="date")
        + _input("to", "To (date)", values, type="date")
        + _input("extension", "Extension", values, inputmode="numeric")
        + _select("department", "Department", departments, values)
        + _select("direction", "Direction", directions, values)
        + _select("outcome", "Outcome", outcomes, values)
        + _input("min_duration", "Min. length (seconds)", values, type="number", min="0")
        + _input("tag", "Tag or matter", values)
        + '<p class="actions"><button type="submit">Search</button> '
        '<a href="/calls">Clear</a></p></fieldset></form>'
    )  # fmt: skip


def _party(number: str | None, e164: str | None) -> str:
    return e(e164 or number or "–")


def _sort_link(label: str, sort: str, values: Mapping[str, str]) -> str:
    """A column header that sorts by it (the filters kept), and says how it is sorted now."""
    now_sort, now_order = values.get("sort", "started"), values.get("order", "desc")
    current = now_sort == sort
    order = ("asc" if now_order == "desc" else "desc") if current else "desc"
    href = "/calls?" + urlencode({**values, "sort": sort, "order": order})
    aria = f' aria-sort="{"descending" if now_order == "desc" else "ascending"}"' if current \
        else ""  # fmt: skip
    arrow = (" ↓" if now_order == "desc" else " ↑") if current else ""
    hint = "descending" if order == "desc" else "ascending"
    return (f'<th scope="col"{aria}><a href="{e(href)}" title="Sort {hint}">{e(label)}'
            f"{arrow}</a></th>")  # fmt: skip


def count_words(total: int | None, cap: int) -> str:
    if total is None:
        return ""
    if total > cap:
        return f"More than {cap} calls match."
    return "1 call matches." if total == 1 else f"{total} calls match."


def results(calls: list[dict[str, Any]], next_url: str | None,
            values: Mapping[str, str] | None = None, total: int | None = None,
            cap: int = 1000) -> str:  # fmt: skip
    values = dict(values or {})
    if not calls:
        return '<p role="status">No calls match.</p>'
    back = "/calls" + (f"?{urlencode(values)}" if values else "")
    rows = []
    for c in calls:
        href = "/calls/" + quote(c["call_id"], safe="") + "?" + urlencode({"back": back})
        rows.append(
            f'<tr><td><a href="{e(href)}">{_time(c["started_at"])}</a></td>'
            f"<td>{e(c['direction'])}</td>"
            f"<td>{_party(c['caller_number'], c['caller_e164'])}</td>"
            f"<td>{_party(c['callee_number'], c['callee_e164'])}</td>"
            f"<td>{e(c['extension'] or '–')}</td><td>{e(c['department'] or '–')}</td>"
            f"<td>{e((c['outcome'] or c['status']).replace('_', ' '))}</td>"
            f"<td>{seconds(c['duration_s'])}</td><td>{e(c['recordings'])}</td></tr>"
        )
    more = f'<p><a href="{e(next_url)}" rel="next">More calls</a></p>' if next_url else ""
    csv = "/calls.csv" + (f"?{urlencode(values)}" if values else "")
    summary = (f'<p class="found" role="status">{e(count_words(total, cap))} '
               f'<a href="{e(csv)}" download>Export these calls as CSV</a></p>')  # fmt: skip
    plain = ("Direction", "From", "To", "Extension", "Department", "Outcome")
    heads = (_sort_link("Started", "started", values)
             + "".join(f'<th scope="col">{h}</th>' for h in plain)
             + _sort_link("Length", "length", values)
             + '<th scope="col">Recordings</th>')  # fmt: skip
    return (
        summary + '<table class="calls"><caption>Calls found (select a start time to open a '
        "call; select a column's title to sort by it)</caption><thead><tr>"
        + heads + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
    )


def access_form(values: Mapping[str, str], actions: Iterable[str]) -> str:
    return (
        '<form method="get" action="/access-log" class="search" role="search">'
        "<fieldset><legend>Filter the log</legend>"
        + _input("user", "User", values, autocomplete="off")
        + _select("action", "Action", actions, values)
        + _input("call_id", "Call id", values, autocomplete="off")
        + _input("from", "From (date)", values, type="date")
        + _input("to", "To (date)", values, type="date")
        + '<p class="actions"><button type="submit">Filter</button> '
        '<a href="/access-log">Clear</a></p></fieldset></form>'
    )


def access_entries(entries: Sequence[Mapping[str, Any]], next_url: str | None) -> str:
    if not entries:
        return '<p role="status">No entries.</p>'
    heads = ("When", "User", "Role", "Action", "Call", "Recording", "From", "Detail")
    rows = "".join(
        f"<tr><td>{_time(x['at'])}</td><td>{e(x['user_name'])}</td><td>{e(x['role'])}</td>"
        f"<td>{e(x['action'])}</td><td>{e(x['call_id'] or '')}</td>"
        f"<td>{e(x['recording_name'] or '')}</td><td>{e(x['remote'] or '')}</td>"
        f"<td><code>{e(json.dumps(x['detail'], sort_keys=True))}</code></td></tr>"
        for x in entries
    )
    more = f'<p><a href="{e(next_url)}" rel="next">Older entries</a></p>' if next_url else ""
    return (
        "<table><caption>Accesses, newest first</caption><thead><tr>"
        + "".join(f'<th scope="col">{h}</th>' for h in heads)
        + f"</tr></thead><tbody>{rows}</tbody></table>{more}"
    )


def next_link(path: str, values: Mapping[str, str], cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return f"{path}?{urlencode({**values, 'cursor': cursor})}"
