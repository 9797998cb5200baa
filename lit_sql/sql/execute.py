"""Run model-written SQL on a SQLite file without letting it change, hang or exhaust anything.

Layers, each enough on its own for the case it names:
- the file is opened read-only (`open_readonly`), so SQLite itself refuses any write;
- an authorizer denies every action a read-only query does not need (writes, schema changes, ATTACH,
  transactions, state-changing PRAGMAs) and the functions that reach outside the database;
- a deadline checked by SQLite's progress handler, inside the engine, so even a recursive CTE that never
  returns a row stops on time (a watchdog thread could not interrupt it);
- a cap on the length of any string or blob (`randomblob(1e9)` fails at once instead of allocating a GB), a
  process-wide heap limit, and a cap on the rows fetched.
Errors come back inside the result, never as exceptions, so one bad query never stops an evaluation.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Optional, Sequence, Union

PathLike = Union[str, Path]

DEFAULT_TIMEOUT_S = 10.0
MAX_ROWS = 10_000
MAX_VALUE_BYTES = 10_000_000  # longest string, blob or SQL text a query may build
SOFT_HEAP_BYTES = 512 * 2**20  # above this SQLite frees page cache before allocating more
HARD_HEAP_BYTES = 2 * 2**30  # above this allocations fail (SQLITE_NOMEM) instead of swapping the machine
MAX_PRINTF_WIDTH = 100_000  # widest field printf/format may pad to (see _guarded_printf)
PROGRESS_STEPS = 1_000  # SQLite VM instructions between two deadline checks (microseconds apart)
BUSY_TIMEOUT_S = 1.0  # how long to wait for a lock held by some writer before reporting it

# Reading is all a query needs. Everything else is denied: INSERT/UPDATE/DELETE, CREATE/DROP/ALTER of any
# kind, ATTACH/DETACH, BEGIN/SAVEPOINT, REINDEX/ANALYZE, and PRAGMAs other than the ones listed below.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# PRAGMAs that only describe the schema (a model may use them to look around); their argument is a table or
# index name, never a setting.
_READ_ONLY_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
                      "foreign_key_list", "collation_list", "function_list"}
# Functions that touch the file system or load code (the last three exist only in some builds or shells).
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "zipfile", "fsdir"}


@dataclass
class ExecutionResult:
    """What one query returned. `rows` and `columns` are None when it failed; `error` says why."""

    rows: Optional[list[tuple]] = None
    columns: Optional[list[str]] = None
    error: Optional[str] = None
    timed_out: bool = False
    truncated: bool = False  # more than `max_rows` rows existed; `rows` holds the first `max_rows`
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _authorizer(action: int, arg1: Optional[str], arg2: Optional[str], db_name: Optional[str],
                trigger: Optional[str]) -> int:
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in _READ_ONLY_PRAGMAS else sqlite3.SQLITE_DENY
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Deadline:
    """The progress handler of one connection: aborts the running statement once `at` has passed."""

    def __init__(self) -> None:
        self.at = float("inf")

    def __call__(self) -> int:
        return 1 if time.monotonic() > self.at else 0  # non-zero makes SQLite stop with "interrupted"


# SQLite's printf pads a field with a loop that neither the deadline nor the length limit stops:
# printf('%.*c', 2000000000, 'x') spins for seconds. Queries get a printf that refuses huge widths and hands
# the rest to the built-in one on a private in-memory connection.
_PRINTF_WIDTH = re.compile(r"%[-+ 0#,!]*(\d*)(?:\.(\d*))?")
_printf_conn: Optional[sqlite3.Connection] = None


def _guarded_printf(fmt: object, *args: object) -> object:
    global _printf_conn
    if fmt is None:
        return None
    text = str(fmt)
    widths = [int(w) for m in _PRINTF_WIDTH.finditer(text) for w in m.groups() if w]
    if "*" in text:  # the width comes from an argument
        widths += [abs(a) for a in args if isinstance(a, int)]
    if any(w > MAX_PRINTF_WIDTH for w in widths):
        raise ValueError(f"printf width above {MAX_PRINTF_WIDTH}")
    if _printf_conn is None:
        _printf_conn = sqlite3.connect(":memory:", check_same_thread=False)
        _printf_conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    marks = ",".join("?" * (len(args) + 1))
    return _printf_conn.execute(f"SELECT printf({marks})", (text, *args)).fetchone()[0]


def _uses_wal(path: Path) -> bool:
    """Whether the file is a WAL-mode database (header bytes 18-19 are 2)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == 2


