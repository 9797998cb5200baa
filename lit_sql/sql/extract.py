"""Find the SQL in what a model wrote.

The rule: the answer is the LAST query the model wrote, because models that reason write their final query
last. That is the last fenced block that holds SQL (```sql, ```sqlite or an unlabelled fence) if there is
one; otherwise the last query that starts a line or follows a label ("SQL:", "Answer:", "...is:"). The query
runs to the end of its statement (`lexer.statement_ends`), or, without one, to where prose resumes (a blank
line, or a line that reads as a sentence). Returns "" when nothing looks like SQL, never a guess from prose.
"""

from __future__ import annotations

import re

from lit_sql.sql.lexer import statement_ends

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n`]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_SQL_FENCE_LANGUAGES = {"", "sql", "sqlite", "mysql", "postgresql", "postgres", "tsql", "plsql"}
# SELECT/WITH in upper or lower case: "Select the rows..." and "With this in mind..." are prose.
_KEYWORD = r"(?:SELECT|select|WITH|with)\b"
_LABEL = r"(?:(?:final\s+)?(?:sql(?:\s*query)?|query|answer)\s*:)"
# Where a query may start: at a line start (after list or quote marks), after a label, or after a colon.
_START = re.compile(rf"(?:^[ \t>*\-]*(?:(?i:{_LABEL})[ \t]*)?|(?i:{_LABEL})[ \t]*|:[ \t]+)({_KEYWORD})", re.MULTILINE)
_WITH_CTE = re.compile(r"(?i)with\s+(?:recursive\s+)?[\w\"`\[\]]+\s*(?:\([^)]*\))?\s+as\s*\(")
# A line that continues a query starts with a keyword, a name, a value or punctuation; one that starts with
# a capitalised word followed by a lower-case one ("This query...", "Note that...") is prose, as is a
# "Word:" heading or markdown emphasis/heading.
_PROSE_LINE = re.compile(r"^\s*(?:[A-Z][a-z]+,? [a-z]|[A-Za-z][\w ]*:\s|\*\*|#)")
_SQL_WORDS = {"select", "from", "where", "and", "or", "not", "group", "order", "having", "limit", "join",
              "inner", "left", "right", "outer", "cross", "natural", "on", "union", "intersect", "except",
              "with", "as", "case", "when", "then", "else", "end", "in", "between", "like", "is", "exists",
              "distinct", "all", "by", "offset", "using", "cast", "desc", "asc", "values", "count", "sum",
              "avg", "min", "max", "over", "partition", "window", "filter"}


def extract_sql(text: str) -> str:
    """The final query in `text`, without a trailing semicolon, or "" when there is none."""
    if not text or not text.strip():
        return ""
    blocks = [body for lang, body in _FENCE.findall(text) if lang.lower() in _SQL_FENCE_LANGUAGES]
    for body in reversed(blocks):  # the last block that holds a query
        query = _last_query(body) or _unlabelled(body)
        if query:
            return query
    return _last_query(text) or _unlabelled(text)


def _last_query(text: str) -> str:
    """The last query that starts at a line start or after a label, cut where it ends."""
    best, end_of_best = "", -1
    for match in _START.finditer(text):
        start = match.start(1)
        if start < end_of_best:
            continue  # a SELECT inside the query found before (a subquery on its own line)
        if match.group(1).lower() == "with" and not _WITH_CTE.match(text, start):
            continue  # "with" that does not open a common table expression
        query, length = _cut(text[start:])
        if query:
            best, end_of_best = query, start + length
    return best


def _unlabelled(text: str) -> str:
    """A query with a capitalised keyword ("Select name FROM t"), accepted only right after a label: without
    one, "Select the youngest singer..." is an instruction, not SQL."""
    label = re.match(rf"(?i)\s*{_LABEL}\s*(?=(?:select|with)\b)", text)
    return _cut(text[label.end():])[0] if label else ""


def _cut(text: str) -> tuple[str, int]:
    """The query at the start of `text` and how many characters of `text` it spans."""
    # A code fence is never part of a query: it ends one even when the fences around it are unbalanced
    # ("```\n...\n```sql\nSELECT ...\n```" pairs the second fence with the first).
    text = text.split("```", 1)[0]
    end = next(statement_ends(text), -1)
    if end >= 0:
        return text[:end].strip(), end + 1
    # No semicolon: stop at a blank line, or at the first line that reads as prose.
    block = re.split(r"\n[ \t]*\n", text, maxsplit=1)[0]
    lines = block.split("\n")
    kept = lines[:1]
    for line in lines[1:]:
        first_word = line.strip().split(" ", 1)[0].lower()
        if _PROSE_LINE.match(line) and first_word not in _SQL_WORDS:
            break
        kept.append(line)
    query = "\n".join(kept)
    return query.strip(), len(query)
