"""Which calls a user may see, as a SQL condition: scoping happens in the query, never after.

Every query that reads calls, recordings or their files ANDs `call_scope(...)` into its WHERE
clause, so rows outside a user's scope are never read, counted or paginated over; a call out of
scope is indistinguishable from one that does not exist (404). The conditions match the leading
columns of calls_department_started_idx / calls_extension_page_idx (migrations 0001, 0014).
"""

from __future__ import annotations

from typing import Any

from recorder.api.auth import Principal


class Params:
    """Positional parameters ($1, $2, …) collected while a query is built; values never go
    into the SQL text."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def call_scope(principal: Principal, params: Params, alias: str = "c") -> str:
    """The condition on `alias` (a calls row) limiting it to what `principal` may see."""
    if principal.role == "admin":
        return "true"
    if principal.role == "manager" and principal.departments:
        return f"{alias}.department = ANY({params.add(list(principal.departments))}::text[])"
    if principal.role == "staff" and principal.extension:
        return f"{alias}.extension = {params.add(principal.extension)}"
    return "false"  # auditors, and anyone whose scope is empty: no calls


def seen_linked(principal: Principal, params: Params, linked: str) -> str:
    """The expression for a call's linked calls (`linked`: its linked_calls column, an
    attended transfer's) as far as the user may see them, as the call page shows them: the
    id of a call out of scope says that it exists, and when it began."""
    if principal.role == "admin":
        return linked
    seen = call_scope(principal, params, "o")
    # our identifiers; values are $n. NULL (no links) stays NULL, as an admin sees it.
    return (f"CASE WHEN {linked} IS NULL THEN NULL ELSE ARRAY("  # noqa: S608
            f"SELECT l FROM unnest({linked}) AS l WHERE EXISTS ("
            f"SELECT 1 FROM calls o WHERE o.call_id = l AND {seen})) END")


def call_columns(principal: Principal, params: Params, columns: tuple[str, ...],
                 alias: str = "c") -> str:
    """The select list of `columns` of `alias` for `principal`, linked calls as far as seen
    (`seen_linked`; for a few rows: it looks each linked call up)."""
    return ", ".join(
        f"{seen_linked(principal, params, f'{alias}.{col}')} AS {col}"
        if col == "linked_calls" else f"{alias}.{col}" for col in columns)
