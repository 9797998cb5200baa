"""Databases for datasets that ship only CREATE TABLE text (sql-create-context, gretel).

The context's statements are run in a fresh SQLite file. A context that inserts rows gives one database, its
own. One without rows gives `variants` databases filled with random rows (as test-suite evaluation does:
several databases catch queries that are right on one by luck), with values that fit each column's type and,
often, the literals of the gold query, so that `WHERE name = 'Bob'` selects something.

Files are cached under `cache_dir/<hash of the context>/`, named by a hash of everything else that shapes
them (gold literals, seed, sizes), written atomically, and fully determined by their inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from lit_sql.sql.lexer import quote_identifier, split_statements

DEFAULT_CACHE = Path(os.environ.get("LIT_SQL_CACHE", Path.home() / ".cache" / "lit_sql")) / "context_dbs"
WORDS = ["alpha", "beta", "gamma", "delta", "north", "south", "red", "blue", "green", "london", "paris", "tokyo"]
LITERAL_RATE = 0.5  # chance that a value is drawn from the gold query's literals for its column
_SOURCE_DIALECTS = ("mysql", "postgres", "tsql")  # what gretel contexts are written in when not SQLite


@dataclass
class ContextDatabases:
    paths: list[Path]
    errors: list[str] = field(default_factory=list)  # statements that failed in every dialect, with why


def build_databases(context: str, gold_sql: str = "", variants: int = 3, seed: int = 0, rows: int = 20,
                    cache_dir: Optional[Union[str, Path]] = None) -> list[Path]:
    """SQLite files for `context`: one if it inserts rows itself, else `variants` random fillings."""
    return prepare_databases(context, gold_sql, variants, seed, rows, cache_dir).paths


def prepare_databases(context: str, gold_sql: str = "", variants: int = 3, seed: int = 0, rows: int = 20,
                      cache_dir: Optional[Union[str, Path]] = None) -> ContextDatabases:
    """Like `build_databases`, also returning the statements of `context` that could not be run."""
    if variants < 1 or rows < 1:
        raise ValueError(f"variants ({variants}) and rows ({rows}) must be at least 1")
    statements = split_statements(context)
    has_rows = any(re.match(r"(?i)insert\b", s) for s in statements)
    literals = {} if has_rows else literals_by_column(gold_sql)
    folder = Path(cache_dir or DEFAULT_CACHE) / _digest(context)
    fill_key = _digest(json.dumps([sorted((k, sorted(map(repr, v))) for k, v in literals.items()), seed, rows]))
    paths = [folder / f"{fill_key}-{v}.sqlite" for v in range(1 if has_rows else variants)]
    errors_file = folder / f"{fill_key}.errors.json"
    if all(p.is_file() for p in paths):
        errors = json.loads(errors_file.read_text()) if errors_file.is_file() else []
        return ContextDatabases(paths, errors)

    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for v, path in enumerate(paths):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # several processes may build the same file
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            errors = [e for s in statements if (e := _run_statement(conn, s))]
            if not has_rows:
                _fill(conn, literals, random.Random(f"{seed}-{v}"), rows)
            conn.commit()
        finally:
            conn.close()
        tmp.replace(path)
    if errors:
        errors_file.write_text(json.dumps(errors))
    return ContextDatabases(paths, errors)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# MySQL and Postgres column and table syntax that SQLite rejects or misreads, rewritten to what it means in
# SQLite (types otherwise only guide the random values). CREATE TABLE statements always go through it, so that
# an auto-increment key becomes SQLite's INTEGER PRIMARY KEY and numbers the inserted rows; other statements
# only when SQLite refuses them as written (a rewrite could touch their literals).
_RELAX = [
    (re.compile(r"(?i)\b(?:BIG|SMALL|TINY|MEDIUM)?INT(?:EGER)?(?:\s*\(\d+\))?([^,()]*?)\s*\bAUTO_INCREMENT\b(?!\s*=)"),
     r"INTEGER\1"),
    (re.compile(r"(?i)\b(?:BIG|SMALL)?SERIAL\b"), "INTEGER"),
    (re.compile(r"(?i)\b(?:ENUM|SET)\s*\((?:[^()']|'(?:[^']|'')*')*\)"), "TEXT"),
    (re.compile(r"(?i)\bARRAY\s*<[^>]*>|\b\w+\s*\[\]"), "TEXT"),
    (re.compile(r"(?i)\bCOMMENT\s+'(?:[^']|'')*'"), ""),
    (re.compile(r"(?i)\bAUTO_INCREMENT\b(?!\s*=)|\bUNSIGNED\b|\bZEROFILL\b|\bON\s+UPDATE\s+CURRENT_TIMESTAMP\b"), ""),
    (re.compile(r"(?i)\b(?:CHARACTER\s+SET|CHARSET|COLLATE)\s+\w+"), ""),
    # table options after the closing parenthesis: ENGINE=InnoDB DEFAULT CHARSET=utf8 AUTO_INCREMENT=3 ...
    (re.compile(r"(?is)\)\s*(?:ENGINE|DEFAULT|AUTO_INCREMENT|PARTITION|WITH|TABLESPACE|ROW_FORMAT)\b[^)]*$"), ")"),
]


def _relax(statement: str) -> str:
    for pattern, replacement in _RELAX:
        statement = pattern.sub(replacement, statement)
    return statement


def _translations(statement: str):
    """The statement as written and relaxed (relaxed first for CREATE TABLE), then translated by sqlglot from
    the dialects gretel uses."""
    relaxed = _relax(statement)
    yield from (relaxed, statement) if re.match(r"(?i)create\s+table\b", statement) else (statement, relaxed)
    import logging

    import sqlglot  # only contexts that SQLite rejects pay for the import

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns about every property it drops
    for dialect in _SOURCE_DIALECTS:
        try:
            translated = sqlglot.transpile(statement, read=dialect, write="sqlite")
        except Exception:  # sqlglot's ParseError and friends: this dialect does not read it
            continue
        if len(translated) == 1:
            yield _relax(translated[0])


def _run_statement(conn: sqlite3.Connection, statement: str) -> Optional[str]:
    """Run one statement of the context, in the first form SQLite accepts. Returns an error naming the
    statement and SQLite's complaint about it as written when no form works, else None."""
    first_error: Optional[sqlite3.Error] = None
    for attempt in _translations(statement):
        try:
            conn.execute(attempt)
            return None
        except sqlite3.Error as e:
            first_error = first_error or e
    return f"{statement[:200]!r}: {first_error}"


