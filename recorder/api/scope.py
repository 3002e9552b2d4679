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
