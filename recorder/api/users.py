"""Users, bearer tokens and web sessions in PostgreSQL (tables of migration 0002_access).

Lookups join `users` every time and skip disabled users, so disabling someone ends their
sessions and tokens on their next request; `disable` also deletes sessions and revokes tokens
so nothing lingers for a later re-enable to revive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from recorder.api.auth import (
    ROLES,
    Principal,
    digest,
    hash_password,
    new_secret,
    new_token,
    verify_password,
)


class UserError(ValueError):
    """A user command that cannot be done (unknown user, bad role, taken name)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    departments: tuple[str, ...]
    extension: str | None
    disabled: bool
    has_password: bool

    def principal(self, via: str, csrf_token: str | None = None) -> Principal:
        return Principal(
            self.id, self.name, self.role, self.departments, self.extension, via, csrf_token
        )


def _user(rec: Any) -> User:
    return User(
        id=rec["id"],
        name=rec["name"],
        role=rec["role"],
        departments=tuple(rec["departments"]),
        extension=rec["extension"],
        disabled=rec["disabled"],
        has_password=rec["password_hash"] is not None,
    )


def check_role(role: str, departments: Sequence[str], extension: str | None) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "manager" and not departments:
        raise UserError("a manager needs --departments (the departments whose calls they see)")
    if role == "staff" and not extension:
        raise UserError("staff need --extension (the extension whose calls they see)")


class UserStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    # -- administration (the `verbatim users` commands) ---------------------------------------

    async def add(
        self,
        name: str,
        role: str,
        departments: Sequence[str] = (),
        extension: str | None = None,
        password: str | None = None,
    ) -> User:
        check_role(role, departments, extension)
        encoded = hash_password(password) if password is not None else None
        try:
            rec = await self.pool.fetchrow(
                "INSERT INTO users AS u (name, role, departments, extension, password_hash) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING u.*",
                name,
                role,
                list(departments),
                extension,
                encoded,
            )
        except asyncpg.UniqueViolationError:
            raise UserError(f"user {name!r} exists already") from None
        except asyncpg.CheckViolationError as exc:
            raise UserError(f"user {name!r} refused by the database: {exc.message}") from None
        return _user(rec)

    async def set_role(
        self, name: str, role: str, departments: Sequence[str], extension: str | None
    ) -> User:
        check_role(role, departments, extension)
        rec = await self.pool.fetchrow(
            "UPDATE users AS u SET role = $2, departments = $3, extension = $4, "
            "updated_at = now() WHERE name = $1 RETURNING u.*",
            name,
            role,
            list(departments),
            extension,
        )
        return self._found(name, rec)

    async def set_password(self, name: str, password: str) -> User:
        rec = await self.pool.fetchrow(
            "UPDATE users AS u SET password_hash = $2, updated_at = now() "
            "WHERE name = $1 RETURNING u.*",
            name,
            hash_password(password),
        )
        return self._found(name, rec)

    async def disable(self, name: str) -> User:
        async with self.pool.acquire() as conn, conn.transaction():
            rec = await conn.fetchrow(
                "UPDATE users AS u SET disabled = true, updated_at = now() "
                "WHERE name = $1 RETURNING u.*",
                name,
            )
            user = self._found(name, rec)
            await conn.execute("DELETE FROM web_sessions WHERE user_id = $1", user.id)
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() "
                "WHERE user_id = $1 AND revoked_at IS NULL",
                user.id,
            )
        return user

    async def issue_token(self, name: str, label: str | None = None) -> str:
        """A new bearer token for `name`; the only time it exists in clear is this return."""
        token = new_token()
        user = await self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        if user.disabled:
            raise UserError(f"user {name!r} is disabled")
        await self.pool.execute(
            "INSERT INTO api_tokens (user_id, token_sha256, label) VALUES ($1, $2, $3)",
            user.id,
            digest(token),
            label,
        )
        return token

    async def get(self, name: str) -> User | None:
        rec = await self.pool.fetchrow("SELECT u.* FROM users u WHERE name = $1", name)
        return None if rec is None else _user(rec)

    async def all(self) -> list[User]:
        return [_user(r) for r in await self.pool.fetch("SELECT u.* FROM users u ORDER BY name")]

    @staticmethod
    def _found(name: str, rec: Any) -> User:
        if rec is None:
            raise UserError(f"no user {name!r}")
        return _user(rec)

    # -- authentication (every request) -------------------------------------------------------

    async def by_token(self, token: str) -> Principal | None:
        rec = await self.pool.fetchrow(
            "UPDATE api_tokens t SET last_used_at = now() FROM users u "
            "WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.id = t.user_id "
            "AND NOT u.disabled RETURNING u.*",
            digest(token),
        )
        return None if rec is None else _user(rec).principal("token")

    async def by_password(self, name: str, password: str) -> User | None:
        rec = await self.pool.fetchrow("SELECT u.* FROM users u WHERE name = $1", name)
        encoded = None if rec is None or rec["disabled"] else rec["password_hash"]
        ok = await verify_password(encoded, password)  # also when unknown: same timing
        return _user(rec) if ok and rec is not None else None

    async def open_session(self, user: User, remote: str | None, max_s: int) -> tuple[str, str]:
        """A new session for `user`: (cookie value, CSRF token)."""
        session_id, csrf = new_secret(), new_secret()
        await self.pool.execute(
            "INSERT INTO web_sessions (id_sha256, user_id, csrf_token, expires_at, remote) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
            digest(session_id),
            user.id,
            csrf,
            float(max_s),
            remote,
        )
        return session_id, csrf

    async def by_session(self, session_id: str, idle_s: int) -> Principal | None:
        """The session's user if the session is neither expired nor idle too long; touches it."""
        rec = await self.pool.fetchrow(
            "WITH s AS (UPDATE web_sessions SET last_seen_at = now() WHERE id_sha256 = $1 "
            "AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2) "
            "RETURNING user_id, csrf_token) "
            "SELECT u.*, s.csrf_token FROM s JOIN users u ON u.id = s.user_id "
            "WHERE NOT u.disabled",
            digest(session_id),
            float(idle_s),
        )
        return None if rec is None else _user(rec).principal("session", rec["csrf_token"])

    async def close_session(self, session_id: str) -> None:
        await self.pool.execute(
            "DELETE FROM web_sessions WHERE id_sha256 = $1 OR expires_at < now()",
            digest(session_id),
        )
