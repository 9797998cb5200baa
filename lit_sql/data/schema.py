"""Database schemas as the model sees them: CREATE TABLE statements (`ddl`) or one line per table (`compact`).

A schema is read from a SQLite file (`PRAGMA table_info` and `foreign_key_list`, so every database renders in
one normalised form whatever its original DDL looked like) or parsed from the CREATE TABLE text a dataset ships.
`shorten_schema` makes a schema fit a token budget without looking at the gold SQL.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence, Union

from lit_sql.data.values import value_words
from lit_sql.sql.execute import open_readonly
from lit_sql.sql.lexer import quote_identifier, split_statements, squeeze_spaces

SchemaFormat = Literal["ddl", "compact"]
SCHEMA_FORMATS = ("ddl", "compact")

# SQLite's keywords: the 147 of https://sqlite.org/lang_keywords.html (SQLite 3.40; the C API lists them with
# sqlite3_keyword_name, which Python's sqlite3 does not expose). A name in the schema shown to the model is
# quoted when it is one of them: SQLite takes some bare (`key`) but not others (`order`, `transaction`), and a
# model copies names as it sees them.
SQLITE_KEYWORDS = frozenset("""
ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY CASCADE
CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME
CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE
EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB GROUP
GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN
KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER
OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX
RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN
TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH
WITHOUT
""".lower().split())


@dataclass
class Column:
    name: str
    type: str = ""
    primary_key: bool = False
    values: tuple[str, ...] = ()  # value hints: cells the question mentions (`lit_sql.data.values`)


@dataclass
class Table:
    name: str
    columns: list[Column] = field(default_factory=list)
    # (columns, referenced table, referenced columns); referenced columns are empty when the DDL omits them
    foreign_keys: list[tuple[list[str], str, list[str]]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)  # sample rows, rendered as INSERT statements
    ddl: Optional[str] = None  # the dataset's own CREATE TABLE text, kept verbatim when it has one
    inserts: list[str] = field(default_factory=list)  # the dataset's own INSERT statements

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


@dataclass
class Schema:
    tables: list[Table]

    def render(self, format: SchemaFormat = "ddl", sample_rows: int = 0) -> str:
        if format not in SCHEMA_FORMATS:
            raise ValueError(f"schema format must be one of {SCHEMA_FORMATS}, got {format!r}")
        render = _render_ddl if format == "ddl" else _render_compact
        return "\n".join(render(t, sample_rows) for t in self.tables)

    def without_rows(self) -> "Schema":
        return Schema([replace(t, rows=[], inserts=[]) for t in self.tables])

    def keep(self, names: Sequence[str]) -> "Schema":
        keep = set(names)
        return Schema([t for t in self.tables if t.name in keep])

    @property
    def has_rows(self) -> bool:
        return any(t.rows or t.inserts for t in self.tables)


# ---- reading -----------------------------------------------------------------------------------------------
def read_schema(db_path: Union[str, Path], sample_rows: int = 0) -> Schema:
    """The schema of a SQLite database, with `sample_rows` rows of every table."""
    return _read_schema(_resolved(str(db_path)), sample_rows)


@lru_cache(maxsize=4096)
def _resolved(db_path: str) -> str:
    return str(Path(db_path).resolve())


@lru_cache(maxsize=512)
def _read_schema(db_path: str, sample_rows: int) -> Schema:
    conn = open_readonly(db_path)
    try:
        return _schema_from_connection(conn, sample_rows)
    finally:
        conn.close()


def _schema_from_connection(conn: sqlite3.Connection, sample_rows: int) -> Schema:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    tables = []
    for name in names:
        info = conn.execute(f"PRAGMA table_info({quote_identifier(name)})").fetchall()
        columns = [Column(c[1], (c[2] or "").strip().upper(), c[5] > 0) for c in info]
        groups: dict[int, tuple[list[str], str, list[str]]] = {}
        for fk in conn.execute(f"PRAGMA foreign_key_list({quote_identifier(name)})").fetchall():
            cols, _, refs = groups.setdefault(fk[0], ([], fk[2], []))
            cols.append(fk[3])
            if fk[4]:
                refs.append(fk[4])
        rows = (conn.execute(f"SELECT * FROM {quote_identifier(name)} LIMIT {int(sample_rows)}").fetchall()
                if sample_rows else [])
        tables.append(Table(name, columns, list(groups.values()), rows))
    return Schema(tables)


def schema_from_sql(text: str) -> Schema:
    """A schema from the CREATE TABLE (and INSERT) statements a dataset ships as its context.

    Each table keeps its statement for `ddl` as written (one written on one line with single spaces outside its
    literals); the statements are also run in an in-memory database to learn columns and keys for `compact`. A
    statement SQLite cannot run still renders, as its own text."""
    conn = sqlite3.connect(":memory:")
    tables: dict[str, Table] = {}
    for statement in split_statements(text):
        if "\n" not in statement:  # a one-line statement (as most contexts are) is shown with single spaces
            statement = squeeze_spaces(statement)
        match = re.match(r"create\s+(?:temp\w*\s+)?table\s+(?:if\s+not\s+exists\s+)?([`\"\[]?[\w.$ ]+?[`\"\]]?)\s*\(",
                         statement, re.I)
        if match:
            name = match.group(1).strip("`\"[]")
            try:
                conn.execute(statement)
                parsed = _schema_from_connection(conn, 0).tables
                table = next((t for t in parsed if t.name.lower() == name.lower()), Table(name))
            except sqlite3.Error:
                table = Table(name)
            table.ddl = statement + ";"
            tables[name.lower()] = table
            continue
        match = re.match(r"insert\s+into\s+([`\"\[]?[\w.$]+[`\"\]]?)", statement, re.I)
        if match and match.group(1).strip("`\"[]").lower() in tables:
            tables[match.group(1).strip("`\"[]").lower()].inserts.append(statement + ";")
        elif tables:  # CREATE INDEX, views, ...: kept with the last table so that nothing is lost
            list(tables.values())[-1].inserts.append(statement + ";")
    conn.close()
    return Schema(list(tables.values()))


# ---- rendering ---------------------------------------------------------------------------------------------
def quote(name: str) -> str:
    """`name` as the schema shown to the model writes it: bare where SQLite reads it bare as that name (a plain
    word, not a keyword), double-quoted otherwise. Queries the code runs use `quote_identifier` instead."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in SQLITE_KEYWORDS:
        return name
    return quote_identifier(name)


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return "NULL"  # blobs say nothing a model can use
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, int):
        return str(value)
    text = str(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return "'" + text.replace("'", "''") + "'"


def _column_def(c: Column, single_pk: bool) -> str:
    out = quote(c.name) + (f" {c.type}" if c.type else "")
    return out + (" PRIMARY KEY" if c.primary_key and single_pk else "")


def _hint(c: Column) -> str:
    """A column's value hints as SQL literals, e.g. `['Netherlands', 'France']`; "" without any."""
    return f"[{', '.join(map(literal, c.values))}]" if c.values else ""


def _fk_target(table: str, refs: list[str]) -> str:
    return f"{quote(table)}({', '.join(map(quote, refs))})" if refs else quote(table)


def _rows(t: Table, sample_rows: int) -> list[str]:
    if t.inserts:  # a text source's own statements stay whole (shortening may drop them)
        return list(t.inserts)
    return [f"INSERT INTO {quote(t.name)} VALUES ({', '.join(map(literal, r))});" for r in t.rows[:sample_rows]]


def _render_ddl(t: Table, sample_rows: int) -> str:
    if t.ddl is not None:
        return "\n".join([t.ddl, *_rows(t, sample_rows)])
    single_pk = len(t.primary_key) == 1
    lines = [_column_def(c, single_pk) for c in t.columns]
    hints = [_hint(c) for c in t.columns]
    if len(t.primary_key) > 1:
        lines.append(f"PRIMARY KEY ({', '.join(map(quote, t.primary_key))})")
    for cols, table, refs in t.foreign_keys:
        lines.append(f"FOREIGN KEY ({', '.join(map(quote, cols))}) REFERENCES {_fk_target(table, refs)}")
    hints += [""] * (len(lines) - len(hints))
    # A hint is an SQL comment after the column's comma, so the statement still runs as written.
    body = "\n".join(f"  {line}{',' if i < len(lines) - 1 else ''}{' -- values: ' + hint if hint else ''}"
                     for i, (line, hint) in enumerate(zip(lines, hints)))
    return "\n".join([f"CREATE TABLE {quote(t.name)} (\n{body}\n);", *_rows(t, sample_rows)])


def _render_compact(t: Table, sample_rows: int) -> str:
    if not t.columns:  # DDL SQLite could not run: the statement itself, on one line
        line = " ".join((t.ddl or f"CREATE TABLE {quote(t.name)} ()").split())
    else:
        fks = {cols[0]: _fk_target(table, refs) for cols, table, refs in t.foreign_keys if len(cols) == 1}
        parts = []
        for c in t.columns:
            part = quote(c.name) + (f" {c.type}" if c.type else "") + (" PK" if c.primary_key else "")
            part += f" -> {fks[c.name]}" if c.name in fks else ""
            parts.append(part + (f" {_hint(c)}" if c.values else ""))
        line = f"{quote(t.name)}({', '.join(parts)})"
    rows = _rows(t, sample_rows)
    if rows and not t.inserts:
        line += "\n  rows: " + ", ".join(f"({', '.join(map(literal, r))})" for r in t.rows[:sample_rows])
    elif rows:
        line += "\n  " + "\n  ".join(" ".join(r.split()) for r in rows)
    return line


def render_schema(db_path: Union[str, Path], format: SchemaFormat = "ddl", sample_rows: int = 0) -> str:
    """The schema of a SQLite database as CREATE TABLE statements (`ddl`) or one line per table (`compact`),
    with foreign keys and, if asked, `sample_rows` rows of each table as INSERT statements."""
    return read_schema(db_path, sample_rows).render(format, sample_rows)


# ---- shortening ----------------------------------------------------------------------------------------------
def _words(text: str) -> set[str]:
    """The words of a name or question as value hints match them (`value_words`), camelCase split apart."""
    return set(value_words(re.sub(r"([a-z])([A-Z])", r"\1 \2", text)))


def table_relevance(schema: Schema, question: str) -> dict[str, float]:
    """How strongly each table relates to the question, by word overlap with its name and its columns.
    Tables the question names get a large score, and so, a little, do the tables they have foreign keys with."""
    q = _words(question)
    scores = {}
    for t in schema.tables:
        name_hits = len(_words(t.name) & q)
        column_hits = len(set().union(*(_words(c.name) for c in t.columns)) & q) if t.columns else 0
        scores[t.name] = 10.0 * name_hits + column_hits
    named = {n for n, s in scores.items() if s >= 10}
    for t in schema.tables:  # keep the bridge tables that join named tables together
        linked = {table for _, table, _ in t.foreign_keys}
        if t.name in named:
            for other in linked:
                if other in scores:
                    scores[other] += 0.5
        elif linked & named:
            scores[t.name] += 0.5 * len(linked & named)
    return scores


def named_tables(schema: Schema, question: str) -> set[str]:
    """The tables whose name the question mentions: shortening never drops them."""
    return {name for name, score in table_relevance(schema, question).items() if score >= 10}


def shorten_schema(schema: Schema, question: str, fits: Callable[[Schema], bool],
                   relevance: Optional[dict[str, float]] = None) -> tuple[Optional[Schema], list[str]]:
    """The largest version of `schema` for which `fits` is true, and the steps taken; (None, steps) if none fits.

    Never looks at the gold SQL (that would leak the answer): first the sample rows go, then whole tables, least
    related to the question first: by `relevance` (e.g. embedding similarity, `lit_sql.retrieval`) when given,
    else by word overlap. Tables whose name the question mentions are never dropped."""
    steps = []
    if fits(schema):
        return schema, steps
    if schema.has_rows:
        schema = schema.without_rows()
        steps.append("dropped sample rows")
        if fits(schema):
            return schema, steps
    named = named_tables(schema, question)
    order = {t.name: i for i, t in enumerate(schema.tables)}
    droppable = [t.name for t in schema.tables if t.name not in named]
    rank = relevance if relevance is not None else table_relevance(schema, question)
    droppable.sort(key=lambda n: (rank.get(n, float("-inf")), -order[n]))  # least related first, later tables first
    # Fewest dropped tables that fit: dropping more never makes a schema longer, so bisect.
    lo, hi = 1, len(droppable)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = schema.keep([t.name for t in schema.tables if t.name not in set(droppable[:mid])])
        if candidate.tables and fits(candidate):
            best, hi = (mid, candidate), mid - 1
        else:
            lo = mid + 1
    if best is None:
        return None, steps
    steps.append("dropped tables")
    return best[1], steps
