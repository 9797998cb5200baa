"""Schema-grounded decoding: while a model writes SQL for a known database, every name it writes must exist.

The idea is PICARD's (Scholak et al., 2021): check each candidate token against what the SQL written so far
allows, and take the most likely token that passes. Ours is a small incremental lexer rather than a parser, and
it guards names only, because that is what small models get wrong most (`no such column` and `no such table`
were two thirds of the failures of a fine-tuned 135M model on unseen databases):

- after FROM or JOIN (and after a comma in a FROM list) a word must be one of the database's tables;
- a word followed by `.` must be a table, an alias the query defined, or look like an alias that is yet to be
  defined (`T1`, `s`: Spider-style queries use their aliases in SELECT before FROM defines them);
- after `alias.`, a word must be a column of that alias's table (any table's, while the alias is still unknown);
- any other word must be a keyword, a function, a table, an alias, a column alias defined with AS, or a column:
  of the tables in FROM clauses so far, or of any table before the first FROM;
- a word still being written must be the beginning of such a name (case-insensitive); names in backticks or
  brackets are checked the same way, with their spaces and punctuation;
- strings, numbers, double-quoted text (SQLite reads it as a string when no column has that name), comments and
  everything after the statement ends stay free, and so do new aliases (after AS, or after a table in FROM).

A row is only checked once its answer looks like SQL (it starts with SELECT or WITH, after any code fence), so a
model that answers in prose is left alone. A linked answer (`PromptRecipe.target_format`) first names the tables
and columns its query uses, on one line (`Links: singer(name, country), concert(year)`): there each name must be a
table of the database or, inside a table's parentheses, one of that table's columns; its SQL, after `SQL: ` on the
next line, is checked as above. `GroundedDecoding` applies the check to batched generation: a row whose
chosen token passes keeps it (greedy answers that are already valid never change), otherwise the most likely of
its top candidates that passes is taken, and when none passes the row decodes that step unconstrained (the rest of
its query, or of its links line, goes unchecked): decoding never stalls.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from lit_sql.data.prompt import SQL_HEADING
from lit_sql.data.schema import SQLITE_KEYWORDS
from lit_sql.sql.links import LINKS_LABEL

if TYPE_CHECKING:
    from lit_sql.data.schema import Schema

# SQLite's keywords, and words other dialects' habits bring (the model may write them; SQLite reads TRUE/FALSE).
KEYWORDS = frozenset(k.lower() for k in SQLITE_KEYWORDS) | {"true", "false", "ilike", "top"}
FUNCTIONS = frozenset("""
count sum avg min max total abs length lower upper round substr substring instr trim ltrim rtrim coalesce ifnull
nullif iif strftime date time datetime julianday unixepoch group_concat string_agg random typeof printf format
char hex quote unicode zeroblob sign ceil ceiling floor sqrt power pow exp ln log log10 mod pi likely unlikely
lag lead rank dense_rank row_number ntile first_value last_value nth_value percent_rank cume_dist json
json_extract
integer int real text numeric float double varchar char blob boolean decimal bigint smallint
""".split())
# A qualifier the query has not defined yet may still become an alias (`SELECT T1.name FROM singer AS T1`).
_ALIAS_LIKE = re.compile(r"[a-z]{1,3}[0-9]{0,2}")
# Keywords after which a FROM list is over (a comma no longer introduces a table).
_ENDS_FROM = frozenset({"where", "group", "order", "having", "limit", "on", "union", "intersect", "except", "using",
                        "window", "select", "values"})
# Words that may follow a table in FROM without being its alias.
_AFTER_TABLE = frozenset({"as", "join", "inner", "left", "right", "full", "outer", "cross", "natural", "on", "using",
                          "where", "group", "order", "having", "limit", "union", "intersect", "except", "window",
                          "indexed", "not"})
_OPENERS = ("select", "with")
_LINKS_OPENER = LINKS_LABEL.strip().lower()
_SQL_LABEL = SQL_HEADING.strip().lower()
# Where a links line stands: a table name is expected or being written, a table's column list is open, a table
# is complete (a comma or the line's end follows), or the line is no longer checked.
_LINKING = frozenset({"table", "column", "closed", "free"})


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$\ufffd"  # \ufffd: part of a multi-byte letter split across tokens


class SchemaNames:
    """The names of one database in the forms the checks need: lower-case, sorted for prefix search."""

    def __init__(self, tables: dict[str, Sequence[str]]) -> None:
        self.columns = {t.lower(): frozenset(c.lower() for c in cols) for t, cols in tables.items()}
        self.tables = frozenset(self.columns)
        self.all_columns = frozenset(c for cols in self.columns.values() for c in cols)
        self._sorted: dict[frozenset, list[str]] = {}
        self._scoped: dict[frozenset, frozenset] = {}

    def columns_of(self, tables: frozenset) -> frozenset:
        """The columns of `tables` (cached: asked at every character of a name)."""
        found = self._scoped.get(tables)
        if found is None:
            found = self._scoped[tables] = frozenset(c for t in tables for c in self.columns.get(t, ()))
        return found

    @classmethod
    def from_schema(cls, schema: "Schema") -> "SchemaNames":
        return cls({t.name: [c.name for c in t.columns] for t in schema.tables})

    def sorted(self, names: frozenset) -> list[str]:
        """`names` sorted (cached): prefix checks bisect them."""
        found = self._sorted.get(names)
        if found is None:
            found = self._sorted[names] = sorted(names)
        return found


def _has_prefix(names: Sequence[str], prefix: str) -> bool:
    i = bisect.bisect_left(names, prefix)
    return i < len(names) and names[i].startswith(prefix)


_KEYWORDS_SORTED = sorted(KEYWORDS)
_FUNCTIONS_SORTED = sorted(FUNCTIONS)


@dataclass(frozen=True)
class SQLState:
    """Where an incremental lexer stands in the SQL written so far, and what the query has defined.

    Immutable: a candidate token is checked with `state.feed(text, names)`, which returns the state after it, or
    None when the text writes a name the schema does not allow; a rejected token leaves the row's state as it was.
    """

    head: str = ""  # the answer so far, until it is known to be SQL (started) or not (off)
    started: bool = False
    off: bool = False  # prose, a finished statement, or what we do not follow (WITH): nothing is checked
    quote: str = ""  # inside a string or a quoted name: its closing character
    quoted_name: bool = False  # the quote is a name's (backticks, brackets), checked like a word
    number: bool = False  # inside a number (words starting with a digit are numbers: free)
    comment: bool = False
    word: str = ""  # the name being written, lower-case
    qualifier: Optional[str] = None  # set after `X.`: X's table ("" when X is not known yet)
    expect: str = "any"  # any | table (after FROM/JOIN) | alias (after AS) | after_table (alias or keyword)
    prev: str = ""  # the last finished word or punctuation, lower-case
    in_from: bool = False  # in a FROM list: a comma there introduces another table
    select_open: bool = False  # between SELECT and its FROM: columns of any table may appear
    scope: frozenset = frozenset()  # tables named in FROM/JOIN so far
    aliases: tuple = ()  # ((alias, its table or ""), ...)
    column_aliases: frozenset = frozenset()
    last_table: str = ""  # the table just named in FROM, which an alias right after it names (links: whose columns)
    links: str = ""  # in a links line: one of _LINKING; "done" once it ended (the SQL then follows its label)

    def feed(self, text: str, names: SchemaNames) -> Optional["SQLState"]:
        state: Optional[SQLState] = self
        for ch in text:
            if state.off:
                return state
            state = state._step(ch, names)
            if state is None:
                return None
        return state

    def end(self, names: SchemaNames) -> bool:
        """Whether the answer may end here: no name left half-written."""
        return self.off or not self.started or self.feed(" ", names) is not None

    def unchecked(self) -> "SQLState":
        """The state once no candidate continues this one: a links line goes unchecked to its end (the SQL after it
        is still checked); anywhere else, the rest of the answer does."""
        if self.links in _LINKING:
            return replace(self, links="free", word="", quote="")
        return replace(self, off=True)

    # ---- one character -------------------------------------------------------------------------------------
    def _step(self, ch: str, names: SchemaNames) -> Optional["SQLState"]:
        if self.links in _LINKING:
            return self._linking(ch, names)
        if not self.started:
            return self._opening(ch, names)
        if self.comment:
            return replace(self, comment=ch != "\n")
        if self.quote:
            return self._quoted(ch, names)
        if self.number:
            if _is_word_char(ch) or ch == ".":
                return self
            return replace(self, number=False)._punct(ch)
        if _is_word_char(ch):
            if not self.word and ch.isdigit():
                return replace(self, number=True, prev="0")
            word = self.word + ch.lower()
            return replace(self, word=word) if self._may_begin(word, names) else None
        if self.word:
            state = self._finish(self.word, names, qualifies=ch == ".")
            return None if state is None else state._punct(ch)
        return self._punct(ch)

    def _opening(self, ch: str, names: SchemaNames) -> Optional["SQLState"]:
        """Before the answer is known to be SQL: wait for SELECT or WITH (after any code fence); prose stops
        the checks for good."""
        head = self.head + ch
        text = head.lstrip()
        if text.startswith("```"):
            newline = text.find("\n")
            if newline < 0:
                return replace(self, head=head)
            text = text[newline + 1:].lstrip()
        lowered = text.lower()
        if self.links == "done":  # after a links line, the SQL follows its label
            if len(lowered) < len(_SQL_LABEL) and _SQL_LABEL.startswith(lowered):
                return replace(self, head=head)
            if lowered.startswith(_SQL_LABEL):
                text = text[len(_SQL_LABEL):].lstrip()
                lowered = text.lower()
        elif len(lowered) < len(_LINKS_OPENER) and _LINKS_OPENER.startswith(lowered):
            return replace(self, head=head)  # may still become a links line
        elif lowered.startswith(_LINKS_OPENER):
            return replace(self, head="", links="table").feed(text[len(_LINKS_OPENER):], names)
        for opener in _OPENERS:
            if len(lowered) <= len(opener) and opener.startswith(lowered):
                return replace(self, head=head)  # may still become the opener
            if lowered.startswith(opener) and not _is_word_char(lowered[len(opener)]):
                if opener == "with":
                    return replace(self, off=True)  # common table expressions: names we do not follow
                return SQLState(started=True).feed(text, names)
        return replace(self, off=True)

    # ---- a links line ----------------------------------------------------------------------------------------
    def _linking(self, ch: str, names: SchemaNames) -> Optional["SQLState"]:
        """One character of `Links: singer(name, country), concert(year)`; names in double quotes (as the schema
        renders `"Song Name"`) are checked the same way. The line ends at its newline, checked or not."""
        if ch == "\n":
            return replace(self, links="done", head="", word="", quote="", last_table="")
        if self.links == "free":
            return self
        if self.quote:  # inside a double-quoted name
            return replace(self, quote="") if ch == '"' else self._link_word(self.word + ch.lower(), names)
        if self.links == "closed":  # after a complete table: the next one follows a comma
            if ch == ",":
                return replace(self, links="table")
            return self if ch.isspace() else None
        if _is_word_char(ch):
            return self._link_word(self.word + ch.lower(), names)
        if ch == '"' and not self.word:
            return replace(self, quote='"')
        if ch.isspace() and not self.word:
            return self
        # Any other character ends the name being written, which must then be whole.
        word, state = self.word, replace(self, word="")
        if word and "\ufffd" not in word and word not in self._link_names(names):
            return None
        if self.links == "table":
            if not word:
                return None
            if ch == "(":
                return replace(state, links="column", last_table=word)
            if ch == ",":
                return state
            return replace(state, links="closed") if ch.isspace() else None
        if ch == ")":  # the end of a table's columns
            return replace(state, links="closed", last_table="")
        return state if ch == "," or ch.isspace() else None

    def _link_names(self, names: SchemaNames) -> frozenset:
        """The names allowed where the links line stands: tables, or the columns of the table being listed."""
        if self.links == "column":
            return names.columns.get(self.last_table, frozenset())
        return names.tables

    def _link_word(self, word: str, names: SchemaNames) -> Optional["SQLState"]:
        if "\ufffd" in word or _has_prefix(names.sorted(self._link_names(names)), word):
            return replace(self, word=word)
        return None

    def _quoted(self, ch: str, names: SchemaNames) -> Optional["SQLState"]:
        if ch != self.quote:
            if not self.quoted_name:
                return self
            word = self.word + ch.lower()
            return replace(self, word=word) if self._may_begin(word, names) else None
        if not self.quoted_name:
            return replace(self, quote="", prev="'")
        return replace(self, quote="", quoted_name=False)._finish(self.word, names, qualifies=False, quoted=True)

    def _punct(self, ch: str) -> "SQLState":
        if ch in "'\"":
            return replace(self, quote=ch)
        if ch in "`[":
            return replace(self, quote="`" if ch == "`" else "]", quoted_name=True)
        if ch == ";":
            return replace(self, off=True)  # one statement: what follows is not run
        if ch == "-" and self.prev == "-":
            return replace(self, comment=True)
        if ch.isspace() or ch == ".":
            return self  # a qualifier was recorded when its word finished
        state = replace(self, qualifier=None, prev=ch)
        if ch == "(":
            return replace(state, expect="any", in_from=False)
        if ch == "," and self.in_from:
            return replace(state, expect="table")
        return replace(state, expect="any")

    # ---- names ---------------------------------------------------------------------------------------------
    def _alias_table(self, name: str) -> Optional[str]:
        for alias, table in reversed(self.aliases):
            if alias == name:
                return table
        return None

    def _columns(self, names: SchemaNames) -> frozenset:
        """Bare columns allowed here: any table's in a SELECT list before its FROM, else the tables in scope."""
        if self.select_open or not self.scope:
            return names.all_columns
        return names.columns_of(self.scope)

    def _qualified_columns(self, names: SchemaNames) -> frozenset:
        table = names.columns.get(self.qualifier) if self.qualifier else None
        return table if table is not None else names.all_columns

    def _may_begin(self, word: str, names: SchemaNames) -> bool:
        """Whether `word` can still grow into a name allowed here."""
        if "\ufffd" in word:
            return True
        if self.qualifier is not None:
            return _has_prefix(names.sorted(self._qualified_columns(names)), word)
        if self.expect in ("alias", "after_table"):
            return True  # a new alias may be any name (after a table, an alias or a keyword follows)
        tables = names.sorted(names.tables | frozenset(a for a, _ in self.aliases))
        if self.expect == "table":
            return _has_prefix(tables, word)
        if _ALIAS_LIKE.fullmatch(word):
            return True  # may become the qualifier of an alias defined later
        return any(_has_prefix(lst, word) for lst in (
            names.sorted(self._columns(names)), tables, _KEYWORDS_SORTED, _FUNCTIONS_SORTED,
            sorted(self.column_aliases)))

    def _finish(self, word: str, names: SchemaNames, qualifies: bool, quoted: bool = False) -> Optional["SQLState"]:
        """The state after `word` is complete, or None when it is not a name allowed here."""
        state = replace(self, word="", prev=word)
        if "\ufffd" in word:
            return replace(state, qualifier=None, expect="any")
        if qualifies:  # `word.`
            table = word if word in names.tables else self._alias_table(word)
            if table is None and not _ALIAS_LIKE.fullmatch(word):
                return None
            return replace(state, qualifier=table or "", expect="any")
        if self.qualifier is not None:  # `X.word`
            if word not in self._qualified_columns(names):
                return None
            return replace(state, qualifier=None, expect="any")
        if self.expect == "alias":
            if self.last_table or self.in_from:  # FROM t AS a
                return replace(state, aliases=self.aliases + ((word, self.last_table),), last_table="",
                               expect="any")
            return replace(state, column_aliases=self.column_aliases | {word}, expect="any")  # SELECT x AS a
        if self.expect == "after_table" and (quoted or word not in _AFTER_TABLE):
            return replace(state, aliases=self.aliases + ((word, self.last_table),), last_table="", expect="any")
        if self.expect == "table":
            if word in names.tables or self._alias_table(word) is not None:
                return replace(state, scope=self.scope | {word}, last_table=word, expect="after_table")
            return None
        if not quoted and word in KEYWORDS:
            return state._keyword(word)
        if (not quoted and word in FUNCTIONS) or word in self._columns(names) or word in names.tables \
                or self._alias_table(word) is not None or word in self.column_aliases:
            return replace(state, expect="any")
        return None

    def _keyword(self, word: str) -> "SQLState":
        if word in ("from", "join"):
            return replace(self, expect="table", in_from=True, select_open=False, last_table="")
        if word == "as":
            return replace(self, expect="alias", last_table=self.last_table if self.expect == "after_table" else "")
        if word == "with":
            return replace(self, off=True)
        state = replace(self, expect="any")
        if word == "select":
            state = replace(state, select_open=True)
        if word in _ENDS_FROM:
            state = replace(state, in_from=False, last_table="")
        return state


