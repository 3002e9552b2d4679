"""The coverage proof, table-driven: talk time per leg against what the files really hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recorder.model.coverage import coverage, merge, subtract
from recorder.model.records import OnHold, Peer, Stay
from recorder.model.state import Call, CallMode, Leg, Recording, RecStatus
from tests.harness.builders import at

B = "c-b1"


def make_call(
    callee_in: tuple[float, float],
    recs: list[tuple[float, float, int, str]],
    hold: tuple[float, float] | None = None,
) -> Call:
    """Caller in the bridge from 0 to the callee's leave time; recs: (start, end, ms, status)."""
    call = Call("c", "ast", "inbound", "201", at(0), "a", B)
    caller = Leg("a", "caller", "PJSIP/a", at(0), ended_at=at(callee_in[1]))
    caller.spans = [Stay(B, at(0), at(callee_in[1]))]
    callee = Leg("b", "callee", "PJSIP/b", at(callee_in[0]), ended_at=at(callee_in[1]))
    callee.spans = [Stay(B, at(callee_in[0]), at(callee_in[1]))]
    if hold:
        callee.holds = [OnHold(at(hold[0]), at(hold[1]))]
    call.legs = {"a": caller, "b": callee}
    for i, (start, end, ms, status) in enumerate(recs, 1):
        call.recordings[f"s{i}"] = Recording(
            f"s{i}", i, f"bridge:{B}", "wav", at(start), status=RecStatus(status),
            started_at=at(start), ended_at=at(end), duration_ms=ms)
    call.ended_at = at(callee_in[1])
    return call


CASES = [
    # (callee in bridge, recordings, hold, expected gaps per leg [(start, end)], covered s)
    ("one recording covers the call", (5, 15), [(5, 15, 10_000, "filed")], None, [], 10.0),
    ("caller alone before is not talk", (5, 15), [(4.9, 15, 10_000, "filed")], None, [], 10.0),
    ("short file: the rest is a gap", (5, 15), [(5, 15, 6_000, "filed")], None, [(11, 15)], 6.0),
    ("empty file: all of it is a gap", (5, 15), [(5, 15, 0, "filed")], None, [(5, 15)], 0.0),
    ("second segment at once: no gap", (5, 15),
     [(5, 8, 3_000, "filed"), (8, 15, 7_000, "filed")], None, [], 10.0),
    ("second segment late: the wait is a gap", (5, 15),
     [(5, 8, 3_000, "filed"), (9, 15, 6_000, "filed")], None, [(8, 9)], 9.0),
    ("failed recording covers nothing", (5, 15),
     [(5, 8, 3_000, "failed"), (8, 15, 7_000, "filed")], None, [(5, 8)], 7.0),
    ("missing file covers nothing", (5, 15), [(5, 15, 10_000, "missing")], None, [(5, 15)], 0.0),
    ("under the threshold is not a gap", (5, 15),
     [(5, 8, 3_000, "filed"), (8.2, 15, 6_800, "filed")], None, [], 9.8),
    ("hold is reported, not a gap", (5, 15),
     [(5, 8, 3_000, "filed"), (11, 15, 4_000, "filed")], (8, 11), [], 7.0),
]


@pytest.mark.parametrize(("title", "callee_in", "recs", "hold", "gaps", "covered"), CASES,
                         ids=[c[0] for c in CASES])
def test_coverage(title: str, callee_in: tuple[float, float],
                  recs: list[tuple[float, float, int, str]], hold: tuple[float, float] | None,
                  gaps: list[tuple[float, float]], covered: float) -> None:
    proof = coverage(make_call(callee_in, recs, hold))
    talked = callee_in[1] - callee_in[0]
    for channel in ("a", "b"):
        leg = proof.legs[channel]
        assert leg.talked_ms == pytest.approx(talked * 1000)
        assert leg.covered_ms == pytest.approx(covered * 1000)
        assert [(g.start, g.end) for g in leg.gaps] == [(at(a), at(b)) for a, b in gaps]
    if hold:  # one party on hold holds the conversation for both
        for channel in ("a", "b"):
            assert proof.legs[channel].held_ms == pytest.approx((hold[1] - hold[0]) * 1000)


def test_interval_helpers() -> None:
    t = at(0)
    s = timedelta(seconds=1)
    assert merge([(t, t + 2 * s), (t + s, t + 3 * s), (t + 5 * s, t + 6 * s)]) == [
        (t, t + 3 * s), (t + 5 * s, t + 6 * s)]
    assert subtract([(t, t + 10 * s)], [(t + 2 * s, t + 3 * s), (t + 9 * s, t + 12 * s)]) == [
        (t, t + 2 * s), (t + 3 * s, t + 9 * s)]


