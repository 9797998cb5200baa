"""The little lexing that extraction, schemas, database building and the ORDER BY check share: where SQL
statements end (the one statement splitter), which characters sit inside string literals, quoted identifiers
or comments, and how a name is written into a query the code builds."""

from __future__ import annotations

import re
import sqlite3
from typing import Iterator

_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier, for every query the code builds from a database's names (PRAGMA
    table_info, SELECT ... FROM): quoting always, rather than when a name looks unusual, means no keyword
    (`transaction`, `order`) or odd character can break one."""
    return '"' + name.replace('"', '""') + '"'


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


def statement_ends(sql: str) -> Iterator[int]:
    """The index of each semicolon that ends a statement of `sql`: one outside literals, quoted names and comments,
    and not inside the body of a CREATE TRIGGER (BEGIN ... END holds semicolons of its own; SQLite's own
    `complete_statement` tells when the statement so far is whole)."""
    masked, start = mask_literals(sql, fill="x"), 0
    i = masked.find(";")
    while i >= 0:
        if sqlite3.complete_statement(sql[start:i + 1]):
            yield i
            start = i + 1
        i = masked.find(";", i + 1)


def split_statements(sql: str) -> list[str]:
    """The statements of a script, without their semicolons, stripped (see `statement_ends`). The last one need
    not end with a semicolon; pieces with nothing but spaces and comments are dropped."""
    statements, start = [], 0
    for end in statement_ends(sql):
        statements.append(sql[start:end])
        start = end + 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(sql: str) -> bool:
    """Whether `sql` holds more than spaces and comments (a literal or a quoted name counts)."""
    return any(not sql[a:b].isspace() if code else sql[a] in _QUOTES for a, b, code in code_spans(sql))


def squeeze_spaces(sql: str) -> str:
    """`sql` with each run of whitespace outside literals, quoted names and comments made one space."""
    return "".join(re.sub(r"\s+", " ", sql[a:b]) if code else sql[a:b] for a, b, code in code_spans(sql))
