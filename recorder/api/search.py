"""Call search: the query string parsed into a SearchQuery, and the SQL built from it.

Both are pure (no I/O), so the SQL a search runs can be read and tested as data. The SQL is
keyset-paginated on (started_at, call_id), newest first by default, and always carries the
caller's scope (scope.call_scope).

Phone numbers, "matched on the normalised form": input that normalises to a valid E.164 number
(any common format: "+1 415 555 0100", "(415) 555-0100", "0044 20 7946 0958") matches
caller_e164/callee_e164 exactly, on their btree indexes; anything else with at least 3 digits is
a partial number matched as a substring of the digits of every number on the call
(calls.number_digits). A page of a partial number with 4 or more digits tests the newest 3,000
calls, then the weeks newest first, in batches twice as long each time, on migration 0015's
index of (4-digit run, week) keys, stopping at a full page; one extension's walks that
extension's calls (their index carries the digits); 3 digits (common: the walk of
calls_started_idx finds a page soon), counts and sort=length use the trigram index.
docs/search.md has what each kind of search walks.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final

from recorder.api import params as p
from recorder.api.auth import Principal
from recorder.api.errors import invalid
from recorder.api.scope import Params, call_scope, seen_linked
from recorder.common.direction import DIRECTIONS
from recorder.common.numbers import digits, normalise
from recorder.db.rows import OUTCOMES

ORDERS: Final = ("desc", "asc")
SORTS: Final = ("started", "length")  # newest/oldest first, or longest/shortest first
COUNT_CAP: Final = 1000  # counted exactly up to this many matches; past it, "more than"
MAX_DURATION_S: Final = 7 * 24 * 3600
MIN_PARTIAL_DIGITS: Final = 3  # fewer match nearly every call, and trigrams need 3
RUN: Final = 4  # calls_run_keys (migration 0015) indexes each run of 4 digits per week
WEEKS: Final = 100_000  # its keys: run * WEEKS + week (weeks since 1970 stay below it)
WINDOW: Final = 3_000  # newest calls a partial number's search tests before the weeks' index
PARAMETERS: Final = (
    "from", "to", "extension", "number", "department", "direction", "outcome",
    "min_duration", "max_duration", "tag", "case", "order", "sort", "limit", "cursor",
)  # fmt: skip
# A call id, as the daemon makes them (time plus hash) or as a fallback import names them.
_CALL_ID: Final = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}"
# Digits and the punctuation people write numbers with; anything else (letters, quotes, %, _,
# semicolons) is refused rather than quietly dropped.
_NUMBER_CHARS = re.compile(r"^[0-9+()./ \-]{1,40}$")
_EXTENSION = r"[A-Za-z0-9_.+*#-]{1,32}"

_INT4_MAX: Final = 2**31 - 1

CALL_COLUMNS: Final = (
    "call_id", "asterisk_id", "direction", "caller_number", "caller_e164", "callee_number",
    "callee_e164", "extension", "department", "started_at", "answered_at", "ended_at",
    "duration_s", "outcome", "status", "fallback", "linked_calls",
)  # fmt: skip


@dataclass(frozen=True)
class NumberFilter:
    given: str
    e164: str | None  # a full number: exact match
    digits: str  # otherwise: substring of the call's number digits


@dataclass(frozen=True)
class SearchQuery:
    start: datetime | None = None  # started_at >= start
    stop: datetime | None = None  # started_at < stop
    extension: str | None = None
    number: NumberFilter | None = None
    department: str | None = None
    direction: str | None = None
    outcome: str | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    tag: str | None = None
    case: str | None = None  # a call id: that call and the calls linked to it (one case)
    order: str = "desc"
    limit: int = p.DEFAULT_LIMIT
    # the cursor: the last row of the previous page, (started_at, call_id), or for
    # sort=length (its length in seconds or -1, call_id)
    after: tuple[Any, str] | None = None
    sort: str = "started"

    def filters(self) -> dict[str, Any]:
        """What was asked, for the access log (no cursor/limit noise)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key in ("limit", "after", "order", "sort") or value is None:
                continue
            if key == "number":
                value = value["given"]
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out


