"""Blind transfers through the pure model, in the event order of the real captures."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.inputs import RecordingFiled
from tests.harness import builders as b
from tests.harness.model import CALLER, Run, to_bridged, to_dialling

BASE = "Local/300@transfer-target-00000047"
L1, L2 = "1795631425.154", "1795631425.155"


def blind(t: float, transferer: str) -> ev.BridgeBlindTransfer:
    return ev.BridgeBlindTransfer(
        timestamp=b.at(t), asterisk_id=b.AST, channel=b.chan(transferer), exten="300",
        context="transfer-target", result="Success", is_external=True,
        replace_channel=b.chan(L1, name=f"{BASE};1"),
    )


def transfer(run: Run, transferer: str, t: float, half2_first: bool) -> str:
    """Feed a blind transfer by `transferer`; returns the target leg's id."""
    half1 = ev.StasisStart(timestamp=b.at(t), asterisk_id=b.AST,
                           channel=b.chan(L1, "Down", name=f"{BASE};1"), args=(),
                           replace_channel=b.chan(transferer))
    half2 = b.stasis_start(t, b.chan(L2, "Ring", name=f"{BASE};2"), "transfer", "300")
    run.feed(ev.ChannelUnhold(timestamp=b.at(t), asterisk_id=b.AST, channel=b.chan(transferer)))
    for e in ([half2, half1] if half2_first else [half1, half2]):
        run.feed(e)
    bridge = run.bridge(0)  # the call's
    run.feed(b.left(t, bridge, transferer))
    run.feed(b.entered(t, bridge, L1))
    run.feed(blind(t, transferer))
    creates: list[cmd.CreateChannel] = run.of(cmd.CreateChannel)
    (create,) = [c for c in creates if c.endpoint == "PJSIP/300"]
    return create.channel_id


@pytest.mark.parametrize("half2_first", [True, False])
@pytest.mark.parametrize("by", ["callee", "caller"])
def test_blind_transfer_keeps_recording_and_dials_the_target(half2_first: bool, by: str) -> None:
    run = Run()
    call_id, callee, name = to_bridged(run)
    transferer = callee if by == "callee" else CALLER
    stayer = CALLER if by == "callee" else callee
    target = transfer(run, transferer, 20, half2_first)
    b1, b2 = [c.bridge_id for c in run.of(cmd.CreateBridge)]  # the call's, then the target's
    assert b1 != b2
    assert [a.channel_id for a in run.of(cmd.AddChannel) if a.bridge_id == b2] == [L2]
    # the transferer's departure ends nothing: no hangup, no recording stopped
    run.feed(b.hangup_request(20.2, transferer))
    run.feed(b.stasis_end(20.21, transferer))
    assert not run.of(cmd.Hangup) and not run.of(cmd.StopRecording)
    out = run.feed(b.stasis_start(20.3, b.chan(target, "Down"), "dialed", call_id))
    assert [(d.channel_id, d.caller_id) for d in run.of(cmd.DialChannel, out)] == [(target, L2)]
    out = run.feed(b.dial(21, target, "ANSWER"))
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [(b2, target)]
    assert len(run.of(cmd.StartRecording)) == 1  # the call bridge's recording goes on
    run.feed(b.entered(21.01, b2, L2))
    run.feed(b.entered(21.02, b2, target))
    kinds = [c.event.kind for c in run.of(cmd.RecordEvent)]
    assert {"transfer.replaced", "transfer.dialing", "transfer.blind",
            "transfer.answered"} <= set(kinds)
    # the one who stayed hangs up: the pair and the new party go too (not left to nobody)
    out = run.feed(b.hangup_request(30, stayer))
    assert {h.channel_id for h in run.of(cmd.Hangup, out)} == {L1, L2, target}
    for t, leg in enumerate([stayer, L1, L2, target]):
        run.feed(b.stasis_end(30.1 + t / 100, leg))
    run.feed(b.recording(30.2, "finished", name))
    assert {d.bridge_id for d in run.of(cmd.DestroyBridge)} == {b1, b2}
    run.feed(RecordingFiled(timestamp=b.at(31), name=name, path="/x", sha256="0" * 64,
                            bytes=1, duration_ms=round((30 - 5.02) * 1000)))
    assert not run.state.calls
    saved = run.saved()[-1]
    roles = sorted(leg.role for leg in saved.legs)
    assert roles == ["callee", "callee", "caller", "local", "local"]


