"""The simulator's Stasis app registry (res/res_stasis.c): subscribeAll is taken only by a new
app; the all-events subscriptions end with the WebSocket; POST /applications/{app}/subscription
makes them explicitly (what the daemon does in hook mode)."""

from __future__ import annotations

from typing import Any

from arisim.server import Simulator
from arisim.testing import AriClient

CHECK_REQUESTS = True


def dials(client: AriClient) -> list[dict[str, Any]]:
    return [e for e in client.events if e["type"] == "Dial"]


async def dialplan_call(sim: Simulator) -> None:
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    sim.start_dialplan_call("201", context="hook-in")
    await sim.settle()
    await sim.advance(0.5)


async def test_subscribe_all_is_ignored_by_an_app_that_still_exists(sim: Simulator) -> None:
    first = AriClient(sim)  # Stasis mode: the app is created without subscribeAll
    await first.connect()
    sim.start_call(args=["inbound", "201"])  # a channel in the app keeps it registered
    await sim.settle()
    await first.close()
    again = AriClient(sim, subscribe_all=True)
    await again.connect()
    try:
        await dialplan_call(sim)
        assert dials(again) == []  # app_update only: the flag was not applied
        status, body = await again.call("POST", "/applications/verbatim/subscription",
                                        eventSource="channel:,bridge:")
        assert status == 200 and body["name"] == "verbatim"
        sim.start_dialplan_call("202", context="hook-in")
        await sim.settle()
        await sim.advance(0.5)
        peers = {d["peer"]["name"].split("-")[0] for d in dials(again)}
        assert "PJSIP/202" in peers  # every channel's events now
    finally:
        await again.close()


async def test_an_app_created_with_subscribe_all_gets_every_event_again_after_a_reconnect(
    sim: Simulator,
) -> None:
    client = AriClient(sim, subscribe_all=True)
    await client.connect()
    await client.close()
    again = AriClient(sim, subscribe_all=True)  # the app was shut down: created anew
    await again.connect()
    await dialplan_call(sim)
    assert dials(again)
    await again.close()


async def test_subscription_errors(sim: Simulator, ari: AriClient) -> None:
    assert (await ari.call("POST", "/applications/nope/subscription",
                           eventSource="channel:"))[0] == 404
    assert (await ari.call("POST", "/applications/verbatim/subscription",
                           eventSource="channel:no-such"))[0] == 422
    assert (await ari.call("POST", "/applications/verbatim/subscription",
                           eventSource="carrier:x"))[0] == 400


async def test_event_filter_as_res_stasis_applies_it(sim: Simulator) -> None:
    """PUT /applications/{app}/eventFilter (res/stasis/app.c): disallowed types are not sent;
    an allowed list sends only those; an object names the lists it sets; {} clears both."""
    client = AriClient(sim)
    await client.connect()
    try:
        path = "/applications/verbatim/eventFilter"
        quiet = {"disallowed": [{"type": "StasisStart"}]}
        status, body = await client.call("PUT", path, quiet)
        assert status == 200 and body["events_disallowed"] == quiet["disallowed"]
        assert body["events_allowed"] == []
        sim.start_call(args=["inbound", "201"])
        await sim.settle()
        assert "StasisStart" not in client.types()
        assert [r.delivered for r in sim.hub.log if r.event["type"] == "StasisStart"] == [False]
        status, body = await client.call("PUT", path, {"allowed": [{"type": "StasisEnd"}]})
        assert body["events_disallowed"] == quiet["disallowed"]  # not named: left as it was
        ch = sim.start_call(args=["inbound", "201"])
        await sim.settle()
        sim.hangup(ch.id)
        await sim.settle()
        seen = client.types(ch.id)
        assert seen == ["StasisEnd"], seen
        status, body = await client.call("PUT", path, {})
        assert (body["events_allowed"], body["events_disallowed"]) == ([], [])
        for bad in ({"allowed": [{"kind": "Dial"}]}, {"disallowed": "Dial"}):
            status, body = await client.call("PUT", path, bad)
            assert status == 400 and body["message"] == "Invalid format definition"
        status, _ = await client.call("PUT", "/applications/nobody/eventFilter", {})
        assert status == 404
    finally:
        await client.close()
    assert sim.request_problems() == []
