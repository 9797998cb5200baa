"""Run model-written SQL on SQLite safely: read-only, no writes or ATTACH or PRAGMA changes, a real timeout,
bounded rows and blob sizes. Errors come back as results, never as exceptions.

The timeout is SQLite's progress handler (checked inside the engine every few thousand VM steps), so even a
recursive CTE that never ends stops on time; a watchdog thread could not interrupt it.
"""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Optional, Sequence, Union

MAX_ROWS = 10_000
MAX_VALUE_BYTES = 10_000_000  # longest string or blob a query may build (randomblob(1e9) fails at once)
PROGRESS_STEPS = 2_000  # SQLite VM instructions between two timeout checks

# Authorizer action codes that a read-only query needs; everything else (writes, schema changes, ATTACH,
# PRAGMA, transactions) is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "zipfile"}


@dataclass
class ExecutionResult:
    rows: Optional[list[tuple]] = None
    columns: Optional[list[str]] = None
    error: Optional[str] = None
    timed_out: bool = False
    truncated: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Deadline:
    """Mutable deadline read by the progress handler of a cached connection."""

    def __init__(self) -> None:
        self.at = float("inf")

    def __call__(self) -> int:
        return 1 if time.monotonic() > self.at else 0  # non-zero aborts the running statement


def open_read_only(db_path: Union[str, Path]) -> tuple[sqlite3.Connection, _Deadline]:
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"database {path} not found")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")  # some real databases hold bad bytes
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    deadline = _Deadline()
    conn.set_progress_handler(deadline, PROGRESS_STEPS)
    conn.set_authorizer(_authorizer)
    return conn, deadline


_CONNECTIONS: dict[str, tuple[sqlite3.Connection, _Deadline]] = {}  # per process: opening costs more than a query


def execute_sql(db_path: Union[str, Path], sql: str, timeout_s: float = 10.0, max_rows: int = MAX_ROWS) -> ExecutionResult:
    start = time.monotonic()
    if not sql or not sql.strip():
        return ExecutionResult(error="empty query")
    key = str(db_path)
    try:
        if key not in _CONNECTIONS:
            _CONNECTIONS[key] = open_read_only(db_path)
        conn, deadline = _CONNECTIONS[key]
    except (sqlite3.Error, FileNotFoundError) as e:
        return ExecutionResult(error=f"cannot open database: {e}")
    deadline.at = start + timeout_s
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description or []]
        cursor.close()
        truncated = len(rows) > max_rows
        return ExecutionResult(rows=rows[:max_rows], columns=columns, truncated=truncated,
                               seconds=time.monotonic() - start)
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as e:  # ValueError: e.g. two statements
        timed_out = time.monotonic() > deadline.at
        message = f"timed out after {timeout_s:g} s" if timed_out else f"{type(e).__name__}: {e}"
        return ExecutionResult(error=message, timed_out=timed_out, seconds=time.monotonic() - start)
    finally:
        deadline.at = float("inf")
        if conn.in_transaction:
            conn.rollback()


def _run_job(job: tuple[str, str, float, int]) -> ExecutionResult:
    db_path, sql, timeout_s, max_rows = job
    return execute_sql(db_path, sql, timeout_s, max_rows)


def execute_many(jobs: Sequence[tuple[Union[str, Path], str]], timeout_s: float = 10.0, num_workers: int = 2,
                 max_rows: int = MAX_ROWS) -> list[ExecutionResult]:
    """Run (database, sql) pairs, in order, across `num_workers` processes (0 or 1: in this process)."""
    work = [(str(db), sql, timeout_s, max_rows) for db, sql in jobs]
    if num_workers <= 1 or len(work) < 8:
        return [_run_job(j) for j in work]
    # Jobs on the same database go to the same worker, which then reuses its open connection.
    order = sorted(range(len(work)), key=lambda i: work[i][0])
    chunk = max(1, len(work) // (num_workers * 8))
    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_run_job, [work[i] for i in order], chunksize=chunk))
    out: list[Optional[ExecutionResult]] = [None] * len(work)
    for i, r in zip(order, results):
        out[i] = r
    return out  # type: ignore[return-value]
