"""The sandbox: hostile queries fail on time and leave the database byte-identical; rows are capped;
parallel execution gives the inline results in order."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lit_sql.data.schema import read_schema
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


COUNT = "SELECT count(*) FROM singer"


def commit_and_die(db: Path, *statements: str) -> None:
    """A writer that commits to the -wal file and dies before copying anything into the database file."""
    code = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint = 0')\n"
            "for s in sys.argv[2:]: c.execute(s)\nc.commit(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(db), *statements], check=True)
    assert db.with_name(f"{db.name}-wal").stat().st_size > 0


def test_wal_changes_not_yet_in_the_database_file_are_read(tmp_path: Path):
    db = make_db(tmp_path / "live.sqlite", wal=True)
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # commits stay in the -wal file
    writer.execute("INSERT INTO singer VALUES (5, 'Eve', 22, 'Peru', 4.0)")
    writer.execute("CREATE TABLE fan (id INTEGER)")
    writer.commit()
    main_file_alone = tmp_path / "copy.sqlite"
    shutil.copy(db, main_file_alone)
    assert execute_sql(main_file_alone, COUNT).rows == [(4,)]  # the new row is in the -wal file only
    assert execute_sql(db, COUNT).rows == [(5,)]
    assert [t.name for t in read_schema(db).tables] == ["singer", "fan"]
    writer.execute("INSERT INTO singer VALUES (6, 'Fay', 33, 'Chile', 2.0)")
    writer.commit()
    assert execute_sql(db, COUNT).rows == [(6,)]  # the cached connection follows the writer
    assert not execute_sql(db, "DELETE FROM singer").ok
    writer.close()


def test_a_wal_database_a_writer_starts_changing_is_not_read_stale(tmp_path: Path):
    db = make_db(tmp_path / "wal.sqlite", wal=True)
    assert execute_sql(db, COUNT).rows == [(4,)]  # no -wal file yet: opened immutable, nothing written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
    commit_and_die(db, "DELETE FROM singer WHERE id > 1")
    assert execute_sql(db, COUNT).rows == [(1,)]


def read_without_write_permission(folder: Path, *names: str) -> dict:
    """What another process reads from each database in `folder` when it cannot write there. Root writes anywhere,
    so when the tests run as root, the reader drops the one capability that lets it (CAP_DAC_OVERRIDE)."""
    reader = textwrap.dedent("""
        import json, os, sys
        from lit_sql.data.schema import read_schema
        from lit_sql.sql.execute import execute_sql

        folder, out = sys.argv[1], {"writable": True}
        try:
            open(os.path.join(folder, "probe"), "w")
        except PermissionError:
            out["writable"] = False
        for name in sys.argv[2:]:
            db = os.path.join(folder, name)
            try:
                tables = [t.name for t in read_schema(db).tables]
            except Exception as e:
                tables = f"{type(e).__name__}: {e}"
            result = execute_sql(db, "SELECT count(*) FROM singer")
            out[name] = {"rows": result.rows, "error": result.error, "tables": tables}
        print(json.dumps(out))
    """)

    def drop_dac_override() -> None:
        if os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")

    done = subprocess.run([sys.executable, "-c", reader, str(folder), *names], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], preexec_fn=drop_dac_override)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_databases_in_a_read_only_folder(tmp_path: Path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    make_db(folder / "rollback.sqlite")
    make_db(folder / "wal.sqlite", wal=True)  # closed cleanly: no -wal file
    for name in ("crashed", "no_shm"):
        commit_and_die(make_db(folder / f"{name}.sqlite", wal=True), "INSERT INTO singer VALUES (5, 'E', 2, 'P', 4.0)")
    (folder / "no_shm.sqlite-shm").unlink()
    before = {p.name: sha256(p) for p in folder.iterdir()}
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    try:
        names = [f"{n}.sqlite" for n in ("rollback", "wal", "crashed", "no_shm")]
        out = read_without_write_permission(folder, *names)
    finally:
        folder.chmod(0o755)
    assert out.pop("writable") is False  # the folder really is read-only to the reader
    for name, rows in (("rollback", 4), ("wal", 4), ("crashed", 5)):  # crashed: one row only in its -wal file
        assert out[f"{name}.sqlite"] == {"rows": [[rows]], "error": None, "tables": ["singer"]}, name
    # A -wal file without its -shm index cannot be read where no -shm can be made: said so, with what to do.
    no_shm = out["no_shm.sqlite"]
    assert no_shm["rows"] is None and "no_shm.sqlite" in no_shm["error"] and "writable folder" in no_shm["error"]
    assert "writable folder" in no_shm["tables"]
    assert {p.name: sha256(p) for p in folder.iterdir()} == before  # nothing written, nothing created


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
