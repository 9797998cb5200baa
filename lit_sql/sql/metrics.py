"""Text-level metrics on SQL: does it parse, exact match after normalisation, BLEU and ROUGE-L on SQL tokens,
and the difficulty of a query (Spider's hardness levels: the one labeller every dataset and report uses)."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Optional

import sqlglot
from sqlglot import exp

from lit_sql.sql.lexer import split_statements

DIFFICULTY_LEVELS = ("easy", "medium", "hard", "extra")
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


# sqlglot reads text it cannot take as a statement as a bare expression ("hello world" is the column hello
# aliased world, "SELEC nope" likewise), so that it parses proves nothing. SQL is a query (SELECT, WITH,
# UNION/INTERSECT/EXCEPT, a parenthesised query, VALUES) or a statement that changes data or schema (some
# datasets' gold is an INSERT, UPDATE, DELETE or CREATE); sqlglot's catch-all Command (syntax it did not
# understand) is not.
_STATEMENTS = (exp.Query, exp.Values, exp.DML, exp.DDL, exp.Drop, exp.Alter)


def is_statement(tree: Optional[exp.Expression]) -> bool:
    """Whether a sqlglot tree is a query or a data or schema statement, not a bare expression."""
    return isinstance(tree, _STATEMENTS)


def parses(sql: str) -> bool:
    """Whether `sql` is one query (or data or schema statement) that sqlglot parses as SQLite."""
    return bool(sql and sql.strip()) and is_statement(_parse(sql.strip()))


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
# Difficulty (Spider's hardness levels)
# -------------------------------------------------------------------------------------------------------
def sql_difficulty(sql: str) -> Optional[str]:
    """"easy", "medium", "hard" or "extra": the level the official Spider evaluation (evaluation.py,
    `eval_hardness`) gives a query, counted on sqlglot's tree; None when `sql` is not one query that parses.

    Everything is counted on the outermost query (of a set operation, the left-most one; ORDER BY and LIMIT
    after a set operation are not its own: Spider's parser gives them to the query on the right):
    - components: WHERE, GROUP BY, ORDER BY and LIMIT present; one per joined table; one per OR and one per
      LIKE (ILIKE too) in the join, WHERE and HAVING conditions.
    - nested: one for a set operation (UNION, INTERSECT, EXCEPT; a chain of them counts once), one per
      subquery used as a value (in a condition; in the select list, which Spider's grammar lacks). A subquery
      in FROM is a table there, not a nested query, and so is a common table expression.
    - others, one each for: more than one aggregate, more than one selected column, more than one WHERE
      condition, more than one GROUP BY column. Aggregates are counted as evaluation.py counts them: calls in
      the select list, GROUP BY and ORDER BY; in WHERE and HAVING its check reads a condition's NOT flag where
      the aggregate was meant (and, in HAVING, counts each AND/OR between conditions too). We count the same,
      so that a level here is the level published results are broken down by: `SELECT count(*) FROM t WHERE
      id NOT IN (...)` has two "aggregates".
    Levels: easy if components <= 1, no others, nothing nested; medium if nothing nested and (others <= 2 and
    components <= 1, or components <= 2 and others < 2); hard if nothing nested and (others > 2 and components
    <= 2, or 2 < components <= 3 and others <= 2), or if components <= 1, no others, one nested; else extra.
    """
    query = _parse((sql or "").strip())
    while isinstance(query, exp.Subquery):
        query = query.this
    nested = int(isinstance(query, exp.SetOperation))
    while isinstance(query, (exp.SetOperation, exp.Subquery)):
        query = query.this
    if not isinstance(query, exp.Select):
        return None  # unparseable, or not a query (an INSERT, a PRAGMA...)

    where, having, group = _arg(query, "where"), _arg(query, "having"), _arg(query, "group")
    joins = _arg(query, "joins") or []
    conditions = [c for c in (*(j.args.get("on") for j in joins), where, having) if c is not None]
    components = sum(_arg(query, k) is not None for k in ("where", "group", "order", "limit")) + len(joins)
    components += sum(len(_own_nodes(c, (exp.Or, exp.Like, exp.ILike))) for c in conditions)

    nested += sum(1 for node in query.find_all(exp.Select, exp.SetOperation)
                  if node is not query and _owner(node) is query and not _is_table(node, query))

    where_conditions = _predicates(where.this) if where is not None else []
    having_conditions = _predicates(having.this) if having is not None else []
    aggregates = sum(len(_own_nodes(part, exp.AggFunc))
                     for part in (*query.expressions, group, _arg(query, "order")) if part is not None)
    aggregates += sum(map(_negated, where_conditions + having_conditions))  # evaluation.py's reading, see above
    aggregates += max(0, len(having_conditions) - 1)
    group_columns = len(group.expressions) if group is not None else 0
    others = (aggregates > 1) + (len(query.expressions) > 1) + (len(where_conditions) > 1) + (group_columns > 1)

    if components <= 1 and others == 0 and nested == 0:
        return "easy"
    if nested == 0 and ((others <= 2 and components <= 1) or (components <= 2 and others < 2)):
        return "medium"
    if ((nested == 0 and ((others > 2 and components <= 2) or (2 < components <= 3 and others <= 2)))
            or (components <= 1 and others == 0 and nested <= 1)):
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


def _is_table(node: exp.Expression, query: exp.Select) -> bool:
    """Whether the subquery `node` of `query` is a table of it: in FROM, joined, or a common table expression."""
    child, parent = node, node.parent
    while parent is not None and parent is not query:
        if isinstance(parent, (exp.From, exp.With, exp.CTE)) or (isinstance(parent, exp.Join) and child is parent.this):
            return True
        child, parent = parent, parent.parent
    return False


def _own_nodes(root: exp.Expression, kind) -> list[exp.Expression]:
    """Nodes of `kind` under `root` (itself included) that are not inside a subquery of it."""
    def own(node: exp.Expression) -> bool:
        while node is not root:
            node = node.parent
            if isinstance(node, exp.Select):
                return False
        return True

    return [n for n in root.find_all(kind) if own(n)]


def _predicates(condition: exp.Expression) -> list[exp.Expression]:
    """The conditions an AND/OR tree joins (parentheses looked through)."""
    if isinstance(condition, exp.Paren):
        return _predicates(condition.this)
    if isinstance(condition, exp.Connector):  # And, Or
        return _predicates(condition.left) + _predicates(condition.right)
    return [condition]


def _negated(condition: exp.Expression) -> bool:
    """NOT IN, NOT BETWEEN, NOT EXISTS, IS NOT NULL, NOT (...) (a Not node) or NOT LIKE (a negated Like)."""
    return isinstance(condition, exp.Not) or bool(condition.args.get("negate"))