def parse_number(raw: str | None, region: str) -> NumberFilter | None:
    if raw is None:
        return None
    if not _NUMBER_CHARS.fullmatch(raw):
        raise invalid(
            "number", "may only hold digits, spaces and + ( ) - . / (at most 40)", raw
        )
    found = digits(raw)
    if len(found) < MIN_PARTIAL_DIGITS:
        raise invalid("number", f"needs at least {MIN_PARTIAL_DIGITS} digits", raw)
    return NumberFilter(raw, normalise(raw, default_region=region), found)


def parse_search(query: p.Query, region: str) -> SearchQuery:
    p.reject_unknown(query, PARAMETERS)
    start, stop = p.date_range(query)
    low = p.integer(query, "min_duration", 0, MAX_DURATION_S)
    high = p.integer(query, "max_duration", 0, MAX_DURATION_S)
    if low is not None and high is not None and high < low:
        raise invalid("max_duration", "must be at least min_duration", high)
    sort = p.choice(query, "sort", SORTS) or "started"
    cursor = p.decode_cursor(query, (datetime, str) if sort == "started" else (int, str))
    if cursor is not None and sort == "length" and not -1 <= cursor[0] <= _INT4_MAX:
        # a length is an integer column (-1: none): a bigint would fail in the query
        raise invalid("cursor", "is not a cursor this API handed out", p.single(query, "cursor"))
    return SearchQuery(
        start=start,
        stop=stop,
        extension=p.text(query, "extension", 32, _EXTENSION),
        number=parse_number(p.single(query, "number"), region),
        department=p.text(query, "department"),
        direction=p.choice(query, "direction", DIRECTIONS),
        outcome=p.choice(query, "outcome", OUTCOMES),
        min_duration_s=low,
        max_duration_s=high,
        tag=p.text(query, "tag"),
        case=p.text(query, "case", 128, _CALL_ID),
        order=p.choice(query, "order", ORDERS) or "desc",
        sort=sort,
        limit=p.limit(query),
        after=None if cursor is None else (cursor[0], cursor[1]),
    )


def _where(principal: Principal, q: SearchQuery, args: Params) -> list[str]:
    """The search's conditions on `c` (calls), scope first; no cursor."""
    return [call_scope(principal, args), *_span(q, args), *_filters(q, args)]


def _span(q: SearchQuery, args: Params) -> list[str]:
    """The date range's conditions on `c`."""
    span = []
    if q.start is not None:
        span.append(f"c.started_at >= {args.add(q.start)}")
    if q.stop is not None:
        span.append(f"c.started_at < {args.add(q.stop)}")
    return span


def _filters(q: SearchQuery, args: Params) -> list[str]:
    """The conditions on `c` other than the scope and the date range."""
    where = []
    for column, value in (
        ("extension", q.extension),
        ("department", q.department),
        ("direction", q.direction),
        ("outcome", q.outcome),
    ):
        if value is not None:
            where.append(f"c.{column} = {args.add(value)}")
    if q.number is not None and q.number.e164 is not None:
        n = args.add(q.number.e164)
        where.append(f"(c.caller_e164 = {n} OR c.callee_e164 = {n})")
    elif q.number is not None:
        # Digits only (checked in parse_number), so no LIKE wildcard can come from the input.
        where.append(f"c.number_digits LIKE {args.add('%' + q.number.digits + '%')}")
    if q.min_duration_s is not None:
        where.append(f"c.duration_s >= {args.add(q.min_duration_s)}")
    if q.max_duration_s is not None:
        where.append(f"c.duration_s <= {args.add(q.max_duration_s)}")
    if q.tag is not None:
        tag = args.add(q.tag)
        exists = f"SELECT 1 FROM call_tags t WHERE t.call_id = c.call_id AND t.tag = {tag}"  # noqa: S608
        where.append(f"EXISTS ({exists})")
    if q.case is not None:
        case = args.add(q.case)
        where.append(f"(c.call_id = {case} OR {case} = ANY(c.linked_calls))")
    return where


