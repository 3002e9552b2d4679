"""Rule order and semantics of `decide`, table-driven, on policies built in code."""

from __future__ import annotations

import re
from datetime import datetime, time
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from recorder.policy import CallFacts, Join, Numbering, Policy, decide
from recorder.policy.model import (
    Action,
    DoNotRecord,
    Match,
    NumberPattern,
    OptOut,
    Point,
    Rule,
    TimeWindow,
)
from recorder.policy.rules import in_window

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # a Wednesday
NUMBERING = Numbering(departments=MappingProxyType({"201": "Intake", "210": "Litigation"}))
INBOUND = CallFacts("inbound", "+12125550100", "210", did="+14155550100", trunk="main")


def at_point(point: Point, action: Action, name: str | None = None) -> Rule:
    """A rule that matches anything at `point`."""
    match = Match(vias=frozenset({"transfer", "forward"})) if point == "transfer" else Match()
    return Rule(name or f"{point} {action}", point, action, match)


def policy(*rules: Rule, **kwargs: object) -> Policy:
    return Policy(rules=rules, numbering=NUMBERING, **kwargs)  # type: ignore[arg-type]


WITH_TRANSFER = CallFacts("inbound", "+12125550100", "210", joins=(Join("201"),))


@pytest.mark.parametrize(
    ("actions", "record", "action", "by"),
    [
        # route, department, extension, transfer -> outcome
        (("yes", "no", None, None), False, "no", "department no"),
        (("no", "yes", None, None), True, "yes", "department yes"),
        (("force", "never", "no", None), True, "force", "route force"),
        (("never", "force", "yes", "force"), False, "never", "route never"),
        (("yes", "force", "never", None), True, "force", "department force"),
        # a never where the call arrives by transfer overrides an earlier force; not the reverse
        (("yes", "force", "never", "never"), False, "never", "transfer never"),
        (("force", None, None, "never"), False, "never", "transfer never"),
        (("never", None, None, "force"), False, "never", "route never"),
        (("yes", "dontcare", "dontcare", None), True, "yes", "route yes"),
        (("no", "dontcare", None, "dontcare"), False, "no", "route no"),
        (("no", None, "yes", "no"), False, "no", "transfer no"),
        (("yes", None, None, "never"), False, "never", "transfer never"),
        (("no", None, None, "force"), True, "force", "transfer force"),
        ((None, "dontcare", None, None), True, "yes", "default"),
        ((None, None, None, None), True, "yes", "default"),
    ],
)
def test_points_in_order_and_locking(
    actions: tuple[Action | None, ...], record: bool, action: str, by: str
) -> None:
    points: tuple[Point, ...] = ("route", "department", "extension", "transfer")
    rules = [at_point(p, a) for p, a in zip(points, actions, strict=True) if a is not None]
    d = decide(WITH_TRANSFER, policy(*rules), NOW)
    assert (d.record, d.action) == (record, action)
    assert d.decided_by == ((f"rule '{by}'",) if by != "default" else ("default",))
    assert d.locked == (action in ("force", "never") and by != "default")


def test_default_action_is_configurable() -> None:
    d = decide(INBOUND, policy(default_action="no", retention="short"), NOW)
    assert (d.record, d.action, d.decided_by, d.retention) == (False, "no", ("default",), "short")


def test_first_matching_rule_of_a_point_wins_and_others_are_not_consulted() -> None:
    rules = (
        Rule("other trunk", "route", "never", Match(trunks=frozenset({"fax"}))),
        Rule("main trunk", "route", "no", Match(trunks=frozenset({"main"}))),
        Rule("everything", "route", "force"),
    )
    d = decide(INBOUND, policy(*rules), NOW)
    assert (d.action, d.decided_by) == ("no", ("rule 'main trunk'",))
    assert [s.rule for s in d.steps] == ["main trunk", None, None]  # department, extension


def test_steps_say_what_each_point_did() -> None:
    rules = (at_point("route", "yes"), at_point("department", "force"), at_point("extension", "no"))
    d = decide(INBOUND, policy(*rules), NOW)
    assert [(s.point, s.subject, s.result) for s in d.steps] == [
        ("route", "inbound from +12125550100 to 210 DID +14155550100 trunk main", "yes"),
        ("department", "department Litigation", "force"),
        ("extension", "extension 210", "force"),
    ]
    assert "cannot be overridden" in d.steps[2].effect


@pytest.mark.parametrize(
    ("match", "matches"),
    [
        (Match(directions=frozenset({"outbound"})), False),
        (Match(directions=frozenset({"inbound"}), trunks=frozenset({"main"})), True),
        (Match(dids=(NumberPattern(prefix="+1415"),)), True),
        (Match(callers=(NumberPattern(prefix="+1212"),)), True),
        (Match(callers=(NumberPattern(regex=re.compile(r"^\+44")),)), False),
        (Match(callers=(NumberPattern(withheld=True),)), False),
        (Match(callees=(NumberPattern(regex=re.compile(r"^21\d$")),)), True),
        (Match(callers=(NumberPattern(prefix="+1212"),), trunks=frozenset({"fax"})), False),
    ],
)
def test_route_match_fields(match: Match, matches: bool) -> None:
    d = decide(INBOUND, policy(Rule("r", "route", "never", match)), NOW)
    assert (d.decided_by == ("rule 'r'",)) is matches


