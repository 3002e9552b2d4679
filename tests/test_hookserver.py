"""recorder.service.hookserver over real TCP: an AGI session becomes model inputs, and
replies go back.

The test plays both Asterisk (FakeAsterisk, from the FastAGI server tests) and the call model
(reading the broker's events and delivering HookReply commands).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from recorder.agi import AgiServer
from recorder.ari.events import Event
from recorder.model.commands import HookReply
from recorder.model.inputs import HookCalled, HookPrompted
from recorder.service.hookserver import HookBroker
from tests.harness.agi import UNIQUEID, FakeAsterisk


class Model:
    def __init__(self, timeout_s: float = 2.0, ready: bool = True) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.broker = HookBroker(self.events.put, lambda: datetime.now(UTC), lambda: "ast-1",
                                 reply_timeout_s=timeout_s, ready=lambda: ready)

    async def next(self) -> Event:
        async with asyncio.timeout(2):
            return await self.events.get()


@pytest.fixture
async def served() -> AsyncIterator[tuple[Model, int]]:
    model = Model(timeout_s=0.3)
    server = AgiServer(model.broker.handlers, port=0)
    _, port = await server.start()
    yield model, port
    await server.stop()


async def test_prompt_then_answer(served: tuple[Model, int]) -> None:
    model, port = served
    fake = await FakeAsterisk.connect(port)
    await fake.send_env("record")
    called = await model.next()
    assert isinstance(called, HookCalled)
    assert (called.hook, called.args, called.exten, called.asterisk_id) == (
        "record", ("inbound", "201"), "201", "ast-1")
    assert (called.channel.id, called.channel.caller_number) == (UNIQUEID, "+14155550100")
    model.broker.deliver(HookReply("c1", called.session, (("__VERBATIM_CALL_ID", "c1"),),
                                   (("verbatim/consent-en", "1"),), final=False))
    await fake.expect('SET VARIABLE __VERBATIM_CALL_ID "c1"', "200 result=1")
    await fake.expect("ANSWER", "200 result=0")  # a caller not answered would hear nothing
    await fake.expect('STREAM FILE "verbatim/consent-en" "1"', "200 result=49 endpos=4000")
    prompted = await model.next()
    assert isinstance(prompted, HookPrompted)
    assert (prompted.session, prompted.digit, prompted.hung_up) == (called.session, "1", False)
    model.broker.deliver(HookReply("c1", called.session, (("VERBATIM_STATUS", "NOT_RECORDED"),)))
    await fake.expect('SET VARIABLE VERBATIM_STATUS "NOT_RECORDED"', "200 result=1")
    await fake.expect_closed()
    await fake.close()


async def test_a_recorder_that_does_not_answer_lets_the_dialplan_go_on(
    served: tuple[Model, int],
) -> None:
    model, port = served
    fake = await FakeAsterisk.connect(port)
    with capture_logs() as logs:
        await fake.send_env("record")
        called = await model.next()
        assert isinstance(called, HookCalled)
        assert (model.broker.waiting, model.broker.timeouts) == (1, 0)  # what /metrics shows
        await fake.expect('SET VARIABLE VERBATIM_STATUS "FAILED"', "200 result=1")
        await fake.expect('SET VARIABLE VERBATIM_ERROR "the recorder did not answer"',
                          "200 result=1")
        await fake.expect_closed()
        # the model's answer, too late: dropped with a warning, nothing breaks
        model.broker.deliver(HookReply("c1", called.session, (("VERBATIM_STATUS", "OK"),)))
    assert [e["event"] for e in logs if e["event"].startswith("hook.")] == [
        "hook.called", "hook.timeout", "hook.reply_late"]
    assert (model.broker.waiting, model.broker.timeouts) == (0, 1)
    await fake.close()


async def _announcing(model: Model, port: int) -> tuple[FakeAsterisk, HookCalled]:
    """An answered hook told to play the announcement: Asterisk has answered the channel
    and has the STREAM FILE to answer."""
    fake = await FakeAsterisk.connect(port)
    await fake.send_env("answered")
    called = await model.next()
    assert isinstance(called, HookCalled)
    model.broker.deliver(HookReply("c1", called.session, (), (("verbatim/consent-en", "1"),),
                                   final=False))
    await fake.expect("ANSWER", "200 result=0")
    assert await fake.read_line() == 'STREAM FILE "verbatim/consent-en" "1"'
    return fake, called


async def test_hangup_during_the_announcement_is_reported(served: tuple[Model, int]) -> None:
    model, port = served
    fake, _called = await _announcing(model, port)
    await fake.send("HANGUP", "200 result=-1 endpos=0")
    prompted = await model.next()
    assert isinstance(prompted, HookPrompted) and prompted.hung_up
    await fake.close()


async def test_hooks_before_the_recorder_is_connected_fail_over_at_once() -> None:
    model = Model(ready=False)
    server = AgiServer(model.broker.handlers, port=0)
    _, port = await server.start()
    try:
        fake = await FakeAsterisk.connect(port)
        await fake.send_env("record")
        await fake.expect('SET VARIABLE VERBATIM_STATUS "FAILED"', "200 result=1")
        await fake.expect('SET VARIABLE VERBATIM_ERROR "the recorder is starting"',
                          "200 result=1")
        await fake.expect_closed()
        await fake.close()
        assert model.events.empty()  # no call was started for it
    finally:
        await server.stop()


async def test_session_ids_differ_from_one_run_to_the_next() -> None:
    """A reply stored for a session of the previous run never reaches one of this run."""
    ids = []
    for m in (Model(), Model()):
        server = AgiServer(m.broker.handlers, port=0)
        _, p = await server.start()
        fake = await FakeAsterisk.connect(p)
        await fake.send_env("tag")
        called = await m.next()
        assert isinstance(called, HookCalled)
        ids.append(called.session)
        m.broker.deliver(HookReply("c", called.session, (("VERBATIM_STATUS", "OK"),)))
        await fake.expect('SET VARIABLE VERBATIM_STATUS "OK"', "200 result=1")
        await fake.close()
        await server.stop()
    assert ids[0] != ids[1]


async def test_a_control_character_in_a_reply_costs_nothing_but_its_wording(
    served: tuple[Model, int]
) -> None:
    """A detail carrying a control character (a policy rule's name in the decision's reason,
    loaded before names were checked) is set with spaces for it, and the status stands:
    before, SET VARIABLE refused it, the session answered ERROR, and the dialplan's fallback
    recorded a call policy had said not to record."""
    model, port = served
    fake = await FakeAsterisk.connect(port)
    await fake.send_env("record")
    called = await model.next()
    assert isinstance(called, HookCalled)
    with capture_logs() as logs:
        model.broker.deliver(HookReply("c1", called.session, (
            ("VERBATIM_STATUS", "NOT_RECORDED"), ("VERBATIM_DETAIL", "rule 'Legal\tline'"))))
        await fake.expect('SET VARIABLE VERBATIM_STATUS "NOT_RECORDED"', "200 result=1")
        await fake.expect("SET VARIABLE VERBATIM_DETAIL \"rule 'Legal line'\"", "200 result=1")
        await fake.expect_closed()
    await fake.close()
    assert not [x for x in logs if x["log_level"] in ("warning", "error")]


@pytest.mark.parametrize("answer", ["200 result=", "200 result=x endpos=1", "garbage"])
async def test_an_announcement_answered_with_no_agi_is_over_all_the_same(
    served: tuple[Model, int], answer: str
) -> None:
    """A STREAM FILE answered with what is not AGI ends the session, but the model still
    hears that the announcement is over, with the error (before: nothing, so its session
    waited for good and the consent row later said the party hung up)."""
    model, port = served
    fake, called = await _announcing(model, port)
    await fake.send(answer)
    prompted = await model.next()
    assert isinstance(prompted, HookPrompted)
    assert (prompted.session, prompted.hung_up) == (called.session, False)
    assert prompted.error
    await fake.close()
