"""Find the SQL in what a model wrote: plain SQL, fenced ```sql blocks, reasoning before the final query,
explanations after it, and semicolons inside string literals."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)
_START = re.compile(r"(?im)^[ \t>*-]*(?:(?:final\s+)?(?:sql|query|answer)\s*:\s*)?((?:WITH|SELECT)\b)")
_LABEL = re.compile(r"(?i)^\s*(?:final\s+)?(?:sql(?:\s+query)?|query|answer)\s*:\s*")
_PROSE_AFTER = re.compile(r"(?im)^\s*(?:this query|the query|explanation|note|here|it |i |this |the above)")


def extract_sql(text: str) -> str:
    """The query in `text` (without a trailing semicolon), or "" when there is none."""
    if not text:
        return ""
    fenced = [b.strip() for b in _FENCE.findall(text) if b.strip()]
    if fenced:
        text = fenced[-1]  # models that reason first put the final answer last
    else:
        starts = [m.start(1) for m in _START.finditer(text)]
        if starts:
            text = text[starts[-1]:]
        else:
            text = _LABEL.sub("", text.strip())
            if not re.match(r"(?i)\s*(WITH|SELECT)\b", text):
                return ""
    return _first_statement(text)


def _first_statement(text: str) -> str:
    """Up to the first semicolon outside quotes, or to where prose starts again."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            return text[:i].strip()
    # No semicolon: stop at a blank line or at a line that reads as an explanation.
    text = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    lines = text.splitlines()
    for n, line in enumerate(lines[1:], start=1):
        if _PROSE_AFTER.match(line):
            lines = lines[:n]
            break
    return "\n".join(lines).strip()