def digit_runs(digits: str) -> list[int]:
    """Runs of RUN digits that every call containing `digits` holds: every RUN-th one and the
    last, which together cover it. Each is a posting list per week a batch reads (at 10 M calls,
    all 4 runs of 7 digits made the probes twice as slow, for no fewer rows)."""
    starts = {*range(0, len(digits) - RUN + 1, RUN), len(digits) - RUN}
    return sorted({int(digits[i : i + RUN]) for i in starts})


def _partial_page(
    q: SearchQuery, number: str, rest: str, span: list[str], cols: str, args: Params
) -> tuple[str, str]:
    """A partial number's page of calls, newest (oldest) first, and the CTEs it needs.

    `rest` is the search's conditions but the date range and cursor (`span`) and the digits.
    First the newest WINDOW calls of the span, walked on calls_started_idx (it carries
    number_digits, 0013; index-only where the visibility map is current): a number many calls
    have (a frequent client's) fills the page there. Past them, on calls_run_keys_idx (0015) in
    batches of weeks growing twice as long (1, 2, 4, ... weeks from the window's last call):
    one GIN scan a batch, for the calls holding every run of the digits in one of its weeks
    (a call's keys all carry its own week), then those rows tested; the outer LIMIT stops at a
    full page. A common number fills it in the first week or two; a rare one costs ~8 scans
    for two years, reading a few of the index's pages (a run's weeks are side by side).
    """
    desc = q.order == "desc"
    direction, behind, back = ("DESC", "<", "ASC") if desc else ("ASC", ">", "DESC")
    order = f"ORDER BY c.started_at {direction}, c.call_id {direction}"
    limit = f"LIMIT {int(q.limit) + 1}"
    within = " AND ".join(span or ["true"])
    # One walk of the newest WINDOW calls; the edge is the last of them, when there were that
    # many (else the window held every call of the span, and no week is walked).
    recent = (f"recent AS MATERIALIZED (SELECT c.call_id, c.started_at, c.number_digits "  # noqa: S608
              f"FROM calls c WHERE {within} {order} LIMIT {WINDOW}), "
              f"edge AS MATERIALIZED (SELECT r.started_at AS at, r.call_id AS id FROM recent r "
              f"WHERE (SELECT count(*) FROM recent) = {WINDOW} "
              f"ORDER BY r.started_at {back}, r.call_id {back} LIMIT 1)")  # fmt: skip
    digits = args.add(number)
    first = (f"SELECT {cols} FROM recent r JOIN calls c USING (call_id) "  # noqa: S608
             f"WHERE strpos(r.number_digits, {digits}) > 0 AND {rest} "
             f"ORDER BY r.started_at {direction}, r.call_id {direction} {limit}")  # fmt: skip
    # Batch k: the weeks 2^k - 1 to 2^(k+1) - 2 away from the edge's, up to the range's other
    # end (or the oldest/newest call's).
    bound, towards, sign, clamp = ("min", q.start, "-", "greatest") if desc else (
        "max", q.stop, "+", "least")  # fmt: skip
    end = f"(SELECT {bound}(started_at) FROM calls)"  # noqa: S608
    if towards is not None:
        end = f"{clamp}({args.add(towards)}, {end})"
    near, far = f"x.e {sign} ((1 << k) - 1)", f"{clamp}(x.e {sign} ((2 << k) - 2), x.f)"
    lo, hi = (far, near) if desc else (near, far)
    weeks = "x.e - x.f" if desc else "x.f - x.e"  # from the edge's to the end's
    bounds = (f"SELECT {lo} AS lo, {hi} AS hi FROM (SELECT calls_week((SELECT at FROM edge)) "  # noqa: S608
              f"AS e, calls_week({end}) AS f) x, generate_series(0, 20) k "
              f"WHERE (1 << k) - 1 <= {weeks} ORDER BY k")  # fmt: skip
    runs = [args.add(run * WEEKS) for run in digit_runs(number)]
    keys = ", ".join(f"(SELECT array_agg({run} + w) FROM generate_series(s.lo, s.hi) w) "  # noqa: S608
                     f"AS k{i}" for i, run in enumerate(runs))  # fmt: skip
    # OFFSET 0: each batch's arrays are values the GIN scan is given; flattened into it, the
    # planner evaluated them as an InitPlan below a parallel Gather (10 M calls: 4 digits p50
    # 3.5 -> 31 ms, the workers' start-up)
    batches = f"SELECT {keys} FROM ({bounds}) s OFFSET 0"  # noqa: S608
    holds = " AND ".join(f"calls_run_keys(c.number_digits, c.started_at) && b.k{i}"
                         for i in range(len(runs)))  # fmt: skip
    # OFFSET 0 keeps each batch's candidates a plan of their own: the GIN index alone (no walk
    # of calls_started_idx for the ORDER BY, testing every call's keys, as the planner picks
    # for want of an estimate of a batch's keys; no AND with an index of a scope read whole
    # each time); the conditions then test those few rows, which become the page's.
    found = f"SELECT * FROM calls c WHERE {holds} OFFSET 0"  # noqa: S608
    batch = (f"SELECT {cols} FROM ({found}) c WHERE {rest} AND {within} "  # noqa: S608
             f"AND strpos(c.number_digits, {digits}) > 0 "
             f"AND (c.started_at, c.call_id) {behind} (SELECT at, id FROM edge) "
             f"{order} {limit}")  # fmt: skip
    older = f"SELECT p.* FROM ({batches}) b CROSS JOIN LATERAL ({batch}) p"  # noqa: S608
    # No ORDER BY over the two (it would read every batch): a serial Append gives the window's
    # rows, then each batch's in order, and the API's pool allows no parallel plan (server.py).
    return f"SELECT * FROM (({first}) UNION ALL ({older})) page {limit}", recent  # noqa: S608