def test_transfer_coverage_counts_the_target_through_the_local_pair() -> None:
    run = Run()
    call_id, callee, name = to_bridged(run)
    target = transfer(run, callee, 20, half2_first=True)
    run.feed(b.stasis_end(20.2, callee))
    run.feed(b.stasis_start(20.3, b.chan(target, "Down"), "dialed", call_id))
    run.feed(b.dial(21, target, "ANSWER"))
    run.feed(b.entered(21.0, run.bridge(), L2))
    run.feed(b.entered(21.0, run.bridge(), target))
    run.feed(b.hangup_request(30, CALLER))
    for t, leg in enumerate([CALLER, L1, L2, target]):
        run.feed(b.stasis_end(30 + t / 1000, leg))
    run.feed(b.recording(30.01, "finished", name))
    run.feed(RecordingFiled(timestamp=b.at(31), name=name, path="/x", sha256="0" * 64,
                            bytes=1, duration_ms=round((30 - 5.02) * 1000)))
    parties = {leg.channel_id: leg for leg in run.saved()[-1].legs
               if leg.talked_ms is not None}
    assert set(parties) == {CALLER, callee, target}  # Local halves are not parties
    assert not run.of(cmd.SaveGaps) and run.logs("call.summary")[0].fields["gaps"] == 0
    assert parties[target].talked_ms == pytest.approx(9000, abs=5)
    assert parties[target].covered_ms == pytest.approx(parties[target].talked_ms, abs=10)


def test_a_transfer_target_asterisk_cannot_call_ends_the_call_as_answered() -> None:
    """A blind transfer to an endpoint that is not configured (create answers 500) fails as
    a target that did not answer: the transferee's call ends, and it stays an answered call
    (before, its outcome became "failed", which a search for failed calls then found)."""
    from recorder.model.inputs import CommandFailed

    run = Run()
    _call_id, callee, _name = to_bridged(run)
    target = transfer(run, callee, 20, half2_first=False)
    (create,) = [c for c in run.of(cmd.CreateChannel) if c.channel_id == target]
    out = run.feed(CommandFailed(timestamp=b.at(20.1), command=create, status=500,
                                 message="Allocation failed"))
    assert [c.level for c in run.logs("transfer.failed")] == ["info"]  # a busy line, as Dial()
    assert not [c for c in run.of(cmd.Log, out) if c.level in ("warning", "error")]
    assert {h.channel_id for h in run.of(cmd.Hangup, out)} == {CALLER, callee, L1, L2}
    assert run.call.legs[target].state == "gone"
    assert run.call.outcome == "answered"


def test_transfer_target_busy_ends_the_call() -> None:
    run = Run()
    call_id, callee, _name = to_bridged(run)
    target = transfer(run, callee, 20, half2_first=False)
    run.feed(b.stasis_start(20.3, b.chan(target, "Down"), "dialed", call_id))
    out = run.feed(b.dial(21, target, "BUSY"))
    assert {h.channel_id for h in run.of(cmd.Hangup, out)} >= {CALLER, L1, L2}
    assert run.call.outcome == "answered"  # the call itself was answered and recorded


def test_attended_application_local_half_becomes_the_unbridged_callers_replacement() -> None:
    """Destination "application": ;2 replaces a consultation leg that was in the app but not in
    a bridge; it becomes the call's caller and is put in the call bridge."""
    run = Run()
    run.feed(b.stasis_start(0, b.chan(CALLER, "Ring"), "internal", "300"))
    half = ev.StasisStart(timestamp=b.at(0.5), asterisk_id=b.AST,
                          channel=b.chan("9.2", "Up", name="Local/_attended@transfer-0001;2"),
                          args=(), replace_channel=b.chan(CALLER))
    out = run.feed(half)
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [
        (run.bridge(), "9.2")]
    assert run.call.caller_channel == "9.2"
    run.feed(b.stasis_end(0.6, CALLER))  # the replaced leg leaving ends nothing
    assert run.call.phase == "consent" and not run.of(cmd.Hangup)


def test_302_followed_by_asterisk_originate_form_links_the_forwarded_pair() -> None:
    """Trace sip_forward_302_originate: Dial CANCEL names the channel Asterisk follows the 302
    with (a Local ;1); its ;2 enters the app like a new outbound call. It must become part of
    this call, not a call of its own: ;2 is bridged with the new target, ;1 is the callee."""
    run = Run()
    call_id, first = to_dialling(run, target="400")
    base = "Local/300@from-internal-00000042"
    f1 = b.chan("9.1", "Down", name=f"{base};1")
    run.feed(ev.Dial(timestamp=b.at(3.02), asterisk_id=b.AST, peer=b.chan(first, "Down"),
                     dialstatus="CANCEL", forward="300", forwarded=f1))
    out = run.feed(b.stasis_start(3.03, b.chan("9.2", "Ring", name=f"{base};2"),
                                  "outbound", "300"))
    assert len(run.state.calls) == 1  # not a new call
    b1, b2 = run.bridge(0), run.bridge()  # the call's, and one for ;2 and the new target
    assert b1 != b2
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [(b2, "9.2")]
    (create,) = run.of(cmd.CreateChannel, out)
    assert (create.endpoint, create.originator) == ("PJSIP/300", "9.2")
    run.feed(b.destroyed(3.04, first, cause=0))
    assert run.call.phase == "dialing" and not run.of(cmd.Hangup)
    target = create.channel_id
    run.feed(b.stasis_start(3.05, b.chan(target, "Down"), "dialed", call_id))
    out = run.feed(b.dial(5, target, "ANSWER"))
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [(b2, target)]
    out = run.feed(b.dial(5.01, "9.1", "ANSWER"))  # ;1 answers once ;2 is answered
    assert not run.of(cmd.StartRecording, out)  # not in the app yet: taken at its StasisStart
    out = run.feed(b.stasis_start(5.02, b.chan("9.1", "Up", name=f"{base};1"), "dialed",
                                  call_id))
    (rec,) = run.of(cmd.StartRecording, out)
    assert rec.bridge_id == b1
    out = run.feed(b.recording(5.03, "started", rec.name))
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [(b1, "9.1")]
    run.feed(b.entered(5.04, b1, "9.1"))
    run.feed(b.entered(5.04, b2, "9.2"))
    run.feed(b.entered(5.04, b2, target))
    assert run.call.phase == "bridged"
    out = run.feed(b.hangup_request(20, CALLER))
    assert {h.channel_id for h in run.of(cmd.Hangup, out)} == {"9.1", "9.2", target}


