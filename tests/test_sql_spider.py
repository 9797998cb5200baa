"""Cross-check on real data: every Spider train gold query matches itself in both modes, and queries made
wrong on purpose never match. Skipped when the Spider train split is not beside the checkout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lit_sql.sql.compare import MODES, has_top_level_order_by, results_match
from lit_sql.sql.execute import ExecutionResult, execute_many

SPIDER_TRAIN = Path(__file__).resolve().parents[2] / "shared/data/spider-train"
WRONG_SAMPLE = 1500  # examples that also get wrong queries (every gold query is still run)


def really_differ(gold: ExecutionResult, wrong: ExecutionResult, mode: str) -> bool:
    """An oracle independent of the comparator: do the raw results differ as the mode defines an answer?"""
    if not wrong.ok:
        return True
    g, w = gold.rows, wrong.rows
    if mode == "bird":
        return set(g) != set(w)
    return len(g) != len(w) or (bool(g) and len(g[0]) != len(w[0])) or Counter(g) != Counter(w)


@pytest.mark.skipif(not SPIDER_TRAIN.is_dir(), reason=f"{SPIDER_TRAIN} not found")
def test_spider_gold_matches_itself_and_wrong_queries_never_match():
    examples = json.loads((SPIDER_TRAIN / "train.json").read_text())
    db = [SPIDER_TRAIN / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite" for ex in examples]
    gold = execute_many([(db[i], ex["query"]) for i, ex in enumerate(examples)], timeout_s=30, num_workers=2)
    failed = [(i, r.error) for i, r in enumerate(gold) if not r.ok]
    # 3 of the 6,904 fail in SQLite itself: a missing table, two ORDER BY before INTERSECT.
    intersect = "OperationalError: ORDER BY clause should come after INTERSECT not before"
    assert [(examples[i]["db_id"], error) for i, error in failed] == [
        ("assets_maintenance", "OperationalError: no such table: Ref_Company_Types"),
        ("document_management", intersect), ("document_management", intersect)], failed[:10]
    ok = [i for i, r in enumerate(gold) if r.ok]
    for mode in MODES:
        assert all(results_match(gold[i], gold[i], mode, examples[i]["query"]) for i in ok), mode

    # Sorted gold results given back in reverse: wrong for testsuite, a match for bird (a set).
    sorted_gold = [i for i in ok if has_top_level_order_by(examples[i]["query"]) and gold[i].rows != gold[i].rows[::-1]]
    assert len(sorted_gold) > 500
    for i in sorted_gold:
        reverse = ExecutionResult(rows=gold[i].rows[::-1], columns=gold[i].columns)
        assert not results_match(gold[i], reverse, "testsuite", examples[i]["query"])
        assert results_match(gold[i], reverse, "bird", examples[i]["query"])

    sample = ok[::max(1, len(ok) // WRONG_SAMPLE)][:WRONG_SAMPLE]
    kinds = {
        "empty": "SELECT * FROM ({}) LIMIT 0",
        "constant": "SELECT 1",
        "extra column": "SELECT *, 'lit_sql' FROM ({})",
    }
    jobs = [(db[i], template.format(examples[i]["query"])) for template in kinds.values() for i in sample]
    wrong = execute_many(jobs, timeout_s=30, num_workers=2)
    for mode in MODES:
        for k, kind in enumerate(kinds):
            pairs = [(i, w) for i, w in zip(sample, wrong[k * len(sample):(k + 1) * len(sample)])
                     if really_differ(gold[i], w, mode)]
            assert len(pairs) > len(sample) // 2, (mode, kind)  # most gold results are not empty and not 1
            matched = [examples[i]["query"] for i, w in pairs if results_match(gold[i], w, mode, examples[i]["query"])]
            assert not matched, (mode, kind, matched[:3])
