"""Text-level metrics on SQL: does it parse, exact match after normalisation, BLEU and ROUGE-L."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache


@lru_cache(maxsize=65536)
def _parse(sql: str):
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return None
    return tree


def parses(sql: str) -> bool:
    return bool(sql and sql.strip()) and _parse(sql.strip()) is not None


def normalize(sql: str) -> str:
    """A canonical text: sqlglot's rendering with identifiers and keywords in one case, or, for SQL it cannot
    parse, lower case with single spaces."""
    sql = (sql or "").strip().rstrip(";").strip()
    tree = _parse(sql) if sql else None
    if tree is not None:
        try:
            return tree.sql(dialect="sqlite", normalize=True, pretty=False).lower()
        except Exception:
            pass
    return re.sub(r"\s+", " ", sql.lower())


def exact_match(pred: str, gold: str) -> bool:
    return bool(pred) and normalize(pred) == normalize(gold)


def tokens(sql: str) -> list[str]:
    return re.findall(r"'[^']*'|\"[^\"]*\"|\w+|[^\w\s]", (sql or "").lower())


def bleu(pred: str, gold: str, max_n: int = 4) -> float:
    """Sentence BLEU on SQL tokens with add-one smoothing for n > 1 (so short queries do not score 0)."""
    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        pn = Counter(tuple(p[i:i + n]) for i in range(len(p) - n + 1))
        gn = Counter(tuple(g[i:i + n]) for i in range(len(g) - n + 1))
        overlap, total = sum((pn & gn).values()), max(1, sum(pn.values()))
        if n > 1:
            overlap, total = overlap + 1, total + 1
        if overlap == 0:
            return 0.0
        log_precision += math.log(overlap / total) / max_n
    brevity = 1.0 if len(p) > len(g) else math.exp(1 - len(g) / len(p))
    return brevity * math.exp(log_precision)


def rouge_l(pred: str, gold: str) -> float:
    """F1 of the longest common subsequence of SQL tokens."""
    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 0.0
    prev = [0] * (len(g) + 1)
    for a in p:
        cur = [0]
        for j, b in enumerate(g):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)