def _wal_pending(path: PathLike) -> bool:
    """Whether a -wal file beside the database holds anything (transactions not yet copied into it, perhaps)."""
    try:
        return os.stat(f"{path}-wal").st_size > 0
    except FileNotFoundError:
        return False


def open_readonly(db_path: PathLike) -> sqlite3.Connection:
    """A read-only connection to the SQLite file `db_path` (every reader of databases opens them here) that sees
    every committed transaction and, where that is possible, creates no file. Raises FileNotFoundError, or
    sqlite3.Error naming the file when SQLite cannot read it.

    How, by the file's journal mode:
    - rollback journal (most files): `mode=ro`; SQLite itself refuses any write.
    - WAL, with a non-empty -wal file beside it (a writer has the database open, or stopped before copying its
      changes into the main file): `mode=ro`, because committed transactions may be in the -wal file alone.
      SQLite reads it through the -shm index: an existing -shm (read-only if need be), or one it creates if the
      folder is writable. `immutable=1` would ignore the -wal file and answer from stale data.
    - WAL, with no -wal file or an empty one: every committed transaction is in the main file. `mode=ro` would
      create -wal and -shm files beside it, and in a read-only folder fail ("attempt to write a readonly
      database"), so `immutable=1`: no locks, no side files. A writer that starts later is not seen by this
      connection (`execute_sql` opens a new one when a -wal file appears).
    """
    path = Path(db_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"database {path} not found")
    pending = _wal_pending(path)
    query = "mode=ro&immutable=1" if _uses_wal(path) and not pending else "mode=ro"
    conn = sqlite3.connect(f"{path.as_uri()}?{query}", uri=True, timeout=BUSY_TIMEOUT_S,
                           isolation_level=None,  # autocommit: Python never issues a BEGIN of its own
                           check_same_thread=False)
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")  # some real databases hold bad bytes
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # SQLite opens files lazily: a problem shows here
    except sqlite3.Error as e:
        conn.close()
        hint = ""
        if pending and not Path(f"{path}-shm").exists():
            hint = (f"; its -wal file holds changes that SQLite reads only through a -shm file, which it cannot "
                    f"create in {path.parent}: open the database once where it is writable, or copy it with its "
                    f"-wal file to a writable folder")
        raise type(e)(f"{path}: {e}{hint}") from e
    return conn


def open_sandboxed(db_path: PathLike) -> tuple[sqlite3.Connection, _Deadline]:
    """A sandboxed `open_readonly` connection to `db_path` and the deadline its progress handler checks."""
    conn = open_readonly(db_path)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    # Heap limits are process-wide and the pragma only ever lowers them; they must run before the
    # authorizer, which denies these pragmas.
    conn.execute(f"PRAGMA soft_heap_limit = {SOFT_HEAP_BYTES}")
    conn.execute(f"PRAGMA hard_heap_limit = {HARD_HEAP_BYTES}")
    conn.execute("PRAGMA query_only = 1")  # one more refusal of writes, should mode=ro ever be lifted
    for name in ("printf", "format"):
        conn.create_function(name, -1, _guarded_printf, deterministic=True)
    deadline = _Deadline()
    conn.set_progress_handler(deadline, PROGRESS_STEPS)
    conn.set_authorizer(_authorizer)
    return conn, deadline


# Per process: opening a database costs more than most queries. The key includes the file's identity and
# modification time, so a database rewritten at the same path gets a fresh connection, and whether a -wal file
# holds changes, so a WAL database that a writer starts changing is opened anew the right way (`open_readonly`).
_CONNECTIONS: dict[tuple, tuple[sqlite3.Connection, _Deadline]] = {}
_MAX_CONNECTIONS = 256  # Spider has ~200 databases; beyond this the oldest connections are closed


