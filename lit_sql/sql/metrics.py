"""Text-level metrics on SQL: does it parse, exact match after normalisation, BLEU and ROUGE-L on SQL tokens,
and the Spider hardness of a query."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Optional

import sqlglot
from sqlglot import exp

from lit_sql.sql.lexer import split_statements

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")
_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|\[[^\]]*\]?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\w+"
                    r"|<=|>=|<>|!=|==|\|\||[^\w\s]", re.IGNORECASE)


@lru_cache(maxsize=65_536)
def _parse(sql: str) -> Optional[exp.Expression]:
    """The one statement in `sql` as a sqlglot tree, or None (unparseable, empty or several statements)."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return None
    try:
        return sqlglot.parse_one(statements[0], read="sqlite")
    except Exception:  # sqlglot raises ParseError, TokenError and, on odd input, others
        return None


def parses(sql: str) -> bool:
    """Whether `sql` is one statement that sqlglot parses as SQLite."""
    return bool(sql and sql.strip()) and _parse(sql.strip()) is not None


def normalize(sql: str) -> str:
    """A canonical text of `sql`: sqlglot's rendering with keywords upper case, names lower case and unquoted
    where they need no quotes (SQLite names are case-insensitive), single spaces, no trailing semicolon.
    String literals keep their case. SQL that does not parse gets lower case and single spaces."""
    sql = (sql or "").strip().rstrip(";").strip()
    tree = _parse(sql) if sql else None
    if tree is None:
        return re.sub(r"\s+", " ", sql.lower())

    def plain_name(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier):
            name = node.name.lower()
            return exp.Identifier(this=name, quoted=not _SIMPLE_NAME.fullmatch(name))
        return node

    try:
        return tree.copy().transform(plain_name).sql(dialect="sqlite")
    except Exception:  # a tree sqlglot cannot render back: compare the text instead
        return re.sub(r"\s+", " ", sql.lower())


def exact_match(pred: str, gold: str) -> bool:
    """Whether the two queries are the same text after `normalize`."""
    return bool(pred and pred.strip()) and normalize(pred) == normalize(gold)


def sql_tokens(sql: str) -> list[str]:
    """SQL tokens: literals and quoted names whole (case kept), words and operators lower case."""
    return [t if t[0] in "'\"`[" else t.lower() for t in _TOKEN.findall(sql or "")]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(pred: str, gold: str, max_n: int = 4) -> float:
    """Sentence BLEU of `pred` against `gold` on SQL tokens, up to `max_n`-grams.

    Add-one smoothing for n > 1 (Lin and Och, 2004), so a short or partly right query does not score 0
    just because it shares no 4-gram; the unigram precision is not smoothed, so no overlap at all is 0."""
    p, g = sql_tokens(pred), sql_tokens(gold)
    if not p or not g:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        pred_ngrams, gold_ngrams = _ngrams(p, n), _ngrams(g, n)
        overlap = sum((pred_ngrams & gold_ngrams).values())  # clipped counts
        total = sum(pred_ngrams.values())
        if n > 1:
            overlap, total = overlap + 1, total + 1
        if overlap == 0:
            return 0.0
        log_precision += math.log(overlap / total) / max_n
    brevity_penalty = 1.0 if len(p) > len(g) else math.exp(1 - len(g) / len(p))
    return brevity_penalty * math.exp(log_precision)


def rouge_l(pred: str, gold: str) -> float:
    """ROUGE-L F1: the longest common subsequence of SQL tokens, as precision and recall, harmonic mean."""
    p, g = sql_tokens(pred), sql_tokens(gold)
    if not p or not g:
        return 0.0
    previous = [0] * (len(g) + 1)  # LCS lengths of p[:i] against every prefix of g, one row at a time
    for a in p:
        current = [0]
        for j, b in enumerate(g):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


