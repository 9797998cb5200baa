"""The sandbox: hostile queries fail on time and leave the database byte-identical; rows are capped;
parallel execution gives the inline results in order."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from lit_sql.sql.execute import ExecutionResult, close_connections, execute_many, execute_sql

TIMEOUT_S = 1.0
MARGIN_S = 1.0


def make_db(path: Path, wal: bool = False) -> Path:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript("""
        CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT, rating REAL);
        INSERT INTO singer VALUES (1, 'Ann', 31, 'France', 4.5), (2, 'Bob', 25, 'Peru', NULL),
                                  (3, 'Cid', 40, 'France', 3.0), (4, 'Dee', 25, 'Chile', 4.5);
    """)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    folder = tmp_path / "db"
    folder.mkdir()
    return make_db(folder / "shop.sqlite")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# query -> a fragment of the error it must give ("timed out" also requires result.timed_out)
HOSTILE = {
    "DROP TABLE singer": "not authorized",
    "INSERT INTO singer VALUES (9, 'X', 1, 'Y', 1.0)": "not authorized",
    "UPDATE singer SET age = 0": "not authorized",
    "DELETE FROM singer": "not authorized",
    "CREATE TABLE t (a)": "not authorized",
    "CREATE TEMP TABLE t (a)": "not authorized",
    "ALTER TABLE singer ADD COLUMN x": "not authorized",
    "CREATE INDEX i ON singer (age)": "not authorized",
    "ATTACH DATABASE ':memory:' AS other": "not authorized",
    "PRAGMA journal_mode=WAL": "not authorized",
    "PRAGMA writable_schema=1": "not authorized",
    "PRAGMA query_only=0": "not authorized",
    "BEGIN IMMEDIATE": "not authorized",
    "VACUUM": "authoriz",
    "SELECT load_extension('x')": "not authorized",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c": "timed out",
    "SELECT randomblob(1e9)": "too big",
    "SELECT length(zeroblob(2000000000))": "too big",
    "SELECT printf('%.*c', 2000000000, 'x')": "function raised",
    "SELECT 1; DROP TABLE singer": "one statement",
}


@pytest.mark.parametrize("sql", list(HOSTILE))
def test_hostile_query_fails_on_time_and_changes_nothing(db: Path, sql: str):
    before = sha256(db)
    start = time.monotonic()
    result = execute_sql(db, sql, timeout_s=TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + MARGIN_S
    assert not result.ok and result.rows is None
    assert HOSTILE[sql] in result.error.lower(), result.error
    assert result.timed_out == (HOSTILE[sql] == "timed out")
    assert execute_sql(db, "SELECT count(*) FROM singer").rows == [(4,)]  # the cached connection still works
    close_connections()  # closing is when SQLite would clean up (or leave) side files
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["shop.sqlite"]  # no -wal, -shm or -journal


def test_read_only_pragmas_and_schema_reads_are_allowed(db: Path):
    info = execute_sql(db, "PRAGMA table_info(singer)")
    assert info.ok and [row[1] for row in info.rows] == ["id", "name", "age", "country", "rating"]
    assert execute_sql(db, "SELECT name FROM sqlite_master WHERE type = 'table'").rows == [("singer",)]
    assert execute_sql(db, "SELECT printf('%.2f', rating) FROM singer WHERE id = 1").rows == [("4.50",)]


def test_wal_database_is_read_without_side_files(tmp_path: Path):
    db = make_db(tmp_path / "wal.sqlite", wal=True)
    before = sha256(db)
    assert execute_sql(db, "SELECT count(*) FROM singer").rows == [(4,)]
    assert not execute_sql(db, "DELETE FROM singer").ok
    close_connections()
    assert sha256(db) == before and [p.name for p in tmp_path.iterdir()] == ["wal.sqlite"]


def test_result_fields_rows_cap_and_errors(db: Path, tmp_path: Path):
    r = execute_sql(db, "SELECT name, age FROM singer WHERE age > 30 ORDER BY age")
    assert r.ok and r.rows == [("Ann", 31), ("Cid", 40)] and r.columns == ["name", "age"]
    assert not r.truncated and not r.timed_out and 0 < r.seconds < TIMEOUT_S
    capped = execute_sql(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50) "
                             "SELECT x FROM c", max_rows=10)
    assert capped.ok and capped.truncated and capped.rows == [(i,) for i in range(1, 11)]
    assert execute_sql(db, "SELECT nope FROM singer").error == "OperationalError: no such column: nope"
    missing = tmp_path / "missing.sqlite"
    assert execute_sql(missing, "SELECT 1").error == f"database {missing} not found"
    assert execute_sql(db, "  ").error == "empty query"
    assert ExecutionResult(rows=[]).ok and not ExecutionResult(error="x").ok


def test_rewritten_database_is_not_served_from_a_stale_connection(tmp_path: Path):
    db = make_db(tmp_path / "a.sqlite")
    assert execute_sql(db, "SELECT count(*) FROM singer").rows == [(4,)]
    db.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE singer (id)")
    conn.commit()
    conn.close()
    assert execute_sql(db, "SELECT count(*) FROM singer").rows == [(0,)]


def test_parallel_execution_matches_inline_in_order(db: Path, tmp_path: Path):
    other = make_db(tmp_path / "other.sqlite")
    jobs = [(db if a % 2 else other, f"SELECT name FROM singer WHERE age > {a} ORDER BY name") for a in range(20, 45)]
    jobs += [(db, "SELECT nope"), (other, "DROP TABLE singer"), (db, "SELECT count(*) FROM singer")]
    inline = execute_many(jobs, num_workers=0)
    parallel = execute_many(jobs, timeout_s=5.0, num_workers=2)
    assert len(parallel) == len(jobs)
    assert [(r.rows, r.error) for r in parallel] == [(r.rows, r.error) for r in inline]
    assert parallel[-3].error == "OperationalError: no such column: nope"
    assert parallel[-2].error == "DatabaseError: not authorized" and parallel[-1].rows == [(4,)]
    assert inline[11].rows == [("Cid",)]  # age > 31