def test_transfer_rules_see_the_target_not_the_original_extension() -> None:
    to_litigation = Rule(
        "to lit", "transfer", "never", Match(departments=frozenset({"Litigation"}))
    )
    facts = CallFacts("inbound", "+12125550100", "210", joins=(Join("201"),))
    assert decide(facts, policy(to_litigation), NOW).record  # 201 is Intake
    facts = CallFacts("inbound", "+12125550100", "201", joins=(Join("210"),))
    assert not decide(facts, policy(to_litigation), NOW).record
    forward = Rule("fwd", "transfer", "no", Match(vias=frozenset({"forward"})))
    assert decide(facts, policy(forward), NOW).record
    facts = CallFacts("inbound", "+12125550100", "201", joins=(Join("+13125550100", "forward"),))
    assert not decide(facts, policy(forward), NOW).record


def test_outbound_extension_is_the_caller() -> None:
    rule = Rule("intake", "extension", "never", Match(extensions=(NumberPattern(prefix="201"),)))
    facts = CallFacts("outbound", "201", "914155550100")
    d = decide(facts, policy(rule), NOW)
    assert (d.record, d.steps[-1].subject) == (False, "extension 201")


def test_do_not_record_wins_over_force_and_keeps_its_retention() -> None:
    dnr = DoNotRecord("Court", (NumberPattern(prefix="+1213555"),), retention="meta-only")
    for facts in (
        CallFacts("inbound", "+12135550150", "210"),
        CallFacts("outbound", "210", "9 213 555 0150"),
        CallFacts("inbound", "+12125550100", "210", did="+12135550100"),
        CallFacts("inbound", "+12125550100", "210", joins=(Join("+12135550199"),)),
    ):
        d = decide(facts, policy(at_point("route", "force"), do_not_record=(dnr,)), NOW)
        assert (d.record, d.action, d.do_not_record) == (False, "force", "Court"), facts
        assert (d.decided_by, d.retention) == (("do_not_record 'Court'",), "meta-only")


def test_do_not_record_can_list_withheld_callers() -> None:
    dnr = DoNotRecord("Anonymous", (NumberPattern(withheld=True),))
    for caller in (None, "", "anonymous"):
        d = decide(CallFacts("inbound", caller, "210"), policy(do_not_record=(dnr,)), NOW)
        assert (d.record, d.do_not_record) == (False, "Anonymous"), caller
    d = decide(CallFacts("inbound", "+12125550100", "210"), policy(do_not_record=(dnr,)), NOW)
    assert d.record


@pytest.mark.parametrize(
    ("action", "opt_out", "then", "route_to"),
    [
        ("yes", OptOut(then="continue"), "continue", None),
        ("yes", OptOut(then="route", route_to="optout,s,1"), "route", "optout,s,1"),
        ("force", OptOut(when_forced="end"), "end", None),
        ("force", OptOut(when_forced="route", route_to="x,s,1"), "route", "x,s,1"),
        ("force", OptOut(when_forced="continue"), "continue", None),
    ],
)
def test_opt_out_wins_over_everything_but_keeps_the_action(
    action: Action, opt_out: OptOut, then: str, route_to: str | None
) -> None:
    facts = CallFacts("inbound", "+12125550100", "210", opted_out=frozenset({"caller"}))
    d = decide(facts, policy(at_point("route", action), opt_out=opt_out), NOW)
    assert (d.record, d.action, d.opted_out, d.then, d.route_to) == (
        False,
        action,
        ("caller",),
        then,
        route_to,
    )
    assert d.decided_by[-1] == "opt-out"


def test_refusing_a_call_that_is_not_recorded_changes_nothing() -> None:
    facts = CallFacts("inbound", "+12125550100", "210", opted_out=frozenset({"caller"}))
    d = decide(facts, policy(at_point("route", "no")), NOW)
    assert (d.record, d.then, d.opted_out, d.decided_by) == (False, None, (), ("rule 'route no'",))


def test_opt_out_of_a_party_not_yet_on_the_call_does_not_count() -> None:
    facts = CallFacts("inbound", "+12125550100", "210", opted_out=frozenset({"target1"}))
    assert decide(facts, policy(), NOW).record


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(INBOUND, policy(), datetime(2026, 11, 25, 10, 0))


LA = "America/Los_Angeles"
WEEKDAYS = frozenset(range(5))


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        (TimeWindow(WEEKDAYS, time(8), time(18), LA), "2026-11-25 08:00", True),
        (TimeWindow(WEEKDAYS, time(8), time(18), LA), "2026-11-25 18:00", False),
        (TimeWindow(WEEKDAYS, time(8), time(18), LA), "2026-11-28 10:00", False),  # Saturday
        (TimeWindow(WEEKDAYS, time(22), time(6), LA), "2026-11-25 22:00", True),
        (TimeWindow(WEEKDAYS, time(22), time(6), LA), "2026-11-28 05:59", True),  # Fri night
        (TimeWindow(WEEKDAYS, time(22), time(6), LA), "2026-11-28 22:00", False),  # Sat
        (TimeWindow(WEEKDAYS, time(22), time(6), LA), "2026-11-30 01:00", False),  # Sun night
        (TimeWindow(frozenset({6}), time(0), None, LA), "2026-11-29 23:59", True),  # to 24:00
        (TimeWindow(frozenset({6}), time(0), None, LA), "2026-11-30 00:00", False),
        (TimeWindow(WEEKDAYS, time(9), time(17), "America/New_York"), "2026-11-25 06:30", True),
        (TimeWindow(WEEKDAYS, time(9), time(17), "America/New_York"), "2026-11-25 14:30", False),
        # Spring forward: 2026-03-08 02:00 does not exist in Los Angeles.
        (TimeWindow(frozenset({6}), time(1), time(4), LA), "2026-03-08 03:30", True),
    ],
)
def test_time_windows(window: TimeWindow, local: str, inside: bool) -> None:
    now = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(LA))
    assert in_window(window, now) is inside
