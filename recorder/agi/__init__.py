"""FastAGI: a small server for Asterisk's `AGI(agi://host:port/<hook>,...)` (see server.py)."""

from .protocol import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResponse,
    parse_env,
    parse_multiline_response,
    parse_response,
    quote,
    starts_multiline,
)
from .server import DEFAULT_LIMITS, AgiLimits, AgiServer, AgiSession, Handler

__all__ = [
    "DEFAULT_LIMITS",
    "AgiCommandError",
    "AgiError",
    "AgiHangup",
    "AgiLimits",
    "AgiProtocolError",
    "AgiRequest",
    "AgiResponse",
    "AgiServer",
    "AgiSession",
    "Handler",
    "parse_env",
    "parse_multiline_response",
    "parse_response",
    "quote",
    "starts_multiline",
]
