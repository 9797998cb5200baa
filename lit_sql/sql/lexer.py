"""The little lexing that extraction, database building and the ORDER BY check share: where SQL statements end
and which characters sit inside string literals, quoted identifiers or comments."""

from __future__ import annotations

from typing import Iterator

_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def code_spans(sql: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_code) pieces of `sql`: is_code is False for literals, quoted names and comments.

    A doubled quote ('it''s') closes and reopens the literal, which leaves it a literal, so no special case is
    needed. An unclosed quote or comment runs to the end of the text (model output is often cut short)."""
    i, start, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in _QUOTES:
            end = sql.find(_QUOTES[ch], i + 1)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = -1 if end < 0 else end + 1
        else:
            i += 1
            continue
        if i > start:
            yield start, i, True
        stop = n if end < 0 else end + 1
        yield i, stop, False
        i = start = stop
    if start < n:
        yield start, n, True


def mask_literals(sql: str, fill: str = " ") -> str:
    """`sql` with every literal, quoted name and comment replaced by `fill` characters (same length, so
    positions still line up with the original)."""
    return "".join(sql[a:b] if code else fill * (b - a) for a, b, code in code_spans(sql))


def split_statements(sql: str) -> list[str]:
    """The statements of a script, split at semicolons outside literals and comments, stripped, empty ones
    dropped (the last statement need not end with a semicolon)."""
    masked = mask_literals(sql, fill="x")
    statements, start = [], 0
    for i, ch in enumerate(masked):
        if ch == ";":
            statements.append(sql[start:i])
            start = i + 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if s.strip()]


def first_semicolon(sql: str) -> int:
    """Index of the first semicolon outside literals and comments, or -1."""
    return mask_literals(sql, fill="x").find(";")
