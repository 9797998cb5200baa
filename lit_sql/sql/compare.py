"""Do two query results give the same answer? Two modes, named in every report:

- testsuite: rows compared as a bag (duplicates count); row order matters only when the gold query sorts at
  its top level (ORDER BY); the prediction's columns may come in any order (a permutation of the gold's).
- bird: rows compared as a set (duplicates do not count, order never counts), columns in the same order.

Values, in both modes:
- NULL equals NULL.
- Numbers compare by value: the integer 1 equals the float 1.0, and floats are rounded to 10 significant
  digits first, so 0.1 + 0.2 equals 0.3 but 0.3 does not equal 0.31.
- Text never equals a number: the string '1' is not the integer 1. A query that returns the number as text
  (a column with the wrong affinity, a CAST, string concatenation) gives a different answer, as in the
  evaluators of Spider test-suite and BIRD, which compare Python values as SQLite returns them.
- Blobs equal blobs with the same bytes, never text.
- Results that hit the row cap (`truncated`) match only results that hit it too, on the rows fetched.
"""

from __future__ import annotations

import enum
import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any, Iterator, Literal, Optional, get_args

from lit_sql.sql.execute import ExecutionResult
from lit_sql.sql.lexer import mask_literals

# The comparison modes (module docstring): the type of every --mode flag, and the names that checks accept.
ComparisonMode = Literal["testsuite", "bird"]
MODES: tuple[str, ...] = get_args(ComparisonMode)
SIGNIFICANT_DIGITS = 10
MAX_PERMUTATIONS = 10_000  # column orders tried before giving up (only reached with many look-alike columns)
_NAN = ("nan",)  # SQLite turns NaN into NULL, but a Python function could still return one


class Verdict(str, enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"
    PRED_ERROR = "pred_error"  # the prediction failed or timed out: a mismatch, with a reason
    GOLD_ERROR = "gold_error"  # the gold query failed: the example cannot be scored at all


def canonical(value: Any) -> Any:
    """A hashable value that equals another exactly when the two mean the same answer (see module doc)."""
    if isinstance(value, float):
        if math.isnan(value):
            return _NAN
        # Integral floats become ints (exactly, before any rounding, so 12345678901.0 stays 12345678901): they
        # then hash and compare like the ints they equal. Other floats are rounded to SIGNIFICANT_DIGITS.
        if not value.is_integer() and math.isfinite(value):
            value = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if isinstance(value, bool):
        return int(value)
    return value  # int, str, bytes, None: Python's equality already keeps '1' != 1 and b'a' != 'a'


def _canonical_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(canonical(v) for v in row) for row in rows]


@lru_cache(maxsize=65_536)
def has_top_level_order_by(sql: str) -> bool:
    """Whether the outermost query sorts its result (ORDER BY inside a subquery, a CTE body or a string
    does not count). Uses sqlglot's parse where it succeeds, else a scan at parenthesis depth 0."""
    try:
        import sqlglot

        tree = sqlglot.parse_one(sql, read="sqlite")
        if tree is not None:
            return tree.args.get("order") is not None
    except Exception:  # sqlglot missing, or SQL it cannot parse: fall back to the scan
        pass
    depth, outer = 0, []
    for ch in mask_literals(sql):
        depth += ch == "("
        outer.append(ch if depth == 0 else " ")
        depth -= ch == ")"
    return re.search(r"\border\s+by\b", "".join(outer), re.IGNORECASE) is not None


def compare_results(gold: ExecutionResult, pred: ExecutionResult, mode: ComparisonMode = "testsuite",
                    gold_sql: str = "") -> Verdict:
    """The verdict on `pred` against `gold`; `gold_sql` is needed in testsuite mode to know whether row order
    matters."""
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}; use one of {MODES}")
    if not gold.ok:
        return Verdict.GOLD_ERROR
    if not pred.ok:
        return Verdict.PRED_ERROR
    if gold.truncated != pred.truncated:
        return Verdict.MISMATCH
    g, p = _canonical_rows(gold.rows or []), _canonical_rows(pred.rows or [])
    if mode == "bird":
        same = set(g) == set(p)
    else:
        same = _same_bag_up_to_column_order(g, p, ordered=bool(g) and has_top_level_order_by(gold_sql))
    return Verdict.MATCH if same else Verdict.MISMATCH


def results_match(gold: ExecutionResult, pred: ExecutionResult, mode: ComparisonMode = "testsuite",
                  gold_sql: str = "") -> bool:
    """Whether `pred` gives the gold answer (False also when either query failed)."""
    return compare_results(gold, pred, mode, gold_sql) is Verdict.MATCH


def comparable(gold: ExecutionResult) -> Optional[str]:
    """Why an example cannot be scored (its gold query failed), or None."""
    return None if gold.ok else f"gold query failed: {gold.error}"


def _same_bag_up_to_column_order(g: list[tuple], p: list[tuple], ordered: bool) -> bool:
    if len(g) != len(p):
        return False
    if not g:
        return True  # two empty results: nothing to tell them apart, whatever their columns
    width = len(g[0])
    if any(len(row) != width for row in p):
        return False
    gold_cols = list(zip(*g))
    pred_cols = list(zip(*p))
    if ordered:
        # Rows are paired by position, so each gold column must reappear verbatim as some prediction column:
        # comparing the two multisets of columns settles every permutation at once.
        return Counter(gold_cols) == Counter(pred_cols)
    gold_bag = Counter(g)
    for perm in _column_permutations(gold_cols, pred_cols):
        if Counter(tuple(row[i] for i in perm) for row in p) == gold_bag:
            return True
    return False


def _column_permutations(gold_cols: list[tuple], pred_cols: list[tuple]) -> Iterator[tuple[int, ...]]:
    """Prediction column orders worth trying against the gold columns.

    A gold column can only take a prediction column with the same multiset of values, which leaves one
    candidate per column in nearly every real result. Among prediction columns identical value for value,
    only the first unused one is tried, since swapping identical columns changes nothing."""
    gold_sets = [Counter(c) for c in gold_cols]
    pred_sets = [Counter(c) for c in pred_cols]
    candidates = [[i for i, ps in enumerate(pred_sets) if ps == gs] for gs in gold_sets]
    if any(not c for c in candidates):
        return
    earlier_twins = [[k for k in range(i) if pred_cols[k] == pred_cols[i]] for i in range(len(pred_cols))]
    used: list[int] = []
    tried = 0

    def assign(j: int) -> Iterator[tuple[int, ...]]:
        nonlocal tried
        if j == len(gold_cols):
            tried += 1
            yield tuple(used)
            return
        for i in candidates[j]:
            # Identical columns are taken in index order: any order of them gives the same rows.
            if i in used or any(k not in used for k in earlier_twins[i]):
                continue
            used.append(i)
            yield from assign(j + 1)
            used.pop()
            if tried >= MAX_PERMUTATIONS:
                return

    yield from assign(0)