# -------------------------------------------------------------------------------------------------------
# Spider hardness
# -------------------------------------------------------------------------------------------------------
def spider_hardness(sql: str) -> str:
    """"easy", "medium", "hard" or "extra" by the rules the Spider benchmark published, counted on sqlglot's
    tree; "unknown" when the query does not parse.

    Three counts on the outermost query (the left-most one of a set operation):
    - components: WHERE, GROUP BY, ORDER BY, LIMIT present, one per joined table, one per OR and per LIKE
      in the join, WHERE and HAVING conditions;
    - nesting: one per set operation (UNION/INTERSECT/EXCEPT), per subquery directly inside the query (in
      FROM, WHERE, HAVING or the select list) and per common table expression;
    - others: more than one aggregate, more than one selected column, more than one WHERE condition, more
      than one GROUP BY column (each adds one).
    """
    tree = _parse((sql or "").strip().rstrip(";"))
    if tree is None:
        return "unknown"
    ctes = _arg(tree, "with")
    nesting = len(ctes.expressions) if ctes is not None else 0
    query, outer = tree, tree
    while isinstance(query, (exp.SetOperation, exp.Subquery)):
        nesting += isinstance(query, exp.SetOperation)
        query = query.this
    if not isinstance(query, exp.Select):
        return "unknown"  # not a query (an INSERT, a PRAGMA...)

    where, having, group = _arg(query, "where"), _arg(query, "having"), _arg(query, "group")
    joins = _arg(query, "joins") or []
    # ORDER BY and LIMIT after a set operation belong to the whole query: count them as the outer query's.
    order = _arg(query, "order") or _arg(outer, "order")
    limit = _arg(query, "limit") or _arg(outer, "limit")
    conditions = [c for c in (where, having, *(j.args.get("on") for j in joins)) if c is not None]

    components = sum(x is not None for x in (where, group, order, limit)) + len(joins)
    components += sum(len(_own_nodes(c, exp.Or)) + len(_own_nodes(c, (exp.Like, exp.ILike))) for c in conditions)

    # Queries directly inside this one; common table expressions were counted above, whatever owns them.
    nesting += sum(1 for node in query.find_all(exp.Select, exp.SetOperation)
                   if node is not query and _owner(node) is query and node.find_ancestor(exp.CTE) is None)

    aggregates = sum(len(_own_nodes(part, exp.AggFunc))
                     for part in (*query.expressions, where, group, order, having) if part is not None)
    where_conditions = len(_predicates(where.this)) if where is not None else 0
    group_columns = len(group.expressions) if group is not None else 0
    others = sum((aggregates > 1, len(query.expressions) > 1, where_conditions > 1, group_columns > 1))

    if components <= 1 and others == 0 and nesting == 0:
        return "easy"
    if nesting == 0 and ((others <= 2 and components <= 1) or (components <= 2 and others < 2)):
        return "medium"
    if ((nesting == 0 and ((others > 2 and components <= 2) or (2 < components <= 3 and others <= 2)))
            or (components <= 1 and others == 0 and nesting <= 1)):
        return "hard"
    return "extra"


def _arg(node: exp.Expression, name: str) -> Optional[exp.Expression]:
    """node.args[name] under both spellings sqlglot has used (newer versions add a trailing underscore)."""
    return node.args.get(name) or node.args.get(f"{name}_")


def _owner(node: exp.Expression) -> Optional[exp.Expression]:
    """The nearest query (SELECT or set operation) that contains `node`, not counting `node` itself."""
    parent = node.parent
    while parent is not None and not isinstance(parent, (exp.Select, exp.SetOperation)):
        parent = parent.parent
    return parent


def _own_nodes(root: exp.Expression, kind) -> list[exp.Expression]:
    """Nodes of `kind` under `root` that are not inside a subquery of it."""
    return [n for n in root.find_all(kind) if not any(isinstance(a, exp.Select) for a in _ancestors(n, root))]


def _ancestors(node: exp.Expression, stop: exp.Expression):
    parent = node.parent
    while parent is not None and parent is not stop:
        yield parent
        parent = parent.parent


def _predicates(condition: exp.Expression) -> list[exp.Expression]:
    """The leaves of an AND/OR tree (parentheses looked through)."""
    if isinstance(condition, exp.Paren):
        return _predicates(condition.this)
    if isinstance(condition, exp.Connector):  # And, Or
        return _predicates(condition.left) + _predicates(condition.right)
    return [condition]
