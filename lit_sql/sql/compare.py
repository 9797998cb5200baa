"""Do two query results mean the same answer? Two modes, named in every report:

- testsuite: rows compared as a bag (duplicates count); row order matters only when the gold query sorts at
  its top level (ORDER BY); the prediction's columns may come in another order.
- bird: rows compared as a set, columns in the same order (as BIRD's evaluation does).

In both, numbers compare by value (1 == 1.0; floats to 10 significant digits, so 0.1 + 0.2 == 0.3) and NULL
equals NULL. Text never equals a number: the string '1' is not the integer 1 (a query that returns the wrong
type gives a different answer).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Any, Optional

MODES = ("testsuite", "bird")
MAX_PERMUTATIONS = 5_000


def canonical(value: Any) -> tuple:
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        f = float(value)
        return ("num", float(f"{f:.10g}") if math.isfinite(f) else f)
    if isinstance(value, bytes):
        return ("blob", value)
    return ("text", str(value))


def _rows(result) -> list[tuple]:
    return [tuple(canonical(v) for v in row) for row in result.rows]


def has_top_level_order_by(sql: str) -> bool:
    """Whether the outermost query sorts (an ORDER BY inside a subquery or a string does not count)."""
    try:
        import sqlglot

        tree = sqlglot.parse_one(sql, read="sqlite")
        return tree is not None and tree.args.get("order") is not None
    except Exception:
        pass
    text = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", sql)
    depth, flat = 0, []
    for ch in text:
        depth += ch == "("
        if depth == 0:
            flat.append(ch)
        depth -= ch == ")"
    return re.search(r"\border\s+by\b", "".join(flat), re.IGNORECASE) is not None


def results_match(gold, pred, mode: str = "testsuite", gold_sql: str = "") -> bool:
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}; use one of {MODES}")
    if not gold.ok or not pred.ok:
        return False
    g, p = _rows(gold), _rows(pred)
    if mode == "bird":
        return set(g) == set(p)
    if len(g) != len(p):
        return False
    if not g:
        return True
    if len(g[0]) != len(p[0]):
        return False
    ordered = has_top_level_order_by(gold_sql)
    for perm in _column_permutations(g, p):
        q = [tuple(row[i] for i in perm) for row in p]
        if (q == g) if ordered else (Counter(q) == Counter(g)):
            return True
    return False


def _column_permutations(g: list[tuple], p: list[tuple]):
    """Orders of the prediction's columns worth trying: each gold column may only take a prediction column
    holding the same multiset of values (which prunes almost everything)."""
    n = len(g[0])
    gold_cols = [Counter(row[j] for row in g) for j in range(n)]
    pred_cols = [Counter(row[j] for row in p) for j in range(n)]
    candidates = [[i for i in range(n) if pred_cols[i] == gold_cols[j]] for j in range(n)]
    if any(not c for c in candidates):
        return
    tried = 0
    for perm in itertools.product(*candidates):
        if len(set(perm)) == n:
            yield perm
            tried += 1
            if tried >= MAX_PERMUTATIONS:
                return


def comparable(gold) -> Optional[str]:
    """Why an example cannot be scored (its gold query fails), or None."""
    return None if gold.ok else f"gold query failed: {gold.error}"
