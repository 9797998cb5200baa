"""Databases for datasets that ship only CREATE TABLE text (sql-create-context, gretel): execute the context,
and where it has no rows, fill several random databases per schema (as test-suite evaluation does), drawing
values from the literals of the gold query so that its filters can match something."""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
from pathlib import Path
from typing import Optional

DEFAULT_CACHE = Path(os.environ.get("LIT_SQL_CACHE", Path.home() / ".cache" / "lit_sql")) / "context_dbs"
WORDS = ["alpha", "beta", "gamma", "delta", "north", "south", "red", "blue", "green", "london", "paris", "tokyo"]


def build_databases(context: str, gold_sql: str = "", variants: int = 3, seed: int = 0, rows: int = 12,
                    cache_dir: Optional[Path] = None) -> list[Path]:
    """SQLite files for `context` (one if the context inserts rows itself, else `variants` random fillings)."""
    cache_dir = Path(cache_dir or DEFAULT_CACHE)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{seed}\x00{context}\x00{gold_sql}".encode()).hexdigest()[:20]
    has_rows = re.search(r"(?i)\binsert\s+into\b", context) is not None
    paths = [cache_dir / f"{key}-{v}.sqlite" for v in range(1 if has_rows else variants)]
    for v, path in enumerate(paths):
        if path.is_file():
            continue
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(context)
            if not has_rows:
                _fill(conn, gold_sql, random.Random(f"{seed}-{v}"), rows)
            conn.commit()
        finally:
            conn.close()
        tmp.replace(path)
    return paths


def _fill(conn: sqlite3.Connection, gold_sql: str, rng: random.Random, rows: int) -> None:
    strings = re.findall(r"'((?:[^']|'')*)'", gold_sql) or []
    numbers = [float(n) if "." in n else int(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", gold_sql)]
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        for _ in range(rows):
            values = [_value(ctype or "", rng, strings, numbers) for _, _, ctype, *_ in columns]
            marks = ",".join("?" * len(values))
            try:
                conn.execute(f'INSERT INTO "{table}" VALUES ({marks})', values)
            except sqlite3.IntegrityError:
                pass  # a unique key drew the same value twice: skip the row


def _value(ctype: str, rng: random.Random, strings: list[str], numbers: list):
    t = ctype.upper()
    if any(k in t for k in ("INT", "NUMBER")):
        ints = [int(n) for n in numbers if float(n).is_integer()]
        return rng.choice(ints) if ints and rng.random() < 0.4 else rng.randint(0, 100)
    if any(k in t for k in ("REAL", "FLOA", "DOUB", "DEC", "NUM")):
        return rng.choice(numbers) if numbers and rng.random() < 0.4 else round(rng.uniform(0, 100), 2)
    if strings and rng.random() < 0.5:
        return rng.choice(strings).replace("''", "'")
    return rng.choice(WORDS) + str(rng.randint(1, 9))
