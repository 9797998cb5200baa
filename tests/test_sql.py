"""The SQL sandbox, the result comparator, SQL extraction and the text metrics."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time

import pytest

from lit_sql.sql.build_db import build_databases
from lit_sql.sql.compare import has_top_level_order_by, results_match
from lit_sql.sql.execute import ExecutionResult, execute_many, execute_sql
from lit_sql.sql.extract import extract_sql
from lit_sql.sql.metrics import bleu, exact_match, parses, rouge_l
from tests.conftest import SPIDER_TRAIN


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT, rating REAL);
        INSERT INTO singer VALUES (1, 'Ann', 31, 'France', 4.5), (2, 'Bob', 25, 'Peru', NULL),
                                  (3, 'Cid', 40, 'France', 3.0), (4, 'Dee', 25, 'Chile', 4.5);
    """)
    conn.commit()
    conn.close()
    return path


def run(db, sql):
    return execute_sql(db, sql, timeout_s=2.0)


def rows(*r, columns=None):
    return ExecutionResult(rows=list(r), columns=columns)


# ---- comparator -----------------------------------------------------------------------------------------
def test_order_matters_only_when_gold_sorts(db):
    gold_sorted = "SELECT name FROM singer ORDER BY age"
    reversed_ = rows(("Cid",), ("Ann",), ("Bob",), ("Dee",))
    assert not results_match(run(db, gold_sorted), reversed_, "testsuite", gold_sorted)
    gold_plain = "SELECT name FROM singer"
    assert results_match(run(db, gold_plain), reversed_, "testsuite", gold_plain)
    # An ORDER BY inside a subquery or a string does not make the outer result ordered.
    assert not has_top_level_order_by("SELECT * FROM (SELECT a FROM t ORDER BY a) WHERE b = 'order by'")
    assert has_top_level_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")


def test_duplicates_count_in_testsuite_not_in_bird():
    gold, pred = rows((25,), (25,), (31,)), rows((25,), (31,))
    assert not results_match(gold, pred, "testsuite")
    assert results_match(gold, pred, "bird")


def test_column_order():
    gold, pred = rows(("Ann", 31), ("Bob", 25)), rows((31, "Ann"), (25, "Bob"))
    assert results_match(gold, pred, "testsuite")
    assert not results_match(gold, pred, "bird")
    # Same values per column but paired differently is not a permutation of the answer.
    assert not results_match(rows((1, 2), (3, 4)), rows((2, 3), (4, 1)), "testsuite")


def test_nulls_floats_empty_and_affinity():
    assert results_match(rows((None, 1)), rows((None, 1)), "testsuite")
    assert results_match(rows((0.1 + 0.2,)), rows((0.3,)), "bird")
    assert results_match(rows((1,)), rows((1.0,)), "testsuite")
    assert not results_match(rows((0.3,)), rows((0.31,)), "testsuite")
    assert results_match(rows(), rows(), "testsuite") and results_match(rows(), rows(), "bird")
    assert not results_match(rows(), rows((1,)), "bird")
    # Text is never a number: '1' is a different answer from 1.
    assert not results_match(rows((1,)), rows(("1",)), "testsuite")
    assert not results_match(rows((1,)), rows(("1",)), "bird")
    assert not results_match(rows((1,)), ExecutionResult(error="no such column"), "testsuite")


# ---- sandbox --------------------------------------------------------------------------------------------
HOSTILE = {
    "DROP TABLE singer": "not authorized",
    "INSERT INTO singer VALUES (9, 'X', 1, 'Y', 1.0)": "not authorized",
    "UPDATE singer SET age = 0": "not authorized",
    "DELETE FROM singer": "not authorized",
    "CREATE TABLE t (a)": "not authorized",
    "ATTACH DATABASE ':memory:' AS other": "",
    "PRAGMA journal_mode=WAL": "not authorized",
    "PRAGMA writable_schema=1": "not authorized",
    "SELECT load_extension('x')": "",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c": "timed out",
    "SELECT randomblob(1e9)": "too big",
    "SELECT length(zeroblob(2000000000))": "too big",
    "SELECT 1; DROP TABLE singer": "",
}


@pytest.mark.parametrize("sql", list(HOSTILE))
def test_hostile_queries_fail_on_time_and_change_nothing(db, sql):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    start = time.monotonic()
    result = execute_sql(db, sql, timeout_s=1.0)
    assert time.monotonic() - start < 3.0
    assert not result.ok and HOSTILE[sql] in result.error.lower()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["shop.sqlite"]  # no -wal or -journal appeared
    assert run(db, "SELECT count(*) FROM singer").rows == [(4,)]  # the cached connection still works


def test_rows_are_capped_and_missing_database_is_a_result(db, tmp_path):
    r = execute_sql(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50) SELECT x FROM c",
                    max_rows=10)
    assert r.ok and r.truncated and len(r.rows) == 10
    assert "not found" in execute_sql(tmp_path / "nope.sqlite", "SELECT 1").error