# ---- batched decoding -------------------------------------------------------------------------------------
@dataclass
class GroundedDecoding:
    """Schema checks for batched generation (`lit_sql.generation.generate_batch`): one state per row; rows
    without names (no known database) decode freely.

    candidates: how many of a row's most likely tokens are tried, most likely first, when its choice fails.
    """

    names: list[Optional[SchemaNames]]
    texts: list[str]  # `Tokenizer.token_texts()`
    end_tokens: frozenset = frozenset()  # ids that end an answer: allowed only where a name is complete
    candidates: int = 64
    states: list[SQLState] = field(default_factory=list)
    replaced: int = 0  # choices replaced by a passing candidate
    unconstrained: int = 0  # steps where no candidate passed

    def __post_init__(self) -> None:
        self.states = [SQLState() for _ in self.names]

    def _after(self, row: int, token: int) -> Optional[SQLState]:
        state, names = self.states[row], self.names[row]
        if token in self.end_tokens:
            return state if state.end(names) else None
        return state.feed(self.texts[token] if token < len(self.texts) else "", names)

    def choose(self, rows: Sequence[int], logits: torch.Tensor, tokens: torch.Tensor, greedy: bool,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """`tokens`, the choice for each live row (`rows`: their indices in the batch, `logits` their (n, V)
        scores), with each failing choice replaced by the most likely passing candidate (greedy) or one sampled
        among the passing candidates; the row states advance."""
        out = tokens.clone()
        for i, row in enumerate(rows):
            names, token = self.names[row], int(tokens[i])
            if names is None or self.states[row].off:
                continue
            state = self._after(row, token)
            if state is None:
                k = min(self.candidates, logits.shape[-1])
                values, ids = torch.topk(logits[i].float(), k)
                passing = []
                for value, candidate in zip(values.tolist(), ids.tolist()):
                    after = self._after(row, candidate) if candidate != token else None
                    if after is not None:
                        passing.append((value, candidate, after))
                        if greedy:
                            break
                if not passing:
                    self.unconstrained += 1
                    # A name we could not ground makes every later check of the query meaningless: stop checking
                    # this row (in a links line: that line).
                    self.states[row] = self.states[row].unchecked()
                    if not self.states[row].off:  # a links line left unchecked: its newline must still be seen
                        self.states[row] = self._after(row, token) or replace(self.states[row], off=True)
                    continue
                pick = 0
                if not greedy and len(passing) > 1:
                    weights = torch.tensor([v for v, _, _ in passing]).softmax(-1)
                    pick = int(torch.multinomial(weights, 1, generator=generator))
                _, token, state = passing[pick]
                out[i] = token
                self.replaced += 1
            self.states[row] = state
        return out


def grounding_for(tokenizer, schemas: Sequence[Optional["Schema"]], end_tokens: Sequence[int] = ()) -> GroundedDecoding:
    """Checks for rows answering about `schemas` (None: a row without a known database)."""
    cache: dict[int, SchemaNames] = {}
    names = []
    for schema in schemas:
        if schema is None or not schema.tables:
            names.append(None)
            continue
        if id(schema) not in cache:
            cache[id(schema)] = SchemaNames.from_schema(schema)
        names.append(cache[id(schema)])
    return GroundedDecoding(names, tokenizer.token_texts(), frozenset(end_tokens))
