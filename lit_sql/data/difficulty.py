"""Difficulty labels (easy, medium, hard, extra) from the structure of a SQL query.

The thresholds follow the hardness levels described in the Spider paper (Yu et al., 2018): count the
"first-order" components (WHERE, GROUP BY, ORDER BY, LIMIT, joins, OR, LIKE), the nested components (subqueries
and set operations) and the "other" signs of size (several aggregates, several selected columns, several
conditions, several grouping keys). One labeller serves every source, so evaluation can compare them by level.
"""

from __future__ import annotations

from typing import Iterator, Optional

LEVELS = ("easy", "medium", "hard", "extra")


def _walk(node, root) -> Iterator:
    """Every node under `node` that belongs to the query `root` itself (nested SELECTs are not entered)."""
    from sqlglot import exp

    for child in node.iter_expressions():
        if child is not root and isinstance(child, (exp.Select, exp.Subquery, exp.SetOperation)):
            continue
        yield child
        yield from _walk(child, root)


def _count(node, root, kinds) -> int:
    return 0 if node is None else sum(isinstance(n, kinds) for n in [node, *_walk(node, root)])


def sql_difficulty(sql: str) -> Optional[str]:
    """The level of `sql`, or None when it is not a query that parses."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return None
    nested = 0
    while isinstance(tree, exp.SetOperation):  # UNION / INTERSECT / EXCEPT: judged on the first query
        nested += 1
        tree = tree.this
    if isinstance(tree, exp.Subquery):
        tree = tree.this
    if not isinstance(tree, exp.Select):  # not a query (an UPDATE, or words sqlglot read as an expression)
        return None
    nested += sum(isinstance(n, (exp.Select, exp.SetOperation)) for n in tree.walk() if n is not tree
                  and not isinstance(n.parent, exp.SetOperation))
    where, having, group = tree.args.get("where"), tree.args.get("having"), tree.args.get("group")
    conditions = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.In, exp.Between, exp.Is)
    first = sum(bool(tree.args.get(k)) for k in ("where", "group", "order", "limit"))
    first += len(tree.args.get("joins") or [])
    first += _count(where, tree, exp.Or) + _count(having, tree, exp.Or)
    first += _count(where, tree, exp.Like) + _count(having, tree, exp.Like)
    aggregates = sum(_count(tree.args.get(k), tree, exp.AggFunc) for k in ("where", "having", "order"))
    aggregates += sum(_count(e, tree, exp.AggFunc) for e in tree.expressions)
    others = (aggregates > 1) + (len(tree.expressions) > 1) + (_count(where, tree, conditions) > 1)
    others += bool(group) and len(group.expressions) > 1
    if first <= 1 and others == 0 and nested == 0:
        return "easy"
    if (others <= 2 and first <= 1 and nested == 0) or (first <= 2 and others < 2 and nested == 0):
        return "medium"
    if ((others > 2 and first <= 2 and nested == 0) or (2 < first <= 3 and others <= 2 and nested == 0)
            or (first <= 1 and others == 0 and nested <= 1)):
        return "hard"
    return "extra"
