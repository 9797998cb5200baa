"""Databases built from CREATE TABLE contexts: cached, deterministic, typed values, gold literals planted,
foreign dialects tolerated, failures reported by statement."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lit_sql.sql.build_db import build_databases, literals_by_column, prepare_databases
from lit_sql.sql.execute import close_connections, execute_sql

CONTEXT = "CREATE TABLE head (name VARCHAR, age INTEGER, born DATE, score REAL)"
GOLD = "SELECT count(*) FROM head WHERE age > 56 AND name = 'Bob'"


def test_random_fillings_are_typed_cached_and_deterministic(tmp_path: Path):
    paths = build_databases(CONTEXT, GOLD, cache_dir=tmp_path / "a")
    assert len(paths) == 3 and len(set(paths)) == 3 and all(p.is_file() for p in paths)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert len(set(digests)) == 3  # three different fillings
    again = build_databases(CONTEXT, GOLD, cache_dir=tmp_path / "b")  # built afresh elsewhere: same bytes
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in again] == digests
    assert build_databases(CONTEXT, GOLD, cache_dir=tmp_path / "a") == paths  # cache hit
    types = execute_sql(paths[0], "SELECT DISTINCT typeof(name), typeof(age), typeof(born), typeof(score) FROM head")
    assert types.rows == [("text", "integer", "text", "real")]
    assert all(len(d) == 10 for (d,) in execute_sql(paths[0], "SELECT born FROM head").rows)
    assert execute_sql(paths[0], "SELECT count(*) FROM head").rows == [(20,)]


def test_gold_literals_are_planted(tmp_path: Path):
    paths = build_databases(CONTEXT, GOLD, cache_dir=tmp_path)
    counts = [execute_sql(p, "SELECT sum(name = 'Bob'), sum(age > 56), sum(age <= 56) FROM head").rows[0] for p in paths]
    assert all(bob > 0 and above > 0 and below > 0 for bob, above, below in counts)
    assert sum(execute_sql(p, GOLD).rows[0][0] for p in paths) > 0  # the gold query finds something somewhere
    assert literals_by_column("SELECT a FROM t WHERE x = -5 AND y IN (1, 2) AND n LIKE 'B_b%' OR 3 = 3") == {
        "x": [-5], "y": [1, 2], "n": ["Bxb"], "": [3, 3]}


def test_context_with_rows_is_used_as_given(tmp_path: Path):
    paths = build_databases("CREATE TABLE t (a INT); INSERT INTO t VALUES (7); INSERT INTO t VALUES (';');",
                            "SELECT a FROM t", cache_dir=tmp_path)
    assert len(paths) == 1 and execute_sql(paths[0], "SELECT a FROM t").rows == [(7,), (";",)]


def test_mysql_and_postgres_contexts_are_translated(tmp_path: Path):
    context = """
        CREATE TABLE users (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,
                            kind ENUM('a','b') COMMENT 'the kind', created TIMESTAMP) ENGINE=InnoDB DEFAULT CHARSET=utf8;
        CREATE TABLE orders (id SERIAL PRIMARY KEY, user_id INT UNSIGNED, day DATE);
        INSERT INTO users (name, kind) VALUES ('Ann', 'a'), ('Bob', 'b');
        INSERT INTO orders (user_id, day) VALUES (2, '2020-01-01'::date);
    """
    built = prepare_databases(context, "SELECT name FROM users", cache_dir=tmp_path)
    assert built.errors == []
    query = "SELECT u.id, u.name, o.day FROM users AS u JOIN orders AS o ON o.user_id = u.id"
    assert execute_sql(built.paths[0], query).rows == [(2, "Bob", "2020-01-01")]  # ids were numbered


def test_failing_statements_are_reported_and_remembered(tmp_path: Path):
    context = "CREATE TABLE ok (a INT); CREATE TABLE really broken;"
    built = prepare_databases(context, "SELECT a FROM ok", cache_dir=tmp_path)
    assert len(built.errors) == 1 and "CREATE TABLE really broken" in built.errors[0]
    assert "syntax error" in built.errors[0]
    assert prepare_databases(context, "SELECT a FROM ok", cache_dir=tmp_path).errors == built.errors  # cached
    assert execute_sql(built.paths[0], "SELECT count(*) FROM ok").rows == [(20,)]  # the table that parsed, filled
    close_connections()


def test_bad_sizes_are_refused_before_any_work(tmp_path: Path):
    with pytest.raises(ValueError, match="variants"):
        build_databases(CONTEXT, GOLD, variants=0, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