def test_a_transfer_target_whose_opt_out_route_is_refused_joins_unrecorded(
    tmp_path: Path
) -> None:
    """The target of a blind transfer refuses recording during its join announcement and
    policy routes the caller (`then: route`); Asterisk refuses the route (500): the target
    joins, unrecorded, as `then: continue` would (before: it stayed answered outside its
    bridge, in silence, until someone hung up)."""
    from recorder.config import CallsConfig
    from recorder.model.inputs import CommandFailed
    from recorder.model.settings import CallSettings
    from recorder.policy import load_policy, numbering_from

    path = tmp_path / "policy.yaml"
    path.write_text('opt_out:\n  then: route\n  route_to: "verbatim-optout,s,1"\n'
                    "announcements:\n  to_extensions: true\n")
    run = Run(CallSettings(policy=load_policy(path, numbering_from(CallsConfig()))))
    call_id, callee = to_dialling(run)
    run.feed(b.dial(5, callee, "ANSWER"))
    for play in run.of(cmd.Play)[1:]:  # the announcements at the answer, to both
        run.feed(b.playback_finished(8, play.playback_id))
    run.feed(b.recording(8.01, "started", run.recording()))
    run.feed(b.entered(8.02, run.bridge(), callee))
    target = transfer(run, callee, 20, half2_first=True)
    b2 = run.bridge()
    run.feed(b.stasis_end(20.2, callee))
    run.feed(b.stasis_start(20.3, b.chan(target, "Down"), "dialed", call_id))
    out = run.feed(b.dial(21, target, "ANSWER"))
    (prompt,) = [p for p in run.of(cmd.Play, out) if p.channel_id == target]
    assert not [a for a in run.of(cmd.AddChannel, out) if a.channel_id == target]
    out = run.feed(ev.ChannelDtmfReceived(timestamp=b.at(22), asterisk_id=b.AST,
                                          channel=b.chan(target, "Up"), digit="9"))
    (route,) = run.of(cmd.ContinueInDialplan, out)
    out = run.feed(CommandFailed(timestamp=b.at(22.1), command=route, status=500,
                                 message="boom"))
    assert [(a.bridge_id, a.channel_id) for a in run.of(cmd.AddChannel, out)] == [(b2, target)]
    out = run.feed(b.playback_finished(22.2, prompt.playback_id))  # the stopped announcement
    assert not run.of(cmd.AddChannel, out)
    assert run.call.record is False


@pytest.mark.parametrize(("exten", "caller_left", "level"), [
    ("300", True, "info"),  # the transferee hung up as the transfer happened: a race
    ("30/0", False, "warning"),  # a target no dial string may carry: a fault
])
def test_a_transfer_half_the_call_cannot_take_is_hung_up(
    exten: str, caller_left: bool, level: str
) -> None:
    run = Run()
    _call_id, callee, _name = to_bridged(run)
    run.feed(ev.StasisStart(timestamp=b.at(20), asterisk_id=b.AST,
                            channel=b.chan(L1, "Down", name=f"{BASE};1"), args=(),
                            replace_channel=b.chan(callee)))
    if caller_left:
        run.feed(b.hangup_request(20.001, CALLER))
    out = run.feed(b.stasis_start(20.002, b.chan(L2, "Ring", name=f"{BASE};2"), "transfer",
                                  exten))
    assert L2 in [h.channel_id for h in run.of(cmd.Hangup, out)]
    assert [c.level for c in run.logs("transfer.refused")] == [level]
    assert not [c for c in run.of(cmd.Log, out)
                if c.level in ("warning", "error") and c.event != "transfer.refused"]
