"""Value hints (the idea of BRIDGE, Lin et al. 2020): the cells of a database's text columns that a question
mentions, shown beside their column in the schema.

A question says "singers from the Netherlands"; the database stores 'Netherlands' in `singer.country`. Without
the hint a small model guesses the column, the spelling and the case ('netherlands', `singer.nationality`);
with it, the prompt says where the value lives and how it is written. The same hints are added in training and
at inference (through `PromptRecipe.with_value_hints`), so the model learns to use them.

How a hint is found, cheaply and with bounds:
- a database's distinct short text values are read once per process (through the SQL sandbox's read-only
  connection, with a deadline and a cap on values per column), into an index from each word to the values
  holding it;
- a value is a hint when every word of it occurs among the question's words (lower case, plural -s folded),
  at least one of them neither a stop word nor a single letter: the way questions quote names, places and
  categories;
- per column the most specific values (most words) are kept, a few per column and per question, so a prompt
  grows by a bounded number of tokens.
Exact word containment is the conservative choice (fuzzy matching would also find values the question does
not mean), and it costs one dictionary lookup per question word.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from lit_sql.data.schema import Schema

MAX_VALUE_CHARS = 40  # longer cells are prose, not names a question quotes
MAX_VALUE_WORDS = 6
VALUES_PER_COLUMN = 2000  # distinct values read from one column
INDEX_SECONDS = 2.0  # reading one database's values; columns not read by then get no hints
HINTS_PER_COLUMN = 3
HINTS_PER_QUESTION = 8

STOP_WORDS = frozenset("""
a an the of in on at to for from by with and or not no is are was were be been has have had do does did what which
who whom whose where when how many much list show give find name names all any each every their its his her them
they it this that these those than more most less least average number count total there than as per only also
same different other both between over under after before into out up down about than one two three first last
""".split())

_WORD = re.compile(r"[a-z0-9]+")


def value_words(text: str) -> tuple[str, ...]:
    """Lower-case words with a plural -s (and -ies) folded, the unit of matching on both sides."""
    out = []
    for w in _WORD.findall(text.lower()):
        if len(w) > 3 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return tuple(out)


@dataclass(frozen=True)
class _Entry:
    table: str
    column: str
    value: str
    words: frozenset


class ValueIndex:
    """The short text values of one database, findable by any of their words."""

    def __init__(self, entries: list[_Entry]) -> None:
        self.by_word: dict[str, list[_Entry]] = defaultdict(list)
        for e in entries:
            for w in e.words:
                self.by_word[w].append(e)
        self.size = len(entries)

    def hints(self, question: str, per_column: int = HINTS_PER_COLUMN,
              per_question: int = HINTS_PER_QUESTION) -> dict[tuple[str, str], list[str]]:
        """{(table, column): values} for the values whose every word the question holds."""
        q = set(value_words(question))
        found: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
        seen = set()
        for w in q - STOP_WORDS:
            for e in self.by_word.get(w, ()):
                if id(e) not in seen and e.words <= q:
                    seen.add(id(e))
                    found[(e.table, e.column)].append(e)
        ranked = []
        for key, entries in found.items():
            # Most words first; a value whose words another hint of the column holds adds nothing ("John" beside
            # "John Smith").
            entries.sort(key=lambda e: (-len(e.words), len(e.value), e.value))
            kept: list[_Entry] = []
            for e in entries:
                if not any(e.words < k.words for k in kept):
                    kept.append(e)
            for rank, e in enumerate(kept[:per_column]):
                ranked.append((rank, -len(e.words), key, e.value))
        ranked.sort(key=lambda r: r[:2])
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for _, _, key, value in ranked[:per_question]:
            out[key].append(value)
        return dict(out)


_INDEXES: dict[tuple, ValueIndex] = {}


def value_index(db_path: Union[str, Path]) -> ValueIndex:
    """The value index of a SQLite file, read once per process (again if the file changes)."""
    path = str(Path(db_path).resolve())
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _INDEXES:
        _INDEXES[key] = _read_index(path)
    return _INDEXES[key]


def _is_text_type(declared: str) -> bool:
    # SQLite's affinity rules: a declared type holding CHAR, CLOB or TEXT is text; no type may hold anything.
    declared = declared.upper()
    return not declared or any(t in declared for t in ("CHAR", "CLOB", "TEXT"))


def _read_index(path: str) -> ValueIndex:
    from lit_sql.data.schema import read_schema
    from lit_sql.sql.execute import open_sandboxed
    from lit_sql.sql.lexer import quote_identifier

    schema = read_schema(path)
    conn, deadline = open_sandboxed(path)
    deadline.at = time.monotonic() + INDEX_SECONDS
    entries: list[_Entry] = []
    try:
        for table in schema.tables:
            for column in table.columns:
                if not _is_text_type(column.type):
                    continue
                name = quote_identifier(column.name)
                sql = (f"SELECT DISTINCT {name} FROM {quote_identifier(table.name)} WHERE typeof({name}) = 'text' "
                       f"AND length({name}) BETWEEN 1 AND {MAX_VALUE_CHARS} LIMIT {VALUES_PER_COLUMN}")
                for (value,) in conn.execute(sql):
                    if any(ch < " " for ch in value):
                        continue  # a line break or tab in a hint would break the schema's layout
                    words = value_words(value)
                    # A value needs a word that says something: not only stop words or single letters ('D', 'M').
                    if len(words) <= MAX_VALUE_WORDS and any(len(w) > 1 and w not in STOP_WORDS for w in words):
                        entries.append(_Entry(table.name, column.name, value, frozenset(words)))
    except sqlite3.Error as e:  # the deadline passed, or a table SQLite cannot read: what was read is kept
        print(f"note: value hints for {Path(path).name} cover only what was read before: {e}", file=sys.stderr)
    finally:
        conn.close()
    return ValueIndex(entries)


def add_value_hints(schema: "Schema", db_path: Union[str, Path], question: str) -> "Schema":
    """`schema` with the values of `db_path` that `question` mentions beside their columns; the same object when
    there are none (callers cache rendered text by schema)."""
    from dataclasses import replace

    from lit_sql.data.schema import Schema

    hints = value_index(db_path).hints(question)
    if not hints:
        return schema
    tables = []
    for t in schema.tables:
        if any(table == t.name for table, _ in hints):
            columns = [replace(c, values=tuple(hints.get((t.name, c.name), ()))) for c in t.columns]
            t = replace(t, columns=columns)
        tables.append(t)
    return Schema(tables)