def test_parallel_execution_matches_inline(db):
    jobs = [(db, f"SELECT name FROM singer WHERE age > {a}") for a in range(20, 45)] + [(db, "SELECT nope")]
    inline = execute_many(jobs, num_workers=1)
    parallel = execute_many(jobs, num_workers=2)
    assert [r.rows for r in parallel] == [r.rows for r in inline]
    assert parallel[-1].error and not parallel[0].error


# ---- extraction and metrics -----------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("SELECT name FROM singer", "SELECT name FROM singer"),
    ("SELECT name FROM singer;", "SELECT name FROM singer"),
    ("```sql\nSELECT count(*)\nFROM singer\n```", "SELECT count(*)\nFROM singer"),
    ("Here is the query:\n```\nSELECT 1\n```\nIt returns one.", "SELECT 1"),
    ("First I list the tables. The answer needs a filter.\nSELECT name FROM singer WHERE age > 30;",
     "SELECT name FROM singer WHERE age > 30"),
    ("SELECT name FROM singer WHERE country = 'a;b'; -- the names", "SELECT name FROM singer WHERE country = 'a;b'"),
    ("SELECT name FROM singer\n\nThis query returns every name.", "SELECT name FROM singer"),
    ("SQL: SELECT 2", "SELECT 2"),
    ("WITH t AS (SELECT 1 AS a) SELECT a FROM t", "WITH t AS (SELECT 1 AS a) SELECT a FROM t"),
    ("I do not know.", ""),
])
def test_extract_sql(text, expected):
    assert extract_sql(text) == expected


def test_metrics():
    assert parses("SELECT a FROM t WHERE b = 1") and not parses("SELEC a FROM") and not parses("")
    assert exact_match("select  A from T where b=1;", "SELECT a FROM t WHERE b = 1")
    assert not exact_match("SELECT a FROM t", "SELECT b FROM t")
    assert bleu("SELECT a FROM t", "SELECT a FROM t") == pytest.approx(1.0)
    assert 0 < bleu("SELECT a FROM t WHERE x = 1", "SELECT a FROM t") < 1
    assert rouge_l("SELECT a FROM t", "SELECT a FROM t") == 1.0
    assert rouge_l("SELECT b", "SELECT a FROM t") == pytest.approx(2 * (1 / 2 * 1 / 4) / (1 / 2 + 1 / 4))


def test_databases_built_from_context(tmp_path):
    context = "CREATE TABLE head (name VARCHAR, age INTEGER)"
    gold = "SELECT count(*) FROM head WHERE age > 56 AND name = 'Bob'"
    paths = build_databases(context, gold, cache_dir=tmp_path)
    assert len(paths) == 3 and paths == build_databases(context, gold, cache_dir=tmp_path)
    results = [execute_sql(p, "SELECT count(*), sum(name = 'Bob') FROM head") for p in paths]
    assert all(r.ok and r.rows[0][0] > 0 for r in results)
    assert any(r.rows[0][1] > 0 for r in results)  # the gold literal was planted
    with_rows = build_databases("CREATE TABLE t (a INT); INSERT INTO t VALUES (7);", "SELECT a FROM t", cache_dir=tmp_path)
    assert len(with_rows) == 1 and execute_sql(with_rows[0], "SELECT a FROM t").rows == [(7,)]


# ---- real data ------------------------------------------------------------------------------------------
@pytest.mark.skipif(not SPIDER_TRAIN.is_dir(), reason="the Spider train split is not beside this checkout")
def test_spider_gold_against_itself_and_against_wrong_queries():
    examples = json.loads((SPIDER_TRAIN / "train.json").read_text())
    db = lambda ex: SPIDER_TRAIN / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite"  # noqa: E731
    gold = execute_many([(db(ex), ex["query"]) for ex in examples], timeout_s=30, num_workers=2)
    ok = [i for i, r in enumerate(gold) if r.ok]
    assert len(ok) >= len(examples) - 5  # the gold SQL of Spider runs (a handful may hit the timeout)
    for mode in ("testsuite", "bird"):
        assert all(results_match(gold[i], gold[i], mode, examples[i]["query"]) for i in ok)
    # Wrong on purpose: an empty result where the gold is not empty, and a constant.
    sample = [i for i in ok if gold[i].rows][:600]
    wrong = execute_many([(db(examples[i]), f"SELECT * FROM ({examples[i]['query']}) LIMIT 0") for i in sample]
                         + [(db(examples[i]), "SELECT 12345678") for i in sample], timeout_s=30, num_workers=2)
    for mode in ("testsuite", "bird"):
        scores = [results_match(gold[i], w, mode, examples[i]["query"])
                  for i, w in zip(sample * 2, wrong) if w.ok and (w.rows != gold[i].rows)]
        assert scores and not any(scores)
