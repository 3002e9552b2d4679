"""Dialplan expressions: `$[...]` (main/ast_expr2.y) and GotoIf's condition (pbx_checkcondition).

Only what dialplans around Verbatim use: operands (double-quoted strings or bare words),
comparisons `= != < > <= >=` (numeric when both sides are integers, else string), `&` (the
left operand if both are true, else 0), `|` (the left one if true, else the right one) and
parentheses. A comparison gives "1" or "0".
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|!=|<=|>=|[=<>&|()]|[^\s"=<>&|!()]+|!)')
_COMPARE = ("=", "!=", "<", ">", "<=", ">=")


def is_true(value: str) -> bool:
    """pbx_checkcondition: empty is false, an integer is its value, any other text is true."""
    value = value.strip()
    if not value:
        return False
    try:
        return int(value) != 0
    except ValueError:
        return True


def evaluate(text: str) -> str:
    """The value of a `$[...]` expression (after variable substitution)."""
    tokens = _tokens(text)
    if not tokens:
        return ""
    value, rest = _or(tokens)
    if rest:
        raise ValueError(f"$[{text}]: unexpected {rest[0]!r}")
    return value


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"$[{text}]: cannot read {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _or(tokens: list[str]) -> tuple[str, list[str]]:
    left, rest = _and(tokens)
    while rest and rest[0] == "|":
        right, rest = _and(rest[1:])
        left = left if is_true(left) else right
    return left, rest


def _and(tokens: list[str]) -> tuple[str, list[str]]:
    left, rest = _compare(tokens)
    while rest and rest[0] == "&":
        right, rest = _compare(rest[1:])
        left = left if is_true(left) and is_true(right) else "0"
    return left, rest


def _compare(tokens: list[str]) -> tuple[str, list[str]]:
    left, rest = _operand(tokens)
    while rest and rest[0] in _COMPARE:
        op = rest[0]
        right, rest = _operand(rest[1:])
        left = "1" if _holds(left, op, right) else "0"
    return left, rest


def _operand(tokens: list[str]) -> tuple[str, list[str]]:
    if not tokens:
        raise ValueError("expression ends where an operand is expected")
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        value, rest = _or(rest)
        if not rest or rest[0] != ")":
            raise ValueError("unbalanced parentheses")
        return value, rest[1:]
    if head.startswith('"'):
        return re.sub(r"\\(.)", r"\1", head[1:-1]), rest
    return head, rest


def _holds(left: str, op: str, right: str) -> bool:
    try:
        a, b = int(left), int(right)
        diff = (a > b) - (a < b)
    except ValueError:
        diff = (left > right) - (left < right)
    return {"=": diff == 0, "!=": diff != 0, "<": diff < 0, ">": diff > 0, "<=": diff <= 0,
            ">=": diff >= 0}[op]
