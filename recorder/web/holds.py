"""The admins' legal-hold page: the holds (active, awaiting a second admin, released), a form to
place one and, per hold, a form to release it (with a reason). Same service, permission and
audit as the API (recorder/keeping/holds.py); the forms carry the session's CSRF token and a
cross-site Origin is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from recorder.api.auth import Permission, Principal, same_secret
from recorder.api.errors import ApiError
from recorder.api.routes import deps, origin
from recorder.keeping.holds import CRITERIA, Hold, HoldError, hold_spec, reason_of
from recorder.web import render
from recorder.web.forms import read_form, signed_in
from recorder.web.render import e

_LABELS = {
    "tag": "Matter or tag", "call_id": "Call id", "number": "Phone number",
    "department": "Department", "extension": "Extension", "from": "From (date)",
    "to": "To (date)",
}  # fmt: skip
_STATUS = {"active": "Holding", "release_pending": "Holding; release awaits a second admin",
           "released": "Released"}  # fmt: skip


async def _form(request: web.Request, principal: Principal) -> dict[str, str]:
    found = request.headers.get("Origin")
    if found is not None and found != f"{request.scheme}://{request.host}":
        raise ApiError(403, "cross_origin", "form posted from another site", {"origin": found})
    form = await read_form(request)  # bytes that are not UTF-8 text: a 400
    if principal.csrf_token is None or not same_secret(principal.csrf_token,
                                                       form.get("csrf", "")):
        raise ApiError(400, "csrf_mismatch", "the form expired; reload the page and try again")
    # An empty field means "not this criterion".
    return {k: v for k, v in form.items() if k != "csrf" and v.strip()}


async def _page(request: web.Request, principal: Principal, message: str | None = None,
                values: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    holds = await deps(request).holds.list(principal, origin(request))
    body = (render.alert(message) if status >= 400 else _notice(message)) + _place_form(
        principal, values or {}) + _holds(principal, holds)  # fmt: skip
    return web.Response(text=render.page("Legal holds", body, principal), status=status,
                        content_type="text/html")  # fmt: skip


def _signed_in_admin(request: web.Request) -> Principal:
    return signed_in(request, Permission.HOLDS_MANAGE)


async def holds_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, _signed_in_admin(request))


async def place(request: web.Request) -> web.StreamResponse:
    principal = _signed_in_admin(request)
    values = await _form(request, principal)
    d = deps(request)
    try:
        spec = hold_spec(values, d.region, d.zone)
    except HoldError as exc:  # refused before it reached a hold: audited as Holds audits
        await d.holds.refused(principal, origin(request), "place", exc.error_id)
        return await _page(request, principal, exc.message, values, exc.status)
    try:
        hold = await d.holds.add(spec, principal, origin(request))
    except HoldError as exc:
        return await _page(request, principal, exc.message, values, exc.status)
    return await _page(request, principal, f"Hold {hold.id} ({hold.name}) placed.")


async def release(request: web.Request) -> web.StreamResponse:
    principal = _signed_in_admin(request)
    values = await _form(request, principal)
    value = request.match_info["hold_id"]
    try:
        if not value.isascii() or not value.isdigit() or len(value) > 18:  # not "²"
            raise HoldError(404, "hold_not_found", "no such hold")
        hold = await deps(request).holds.release(int(value), reason_of(values), principal,
                                                 origin(request))  # fmt: skip
    except HoldError as exc:
        return await _page(request, principal, exc.message, status=exc.status)
    done = "released" if hold.status == "released" else "its release awaits a second admin"
    return await _page(request, principal, f"Hold {hold.id} ({hold.name}): {done}.")


def _notice(message: str | None) -> str:
    return f'<p role="status">{e(message)}</p>' if message else ""


def _csrf(principal: Principal) -> str:
    return f'<input type="hidden" name="csrf" value="{e(principal.csrf_token)}">'


def _field(name: str, label: str, values: Mapping[str, str], kind: str = "text") -> str:
    return (f'<p><label for="h-{name}">{e(label)}</label><input id="h-{name}" name="{name}" '
            f'type="{kind}" value="{e(values.get(name, ""))}"></p>')  # fmt: skip


def _place_form(principal: Principal, values: Mapping[str, str]) -> str:
    criteria = "".join(
        _field(c, _LABELS[c], values, "date" if c in ("from", "to") else "text") for c in CRITERIA
    )
    return (
        '<form method="post" action="/holds" class="search"><fieldset>'
        "<legend>Place a hold (every field given must match a call)</legend>"
        + _csrf(principal)
        + _field("name", "Name (the matter)", values)
        + _field("reason", "Reason", values)
        + criteria
        + '<p class="actions"><button type="submit">Place hold</button></p></fieldset></form>'
    )


def _criteria(hold: Hold) -> str:
    return "; ".join(f"{_LABELS[k]}: {e(v)}" for k, v in hold.criteria().items())


def _release_form(principal: Principal, hold: Hold) -> str:
    if hold.status == "released":
        return (f"{e(hold.released_by)}, {render.when(hold.released_at)}: "
                f"{e(hold.release_reason)}")  # fmt: skip
    asked = ""
    label = "Release"
    if hold.status == "release_pending":
        asked = (f"<p>{e(hold.release_requested_by)} asked: {e(hold.release_reason)}</p>")
        label = "Approve release"
    return (
        f'{asked}<form method="post" action="/holds/{hold.id}/release" class="inline">'
        + _csrf(principal)
        + f'<label for="r-{hold.id}">Reason</label>'
        f'<input id="r-{hold.id}" name="reason" required> '
        f'<button type="submit">{label}</button></form>'
    )


def _holds(principal: Principal, holds: Sequence[Hold]) -> str:
    if not holds:
        return '<p role="status">No holds.</p>'
    heads = ("Hold", "Name", "Holds calls with", "Reason", "Placed", "Status", "Release")
    rows = "".join(
        f"<tr><td>{h.id}</td><td>{e(h.name)}</td><td>{_criteria(h)}</td><td>{e(h.reason)}</td>"
        f"<td>{e(h.created_by)}, {render.when(h.created_at)}</td><td>{_STATUS[h.status]}</td>"
        f"<td>{_release_form(principal, h)}</td></tr>"
        for h in holds
    )
    return (
        "<table><caption>Legal holds, newest first</caption><thead><tr>"
        + "".join(f'<th scope="col">{h}</th>' for h in heads)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def add_hold_pages(app: web.Application) -> None:
    app.router.add_get("/holds", holds_page)
    app.router.add_post("/holds", place)
    app.router.add_post("/holds/{hold_id}/release", release)