def literals_by_column(gold_sql: str) -> dict[str, list]:
    """Literals of `gold_sql` keyed by the lower-case column name they are compared with ("" for those with no
    column: they may go anywhere). LIKE patterns lose their % and _ so that the value matches."""
    if not gold_sql.strip():
        return {}
    import sqlglot
    from sqlglot import exp

    found: dict[str, list] = defaultdict(list)
    try:
        tree = sqlglot.parse_one(gold_sql, read="sqlite")
    except Exception:  # unparseable gold: take every literal by pattern, tied to no column
        for text in re.findall(r"'((?:[^']|'')*)'", gold_sql):
            found[""].append(text.replace("''", "'"))
        for number in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", gold_sql):
            found[""].append(float(number) if "." in number else int(number))
        return dict(found)
    for literal in tree.find_all(exp.Literal):
        value = literal.this if literal.is_string else _number(literal.this)
        if value is None:
            continue
        parent = literal.parent
        if isinstance(parent, exp.Neg):  # -5 is Neg(5)
            value, parent = -value, parent.parent
        if isinstance(parent, (exp.Like, exp.ILike)) and isinstance(value, str):
            value = value.replace("%", "").replace("_", "x")  # "_" is any one character
        column = next((c for c in (parent.args.get("this"), parent.args.get("expression"))
                       if isinstance(c, exp.Column)), None) if parent is not None else None
        if column is None and isinstance(parent, exp.In):
            column = parent.this if isinstance(parent.this, exp.Column) else None
        found[column.name.lower() if column is not None else ""].append(value)
    return dict(found)


def _number(text: str) -> Optional[Union[int, float]]:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def _fill(conn: sqlite3.Connection, literals: dict[str, list], rng: random.Random, rows: int) -> None:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        # (cid, name, type, notnull, dflt, pk)
        columns = conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
        marks = ",".join("?" * len(columns))
        inserted, attempts = 0, 0
        while inserted < rows and attempts < rows * 5:  # unique keys may reject some draws
            attempts += 1
            values = [_value(name, ctype or "", literals, rng, rows) for _, name, ctype, *_ in columns]
            try:
                conn.execute(f"INSERT INTO {quote_identifier(table)} VALUES ({marks})", values)
                inserted += 1
            except sqlite3.IntegrityError:
                continue  # a unique or NOT NULL rule refused the row: draw another


def _value(column: str, ctype: str, literals: dict[str, list], rng: random.Random, rows: int):
    """A random value for a column of declared type `ctype`, often one the gold query looks for."""
    t = ctype.upper()
    own = literals.get(column.lower(), [])
    if own and rng.random() < LITERAL_RATE:
        value = rng.choice(own)
        if isinstance(value, (int, float)):
            value += rng.choice((-1, 0, 1))  # on both sides of a threshold such as `age > 56`
        return value
    anywhere = literals.get("", [])
    if "INT" in t or "BOOL" in t or "SERIAL" in t:
        if "BOOL" in t:
            return rng.randint(0, 1)
        numbers = [v for v in anywhere if isinstance(v, int)]
        # small range: keys shared between tables then join, and counts and groups have several members
        return rng.choice(numbers) if numbers and rng.random() < 0.2 else rng.randint(1, 2 * rows)
    if any(k in t for k in ("REAL", "FLOA", "DOUB", "DEC", "NUM")):
        return round(rng.uniform(0, 100), 2)
    if "DATE" in t or "TIME" in t:
        return f"{rng.randint(1990, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    strings = [v for v in anywhere if isinstance(v, str)]
    if strings and rng.random() < 0.2:
        return rng.choice(strings)
    return f"{rng.choice(WORDS)}{rng.randint(1, 9)}"
