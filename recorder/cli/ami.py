"""Just enough of Asterisk's manager interface (AMI) to ask which dialplan contexts exist.

ARI cannot list the dialplan; `verbatim doctor` asks AMI's `ShowDialPlan` (main/pbx.c
manager_show_dialplan) for each context it expects, when `ami:` credentials are configured.
The protocol: a banner line `Asterisk Call Manager/<version>`, then messages of `Key: Value`
lines ended by an empty line, CRLF throughout; replies carry the request's ActionID.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from recorder.config import AmiConfig


class AmiError(Exception):
    """AMI could not be reached or refused us; the message says which."""


async def existing_contexts(ami: AmiConfig, contexts: Iterable[str],
                            timeout_s: float = 5.0) -> dict[str, bool]:
    """For each context: does Asterisk's dialplan have it?"""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(ami.host, ami.port)
            try:
                return await _ask(reader, writer, ami, list(contexts))
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except TimeoutError:
        where = f"{ami.host}:{ami.port}"
        raise AmiError(f"AMI at {where} did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        where = f"{ami.host}:{ami.port}"
        raise AmiError(f"cannot reach AMI at {where}: {exc.strerror or exc}") from None


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ami: AmiConfig,
               contexts: list[str]) -> dict[str, bool]:
    banner = (await reader.readline()).decode(errors="replace")
    if not banner.startswith("Asterisk Call Manager/"):
        raise AmiError(f"{ami.host}:{ami.port} is not Asterisk's AMI (it said {banner.strip()!r})")
    login = await _action(reader, writer, "login", Action="Login", Username=ami.username or "",
                          Secret=ami.secret.reveal(), Events="off")
    if login.get("response") != "Success":
        raise AmiError(f"AMI refused user {ami.username!r}: {login.get('message', '')}")
    found: dict[str, bool] = {}
    for i, context in enumerate(contexts):
        reply = await _action(reader, writer, f"dp{i}", Action="ShowDialPlan", Context=context)
        found[context] = reply.get("response") == "Success"
        while reply.get("event") != "ShowDialPlanComplete" and found[context]:
            reply = await _reply(reader, f"dp{i}")  # the ListDialplan events, then the end
    await _action(reader, writer, "bye", Action="Logoff")
    return found


async def _action(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, action_id: str,
                  **headers: str) -> dict[str, str]:
    lines = [f"{key}: {value}" for key, value in headers.items()] + [f"ActionID: {action_id}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return await _reply(reader, action_id)


async def _reply(reader: asyncio.StreamReader, action_id: str) -> dict[str, str]:
    """The next message carrying `action_id` (others, such as unrelated events, are skipped)."""
    while True:
        message: dict[str, str] = {}
        while (line := (await reader.readline()).decode(errors="replace").rstrip("\r\n")):
            key, _, value = line.partition(":")
            message[key.strip().lower()] = value.strip()
        if not message and reader.at_eof():
            raise AmiError("AMI closed the connection")
        if message.get("actionid") == action_id:
            return message
