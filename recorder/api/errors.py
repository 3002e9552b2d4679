"""API errors and the one middleware that renders every failure.

Each error has an HTTP status, a stable `error_id` scripts can match on, a message for people and
`details` naming the offending value. Handlers raise; only `error_middleware` renders: JSON
{status, error_id, message, details} under /api/, a small HTML page elsewhere. The database being
unreachable is a 503 (retry later), and so is an access-log row PostgreSQL refuses (access_log.py):
never a 500, which means a bug.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from recorder.storage.objects import StoreError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self, status: int, error_id: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error_id": self.error_id,
            "message": self.message,
            "details": self.details,
        }


def invalid(parameter: str, message: str, value: Any = None) -> ApiError:
    """400 about one query parameter; the value is echoed (truncated) so the caller sees it."""
    details: dict[str, Any] = {"parameter": parameter}
    if value is not None:
        details["value"] = str(value)[:200]
    return ApiError(400, "invalid_parameter", f"{parameter}: {message}", details)


def not_found(what: str, **details: Any) -> ApiError:
    # The same answer whether the thing does not exist or is outside the caller's scope.
    return ApiError(404, f"{what}_not_found", f"no such {what.replace('_', ' ')}", details)


def unauthenticated(message: str = "log in or send a bearer token") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(permission: str) -> ApiError:
    return ApiError(
        403,
        "permission_denied",
        f"your role lacks the permission {permission}",
        {"permission": permission},
    )


# Errors that mean "PostgreSQL is not reachable or not accepting us right now".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
_HTTP_IDS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    400: "bad_request",
}


def _render(request: web.Request, err: ApiError) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    if request.path.startswith("/api/"):
        return web.json_response(err.body(), status=err.status, headers=headers)
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{err.status} - Verbatim</title>"
        '<link rel="stylesheet" href="/static/style.css"></head><body><main>'
        f"<h1>{html.escape(err.message)}</h1>"
        f'<p>Error {err.status} ({html.escape(err.error_id)}). <a href="/calls">Search calls</a>'
        "</p></main></body></html>"
    )
    return web.Response(text=text, status=err.status, content_type="text/html", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return _render(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects are answers, not errors
        error_id = _HTTP_IDS.get(exc.status, "http_error")
        return _render(request, ApiError(exc.status, error_id, exc.reason, {}))
    except StoreError as exc:  # before any byte of the recording was sent
        log.error("api.object_store_unavailable", error=str(exc)[:300], path=request.path)
        return _render(request, ApiError(
            503, "object_store_unavailable", "the recordings' object store is not reachable; "
            "retry", {}))  # fmt: skip
    except UNAVAILABLE as exc:
        log.warning("api.database_unavailable", error=type(exc).__name__, path=request.path)
        unavailable = ApiError(
            503, "database_unavailable", "the call database is not reachable; retry"
        )
        return _render(request, unavailable)
    except Exception:
        log.exception("api.internal_error", path=request.path)
        return _render(request, ApiError(500, "internal_error", "internal error"))
