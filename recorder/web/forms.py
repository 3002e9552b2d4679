"""What every page's handler starts with: the signed-in user, and the posted form read as
text (bytes that are not UTF-8 text are a 400, never a decoding error)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from recorder.api.auth import Permission, Principal, principal_of
from recorder.api.errors import ApiError, forbidden


def signed_in(request: web.Request, permission: Permission) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    if not principal.may(permission):
        raise forbidden(permission.value)
    return principal


async def read_form(request: web.Request) -> Mapping[str, str]:
    """The posted form's text fields. Bytes that are not UTF-8, an unknown charset or a file
    where text belongs are a 400, not a decoding error."""
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        raise ApiError(400, "invalid_form", "the form could not be read as UTF-8 text") from None
    fields: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            raise ApiError(400, "invalid_form", f"the form field {key[:50]} must be text",
                           {"field": key[:50]})  # fmt: skip
        fields.setdefault(key, value)
    return fields
