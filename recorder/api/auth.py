"""Who is asking, and what their role lets them do.

Roles map to named permissions; handlers ask for a permission, never for a role. What a role may
*see* (which calls) is a separate matter, decided in SQL by `scope.call_scope`. Credentials:
passwords are argon2id hashes; bearer tokens and session ids are 256 random bits of which only a
SHA-256 is stored (a fast hash is fine for random secrets, and makes the lookup an index probe).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from recorder.api.errors import forbidden, unauthenticated
from recorder.config import HttpConfig


class Permission(StrEnum):
    CALLS_SEARCH = "calls.search"
    CALLS_READ = "calls.read"  # one call's detail: legs, recordings, timeline
    RECORDINGS_PLAY = "recordings.play"
    RECORDINGS_DOWNLOAD = "recordings.download"
    ACCESS_LOG_READ = "access_log.read"
    # Pause, resume, start or stop the recording of a live call, or tag it (POST
    # /api/calls/{id}/controls), and read such a request's outcome.
    CALLS_CONTROL = "calls.control"
    # Place, list and release legal holds (admins only: a hold overrides retention).
    HOLDS_MANAGE = "holds.manage"


_LISTEN = frozenset(
    {Permission.CALLS_SEARCH, Permission.CALLS_READ, Permission.RECORDINGS_PLAY}
)
# Least privilege: the auditor reads who accessed what, not the calls themselves (nor acts on
# them); staff may listen to their own calls but not take copies away. Controls act on the calls
# of the role's scope (a manager's departments, a staff member's extension).
ROLES: Final[dict[str, frozenset[Permission]]] = {
    "admin": frozenset(Permission),
    "auditor": frozenset({Permission.ACCESS_LOG_READ}),
    "manager": _LISTEN | {Permission.RECORDINGS_DOWNLOAD, Permission.CALLS_CONTROL},
    "staff": _LISTEN | {Permission.CALLS_CONTROL},
}
ROLE_SCOPES: Final[dict[str, str]] = {
    "admin": "every call",
    "auditor": "no calls; the access log",
    "manager": "calls of their departments",
    "staff": "calls of their own extension",
}

# Recognisable in a leaked file or by a secret scanner. Not a secret itself.
TOKEN_PREFIX: Final = "vbt_"  # noqa: S105
MIN_PASSWORD_LENGTH: Final = 12


@dataclass(frozen=True)
class Principal:
    """An authenticated, enabled user, as of this request (re-read from the database each time,
    so a role change or a disable takes effect at once)."""

    user_id: int
    name: str
    role: str
    departments: tuple[str, ...]
    extension: str | None
    via: str  # "session" | "token"
    csrf_token: str | None = None  # the session's, for the page's forms

    def may(self, permission: Permission) -> bool:
        return permission in ROLES.get(self.role, frozenset())


# Set by server.auth_middleware on every request: the caller, or None (anonymous).
PRINCIPAL: Final = web.RequestKey("verbatim_principal", Principal)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)  # absent: anonymous


def require(request: web.Request, permission: Permission) -> Principal:
    """The caller, if authenticated and allowed `permission`; else 401 / 403."""
    principal = principal_of(request)
    if principal is None:
        raise unauthenticated()
    if not principal.may(permission):
        raise forbidden(permission.value)
    return principal


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# What new_secret and new_token make (base64url, the token's prefix), with room to spare. A
# presented token or session id of other characters (bytes that were not UTF-8 included) cannot
# be one of ours: it is refused without hashing it or asking the database.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,200}")


def well_formed_secret(value: str) -> bool:
    return _SECRET_SHAPE.fullmatch(value) is not None


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of whatever was sent (hmac refuses non-ASCII str)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def new_token() -> str:
    return TOKEN_PREFIX + new_secret()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so the answer takes as long either way
    and response times do not tell which user names exist."""
    return _HASHER.hash(new_secret())


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _HASHER.hash(password)


def _verify(encoded: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(encoded or _dummy_hash(), password) and encoded is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(encoded: str | None, password: str) -> bool:
    """argon2 costs ~50 ms of CPU and 64 MiB: off the event loop."""
    return await asyncio.to_thread(_verify, encoded, password)


def session_cookie_name(http: HttpConfig) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless Secure, Path=/ and host-only.
    return "__Host-vb_session" if secure_cookies(http) else "vb_session"


def secure_cookies(http: HttpConfig) -> bool:
    return http.tls or http.secure_cookies
