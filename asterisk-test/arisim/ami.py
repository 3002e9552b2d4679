"""The manager interface (AMI) of the simulated Asterisk, for what `verbatim doctor` asks.

ARI cannot list the dialplan, AMI can. This answers as Asterisk 22.10.1's main/manager.c and
main/pbx.c do: the banner `Asterisk Call Manager/11.0.0` (AMI_VERSION), `Login` (ack
"Authentication accepted" or error "Authentication failed"), `ShowDialPlan` with an optional
`Context` (manager_show_dialplan: an ack `EventList: start` "DialPlan list will follow", one
`ListDialplan` event per priority, then `ShowDialPlanComplete`; an unknown context is an error
"Did not find context X"), `Logoff` ("Goodbye"). Anything else before login is "Permission
denied", after it "Invalid/unknown command". Each message is `Key: Value` lines ending with an
empty line, CRLF throughout.
"""

from __future__ import annotations

import asyncio
import contextlib

from .dialplan import Dialplan

AMI_VERSION = "11.0.0"  # include/asterisk/manager.h of Asterisk 22


class AmiServer:
    def __init__(self, dialplan: Dialplan, username: str, secret: str) -> None:
        self.dialplan, self.username, self.secret = dialplan, username, secret
        self._server: asyncio.Server | None = None
        self.actions: list[str] = []  # every action asked, in order (for tests)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._session, host, port)
        port_: int = self._server.sockets[0].getsockname()[1]
        return port_

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"Asterisk Call Manager/{AMI_VERSION}\r\n".encode())
        authenticated = False
        try:
            while (message := await _read_message(reader)) is not None:
                action = message.get("action", "")
                self.actions.append(action)
                reply, authenticated, done = self._answer(action.lower(), message, authenticated)
                writer.write(reply.encode())
                await writer.drain()
                if done:
                    break
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, action: str, m: dict[str, str],
                authenticated: bool) -> tuple[str, bool, bool]:
        """The reply, whether the session is now logged in, whether it ends."""
        if action == "login":
            ok = m.get("username") == self.username and m.get("secret") == self.secret
            if ok:
                return _response(m, "Success", "Authentication accepted"), True, False
            return _response(m, "Error", "Authentication failed"), False, False
        if action == "logoff":
            return _response(m, "Goodbye", "Thanks for all the fish."), authenticated, True
        if not authenticated:
            return _response(m, "Error", "Permission denied"), False, False
        if action == "showdialplan":
            return self._show_dialplan(m), True, False
        message = (f"Invalid/unknown command: {m.get('action', '')}. Use Action: ListCommands "
                   "to show available commands.")
        return _response(m, "Error", message), True, False

    def _show_dialplan(self, m: dict[str, str]) -> str:
        wanted = m.get("context", "")
        contexts = {name: exts for name, exts in self.dialplan.contexts.items()
                    if not wanted or name == wanted}
        if wanted and not contexts:
            return _response(m, "Error", f"Did not find context {wanted}")
        action_id = f"ActionID: {m['actionid']}\r\n" if m.get("actionid") else ""
        out = [_response(m, "Success", "DialPlan list will follow", list_flag="start")]
        items = extensions = 0
        for name, exts in contexts.items():
            for pattern, steps in exts:
                extensions += 1
                for priority, (app, data) in enumerate(steps, 1):
                    items += 1
                    out.append(f"Event: ListDialplan\r\n{action_id}Context: {name}\r\n"
                               f"Extension: {pattern}\r\nPriority: {priority}\r\n"
                               f"Application: {app}\r\nAppData: {data}\r\n"
                               "Registrar: pbx_config\r\n\r\n")
        out.append(f"Event: ShowDialPlanComplete\r\n{action_id}EventList: Complete\r\n"
                   f"ListItems: {items}\r\nListExtensions: {extensions}\r\n"
                   f"ListPriorities: {items}\r\nListContexts: {len(contexts)}\r\n\r\n")
        return "".join(out)


def _response(m: dict[str, str], response: str, message: str, list_flag: str | None = None) -> str:
    """astman_send_response_full: Response, ActionID, EventList, Message."""
    action_id = f"ActionID: {m['actionid']}\r\n" if m.get("actionid") else ""
    flag = f"EventList: {list_flag}\r\n" if list_flag else ""
    return f"Response: {response}\r\n{action_id}{flag}Message: {message}\r\n\r\n"


async def _read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """One action: header lines up to an empty line; keys lower-cased (astman_get_header is
    case-insensitive). None at end of stream."""
    message: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode(errors="replace").rstrip("\r\n")
        if not text:
            if message:
                return message
            continue
        key, _, value = text.partition(":")
        message[key.strip().lower()] = value.strip()