def _connection(db_path: PathLike) -> tuple[sqlite3.Connection, _Deadline]:
    stat = os.stat(db_path)  # raises FileNotFoundError for a missing file
    key = (str(db_path), stat.st_ino, stat.st_size, stat.st_mtime_ns, _wal_pending(db_path))
    if key not in _CONNECTIONS:
        if len(_CONNECTIONS) >= _MAX_CONNECTIONS:
            oldest = next(iter(_CONNECTIONS))
            _CONNECTIONS.pop(oldest)[0].close()
        _CONNECTIONS[key] = open_sandboxed(db_path)
    return _CONNECTIONS[key]


def close_connections() -> None:
    """Close this process's cached connections (tests call it before comparing files byte for byte)."""
    while _CONNECTIONS:
        _CONNECTIONS.popitem()[1][0].close()


def execute_sql(db_path: PathLike, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                max_rows: int = MAX_ROWS) -> ExecutionResult:
    """Run one query on `db_path` in the sandbox; never raises."""
    start = time.monotonic()
    if not sql or not sql.strip():
        return ExecutionResult(error="empty query")
    try:
        conn, deadline = _connection(db_path)
    except FileNotFoundError:
        return ExecutionResult(error=f"database {db_path} not found")
    except sqlite3.Error as e:
        return ExecutionResult(error=f"cannot open database: {e}")  # the error names the file
    deadline.at = start + timeout_s
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)  # one more than allowed tells us whether we cut the result
        columns = [d[0] for d in cursor.description or []]
        return ExecutionResult(rows=rows[:max_rows], columns=columns, truncated=len(rows) > max_rows,
                               seconds=time.monotonic() - start)
    # sqlite3.Error covers SQL errors, denials, interruptions and "one statement at a time"; the others come
    # from converting values (an integer beyond 64 bits, a huge result).
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as e:
        timed_out = time.monotonic() > deadline.at
        message = f"timed out after {timeout_s:g} s" if timed_out else f"{type(e).__name__}: {e}"
        return ExecutionResult(error=message, timed_out=timed_out, seconds=time.monotonic() - start)
    finally:
        cursor.close()  # finishes the statement, releasing its read lock
        deadline.at = float("inf")


def _run_chunk(jobs: list[tuple[str, str, float, int]]) -> list[ExecutionResult]:
    return [execute_sql(db, sql, timeout_s, max_rows) for db, sql, timeout_s, max_rows in jobs]


def execute_many(jobs: Sequence[tuple[PathLike, str]], timeout_s: float = DEFAULT_TIMEOUT_S,
                 num_workers: int = 2, max_rows: int = MAX_ROWS) -> list[ExecutionResult]:
    """Run (database, sql) pairs across `num_workers` processes (0 or 1: in this process); results come back
    in the order of `jobs`."""
    work = [(str(db), sql, timeout_s, max_rows) for db, sql in jobs]
    if num_workers <= 1 or len(work) < 4 * num_workers:  # too few jobs to pay for starting processes
        return _run_chunk(work)
    # Jobs on the same database go to the same chunk, so a worker reuses its open connection; small chunks
    # (8 per worker) keep both workers busy to the end when one database is slower than the rest.
    order = sorted(range(len(work)), key=lambda i: work[i][0])
    size = max(1, -(-len(work) // (num_workers * 8)))
    chunks = [order[s:s + size] for s in range(0, len(order), size)]
    out: list[Optional[ExecutionResult]] = [None] * len(work)
    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_chunk, [work[i] for i in chunk]) for chunk in chunks]
        for chunk, future in zip(chunks, futures):
            try:
                results = future.result()
            except BrokenProcessPool as e:  # a worker died (killed for memory, or SQLite crashed)
                results = [ExecutionResult(error=f"worker process died: {e}") for _ in chunk]
            for i, result in zip(chunk, results):
                out[i] = result
    return out  # type: ignore[return-value]  # every slot was filled above