def count_sql(principal: Principal, q: SearchQuery, cap: int = COUNT_CAP) -> tuple[str, list[Any]]:
    """How many calls match, counted up to cap + 1 (more is "more than cap": a count of
    millions would read every match)."""
    args = Params()
    where = _where(principal, q, args)
    sql = (f"SELECT count(*) FROM (SELECT 1 FROM calls c WHERE {' AND '.join(where)} "  # noqa: S608
           f"LIMIT {int(cap) + 1}) found")  # fmt: skip
    return sql, args.values


def search_sql(principal: Principal, q: SearchQuery) -> tuple[str, list[Any]]:
    """One page (limit + 1 rows: the extra one says whether there is a next page), with each
    call's filed-recording count and length and its tags."""
    args = Params()
    full = q.number.e164 if q.number is not None and q.sort == "started" else None
    # A partial number of RUN digits or more, newest (oldest) first: by weeks (_partial_page),
    # or for one extension (a staff member's scope, or asked) along its calls.
    partial = (q.number is not None and full is None and q.sort == "started"
               and len(q.number.digits) >= RUN)  # fmt: skip
    by_weeks = partial and q.extension is None and principal.role != "staff"
    scope = call_scope(principal, args)
    span = _span(q, args)  # and the cursor, below: what bounds a walk of calls_started_idx
    filters = _filters(q if full is None and not partial else replace(q, number=None), args)
    if partial and not by_weeks and q.number is not None:
        # strpos, not LIKE: the same test, but one the planner cannot answer with the trigram
        # index (10 M calls: its scan alone took 35 ms for 7 digits) and AND in
        filters.append(f"strpos(c.number_digits, {args.add(q.number.digits)}) > 0")
    direction, cmp = ("DESC", "<") if q.order == "desc" else ("ASC", ">")
    # sort=length: by length (a call without one, -1, sorts as the shortest), ties by call_id
    key = "c.started_at" if q.sort == "started" else "coalesce(c.duration_s, -1)"
    if q.after is not None:
        at, call_id = args.add(q.after[0]), args.add(q.after[1])
        # The plain bound on the key lets a (x, started_at) index range-scan; the row
        # comparison then breaks ties between calls of the same instant.
        span.append(f"{key} {cmp}= {at}")
        span.append(f"({key}, c.call_id) {cmp} ({at}, {call_id})")
    cols = ", ".join(f"c.{col}" for col in CALL_COLUMNS)
    outer = "page.started_at" if q.sort == "started" else "coalesce(page.duration_s, -1)"
    # Identifiers and keywords are ours; every value went through `args`. LIMIT is an int.
    limit = f"ORDER BY {key} {direction}, c.call_id {direction} LIMIT {int(q.limit) + 1}"
    conds = " AND ".join([scope, *span, *filters])
    matches = f"FROM calls c WHERE {conds} {limit}"
    ctes = ""
    if full is not None:
        # A full number: its calls as caller and as callee, each newest first on its own
        # (number, started_at) index, merged; an OR would read all of the number's calls (a
        # client's thousands) and sort them for one page. The indexes carry call_id and
        # department (0014), so an admin's or a manager's walks are index-only (the callee's
        # also the caller's number: a call to its own number is listed once); then only the
        # page's calls are read.
        n = args.add(full)
        caller = (f"SELECT c.started_at, c.call_id FROM calls c WHERE {conds} "  # noqa: S608
                  f"AND c.caller_e164 = {n} {limit}")  # fmt: skip
        callee = (f"SELECT c.started_at, c.call_id FROM calls c WHERE {conds} "  # noqa: S608
                  f"AND c.callee_e164 = {n} AND c.caller_e164 IS DISTINCT FROM {n} "
                  f"{limit}")  # fmt: skip
        ids = f"SELECT c.call_id FROM (({caller}) UNION ALL ({callee})) c {limit}"  # noqa: S608
        page = f"SELECT {cols} FROM ({ids}) ids JOIN calls c USING (call_id)"  # noqa: S608
    elif by_weeks and q.number is not None:
        page, recent = _partial_page(q, q.number.digits, " AND ".join([scope, *filters]), span,
                                     cols, args)  # fmt: skip
        ctes = f"{recent}, "
    elif q.sort == "started" and (q.number is not None or q.min_duration_s is not None):
        # The page's ids first, so the walk testing each call can be index-only; then only the
        # page's rows. A partial number: 3 digits newest first on calls_started_idx (it carries
        # them, 0013), one extension's calls on calls_extension_page_idx (0014). A least length
        # (few calls are long): calls_duration_page_idx, which carries call_id and the
        # scope's columns (0015), sorted by start.
        ids = f"SELECT c.call_id {matches}"
        page = f"SELECT {cols} FROM ({ids}) ids JOIN calls c USING (call_id)"  # noqa: S608
    else:
        page = f"SELECT {cols} {matches}"
    # the page's rows as the user may see them: its linked calls looked up for its rows alone
    shown = ", ".join(
        f"{seen_linked(principal, args, 'page.linked_calls')} AS linked_calls"
        if col == "linked_calls" else f"page.{col}" for col in CALL_COLUMNS)
    sql = (
        f"WITH {ctes}page AS ({page}) "  # noqa: S608
        f"SELECT {shown}, rec.recordings, rec.recorded_ms, tags.tags FROM page "
        "LEFT JOIN LATERAL (SELECT count(*) AS recordings, "
        "coalesce(sum(r.duration_ms), 0)::bigint AS recorded_ms FROM recordings r "
        "WHERE r.call_id = page.call_id AND r.status = 'filed') rec ON true "
        "LEFT JOIN LATERAL (SELECT coalesce(array_agg(t.tag ORDER BY t.tag), '{}') AS tags "
        "FROM call_tags t WHERE t.call_id = page.call_id) tags ON true "
        f"ORDER BY {outer} {direction}, page.call_id {direction}"
    )
    return sql, args.values