PEER_CASES = [
    ("alone in the other call's bridge: no talk", None, 5.0),
    ("with the other call's party: talk, covered by the snoop", (5, 9), 9.0),
    ("the peer left early: talk only while it was there", (5, 7), 7.0),
]


@pytest.mark.parametrize(("title", "peer", "talked"), PEER_CASES, ids=[c[0] for c in PEER_CASES])
def test_a_party_of_a_linked_call_is_someone_to_talk_with(
    title: str, peer: tuple[float, float] | None, talked: float
) -> None:
    """Hook mode, attended transfer: the caller (a) talks with b in B until 5 s, then is
    swapped into bridge X of the other call, whose party is a peer of this call there; a's
    snoop runs all along (9 s)."""
    call = Call("c", "ast", "inbound", "201", at(0), "a", "", mode=CallMode.HOOK)
    caller = Leg("a", "caller", "PJSIP/a", at(0), ended_at=at(9))
    caller.spans = [Stay(B, at(0), at(5)), Stay("X", at(5), at(9))]
    callee = Leg("b", "callee", "PJSIP/b", at(0), ended_at=at(5))
    callee.spans = [Stay(B, at(0), at(5))]
    call.legs = {"a": caller, "b": callee}
    if peer is not None:
        call.hook.peers = [Peer("X", "z", at(peer[0]), at(peer[1]))]
    call.recordings["s1"] = Recording("s1", 1, "snoop:a", "wav", at(0), status=RecStatus.FILED,
                                      started_at=at(0), ended_at=at(9), duration_ms=9000)
    call.ended_at = at(9)
    leg = coverage(call).legs["a"]
    assert (leg.talked_ms, leg.covered_ms, leg.gaps) == (talked * 1000, talked * 1000, ())


# A forward's target behind a Local pair (Asterisk follows a 302 of an originated leg itself):
# the target waits in its own bridge with ;2 until ;1 joins the recorded call bridge.
LOCAL_CASES = [
    # (title, ;1 joins the call bridge at, target joins ;2's bridge at, expected talk s for
    #  the target and the caller)
    ("both at once", 5.0, 5.0, 10.0),
    ("nothing known behind ;2: ;1 counts as a party", 5.0, None, 10.0),
    ("the target first: it talks to no one until ;1 joins", 5.3, 5.0, 9.7),
    (";1 first: the caller talks to no one until the target joins", 5.0, 5.4, 9.6),
]


@pytest.mark.parametrize(("title", "half_in", "target_in", "talk_s"), LOCAL_CASES,
                         ids=[c[0] for c in LOCAL_CASES])
def test_a_local_half_is_no_party(title: str, half_in: float, target_in: float | None,
                                  talk_s: float) -> None:
    call = Call("c", "ast", "inbound", "300", at(0), "a", B)
    caller = Leg("a", "caller", "PJSIP/a", at(0), ended_at=at(15))
    caller.spans = [Stay(B, at(0), at(15))]
    base = "Local/300@from-internal-00000026"
    one = Leg("l1", "callee", f"{base};1", at(4), ended_at=at(15), local_base=base)
    one.spans = [Stay(B, at(half_in), at(15))]
    two = Leg("l2", "local", f"{base};2", at(4), ended_at=at(15), local_base=base)
    two.spans = [Stay("c-b2", at(4), at(15))]
    target = Leg("t", "callee", "PJSIP/300", at(4), ended_at=at(15))
    target.spans = [Stay("c-b2", at(target_in), at(15))] if target_in is not None else []
    call.legs = {leg.channel_id: leg for leg in (caller, one, two, target)}
    call.recordings["s1"] = Recording("s1", 1, f"bridge:{B}", "wav", at(half_in),
                                      status=RecStatus("filed"), started_at=at(half_in),
                                      ended_at=at(15), duration_ms=round((15 - half_in) * 1000))
    call.ended_at = at(15)
    proof = coverage(call)
    for channel in ("a", "t") if target_in is not None else ("a",):
        leg = proof.legs[channel]
        assert leg.talked_ms == pytest.approx(talk_s * 1000), (channel, leg)
        assert leg.covered_ms == leg.talked_ms and not leg.gaps, (channel, leg)
