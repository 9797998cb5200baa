"""The comparator: row order, duplicates, column order, NULLs, floats, empty results and type affinity, in
both modes; and the ORDER BY detection it relies on."""

from __future__ import annotations

import sqlite3
import typing
from pathlib import Path

import pytest

from lit_sql.sql.compare import MODES, Verdict, canonical, compare_results, has_top_level_order_by, results_match
from lit_sql.sql.execute import ExecutionResult, execute_sql


def rows(*r: tuple, truncated: bool = False) -> ExecutionResult:
    return ExecutionResult(rows=list(r), columns=[f"c{i}" for i in range(len(r[0]) if r else 0)], truncated=truncated)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE singer (name TEXT, age INTEGER, score REAL, code TEXT);
        INSERT INTO singer VALUES ('Ann', 31, 0.1, '1'), ('Bob', 25, 0.2, '2'), ('Cid', 40, NULL, '3');
    """)
    conn.close()
    return path


def test_row_order_counts_only_when_gold_sorts(db: Path):
    sorted_sql, plain_sql = "SELECT name FROM singer ORDER BY age", "SELECT name FROM singer"
    other_order = rows(("Cid",), ("Ann",), ("Bob",))
    assert execute_sql(db, sorted_sql).rows == [("Bob",), ("Ann",), ("Cid",)]
    assert not results_match(execute_sql(db, sorted_sql), other_order, "testsuite", sorted_sql)
    assert results_match(execute_sql(db, plain_sql), other_order, "testsuite", plain_sql)
    assert results_match(execute_sql(db, sorted_sql), other_order, "bird", sorted_sql)  # bird: a set


def test_duplicates_count_in_testsuite_not_in_bird():
    gold, pred = rows((25,), (25,), (31,)), rows((25,), (31,))
    assert not results_match(gold, pred, "testsuite")
    assert results_match(gold, pred, "bird")
    assert not results_match(rows((25,), (31,), (31,)), gold, "testsuite")  # same length, other counts


def test_column_order_free_in_testsuite_strict_in_bird():
    gold, pred = rows(("Ann", 31), ("Bob", 25)), rows((31, "Ann"), (25, "Bob"))
    assert results_match(gold, pred, "testsuite")
    assert not results_match(gold, pred, "bird")
    # The same values per column but paired differently is a different answer.
    assert not results_match(rows((1, 2), (3, 4)), rows((2, 3), (4, 1)), "testsuite")
    assert not results_match(rows((1, 2), (2, 1)), rows((1, 1), (2, 2)), "testsuite")
    # Permuted columns under ORDER BY: rows stay paired by position.
    sql = "SELECT a, b FROM t ORDER BY a"
    assert results_match(rows((1, "x"), (2, "y")), rows(("x", 1), ("y", 2)), "testsuite", sql)
    assert not results_match(rows((1, "x"), (2, "y")), rows(("y", 2), ("x", 1)), "testsuite", sql)
    # An extra or missing column is never a match.
    assert not results_match(rows((1,)), rows((1, 1)), "testsuite")
    assert not results_match(rows((1,)), rows((1, 1)), "bird")


def test_many_look_alike_columns_are_settled_quickly():
    gold = rows(*[tuple([i % 2] * 9 + [i]) for i in range(50)])
    pred = rows(*[tuple([i] + [i % 2] * 9) for i in range(50)])
    assert results_match(gold, pred, "testsuite")
    wrong = rows(*[tuple([i] + [i % 2] * 8 + [(i + 1) % 2]) for i in range(50)])
    assert not results_match(gold, wrong, "testsuite")


def test_nulls_match_nulls_only():
    assert results_match(rows((None, 1)), rows((None, 1)), "testsuite")
    assert results_match(rows((None, 1)), rows((None, 1)), "bird")
    assert not results_match(rows((None,)), rows((0,)), "testsuite")
    assert not results_match(rows((None,)), rows(("",)), "bird")


def test_floats_compare_to_ten_significant_digits(db: Path):
    computed = execute_sql(db, "SELECT sum(score) FROM singer")  # 0.1 + 0.2 in SQLite
    assert computed.rows[0][0] != 0.3
    for mode in MODES:
        assert results_match(computed, rows((0.3,)), mode)
        assert results_match(rows((1,)), rows((1.0,)), mode)
        assert results_match(rows((2 / 3,)), rows((0.6666666667,)), mode)
        assert not results_match(rows((0.3,)), rows((0.31,)), mode)
        assert not results_match(rows((0.3,)), rows((0.3001,)), mode)
    assert canonical(12345678901.0) == 12345678901 and canonical(True) == 1


def test_text_is_never_a_number(db: Path):
    """The rule: '1' (text) and 1 (integer) are different answers in both modes."""
    as_text = execute_sql(db, "SELECT code FROM singer WHERE name = 'Ann'")
    as_number = execute_sql(db, "SELECT CAST(code AS INTEGER) FROM singer WHERE name = 'Ann'")
    assert as_text.rows == [("1",)] and as_number.rows == [(1,)]
    for mode in MODES:
        assert not results_match(as_number, as_text, mode)
        assert not results_match(rows((1.0,)), rows(("1.0",)), mode)
        assert not results_match(rows((b"a",)), rows(("a",)), mode)


def test_empty_results_and_errors():
    for mode in MODES:
        assert results_match(rows(), rows(), mode)
        assert compare_results(rows(), ExecutionResult(rows=[], columns=["a", "b"]), mode) is Verdict.MATCH
        assert not results_match(rows(), rows((1,)), mode)
        assert not results_match(rows((1,)), rows(), mode)
        failed = ExecutionResult(error="no such column: x")
        assert compare_results(rows((1,)), failed, mode) is Verdict.PRED_ERROR
        assert compare_results(failed, rows((1,)), mode) is Verdict.GOLD_ERROR
        assert compare_results(failed, failed, mode) is Verdict.GOLD_ERROR  # two failures are not a match
        assert not results_match(failed, failed, mode)


def test_truncated_results_match_only_truncated_ones():
    assert not results_match(rows((1,), truncated=True), rows((1,)), "bird")
    assert results_match(rows((1,), truncated=True), rows((1,), truncated=True), "testsuite")


def test_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="'exact'.*testsuite"):
        results_match(rows((1,)), rows((1,)), "exact")


def test_the_eval_flag_and_config_accept_exactly_the_comparators_modes():
    """One list of modes: the choices of `lit-sql eval --mode`, EvalConfig's check and the comparator's."""
    from lit_sql.cli.evaluate import sql
    from lit_sql.errors import LitSQLError
    from lit_sql.evaluate import EvalConfig

    assert typing.get_args(typing.get_type_hints(sql)["mode"]) == MODES == ("testsuite", "bird")
    assert all(EvalConfig(mode=m).mode == m for m in MODES)
    with pytest.raises(LitSQLError, match="--mode 'exact' is not one of testsuite, bird"):
        EvalConfig(mode="exact")


@pytest.mark.parametrize("sql,expected", [
    ("SELECT a FROM t ORDER BY a", True),
    ("select a from t order  by a desc limit 3", True),
    ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
    ("WITH s AS (SELECT a FROM t ORDER BY a) SELECT a FROM s", False),
    ("SELECT * FROM (SELECT a FROM t ORDER BY a) WHERE b = 'order by'", False),
    ("SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a LIMIT 2)", False),
    ("SELECT a FROM t", False),
    # not parseable by sqlglot: the fallback scan decides
    ("SELECT a FROM t WHERE b = 'x ORDER BY y' ORDER BY", True),
    ("SELECT (a ORDER BY b) FROM t WHERE c = 'order by' --", False),
])
def test_has_top_level_order_by(sql: str, expected: bool):
    assert has_top_level_order_by(sql) is expected
