"""Schema links: the tables a query reads and the columns of each it uses, derived from the SQL itself.

A linked training answer (`PromptRecipe(target_format="linked")`) names them on one line before the SQL, so the
model first says which parts of the schema the question needs and then writes the query over them (RESDSQL, Li
et al. 2023, decouples schema linking from writing SQL the same way). The links are read from the gold query
with sqlglot, never guessed: aliases resolve to their tables, an unqualified column to the table in scope that
has it, and a name the schema does not have is left out.
"""

from __future__ import annotations

import re
from typing import Optional

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from lit_sql.data.schema import Schema, quote
from lit_sql.errors import LitSQLError

LINKS_LABEL = "Links: "
# Room for a links line on top of the SQL when generating: on Spider's train split a links line (SmolLM2's
# tokenizer) takes 18 tokens on average and 49 at the 99th percentile; the rare longer one (five joined tables,
# 83 tokens) still fits in what its SQL leaves unused of the SQL's own room.
LINKS_ROOM_TOKENS = 48
# Gold SQL of sources without a database parses in sqlglot's generic dialect when SQLite's fails
# (`lit_sql.data.prepare.check_sql` accepts it so): links read it the same way, so that a linked dataset keeps
# exactly the rows a plain one keeps.
_DIALECTS = ("sqlite", None)

Links = list[tuple[str, list[str]]]


def schema_links(sql: str, schema: Schema) -> Links:
    """[(table, [its columns the query uses]), ...]: the tables the query reads in order of first appearance,
    each with its columns in order of first use, spelled as `schema` spells them. `*` adds no column;
    subqueries, set operations and common table expressions are not tables. Raises LitSQLError when the SQL
    does not parse."""
    root = _parse(sql)
    known = {t.name.lower(): (t.name, {c.name.lower(): c.name for c in t.columns}) for t in schema.tables}
    first_table: dict[str, int] = {}  # table -> where it first appears in the SQL
    first_column: dict[str, dict[str, int]] = {}  # table -> {column: where it is first used}

    def add(table: exp.Table, column: Optional[exp.Expression] = None) -> None:
        name, columns = known[table.name.lower()]
        first_table[name] = min(first_table.get(name, _position(table)), _position(table))
        seen = first_column.setdefault(name, {})
        if column is not None and column.name.lower() in columns:
            spelled = columns[column.name.lower()]
            seen[spelled] = min(seen.get(spelled, _position(column)), _position(column))

    scopes = _Scopes(root, known)
    for table in scopes.tables():
        add(table)
    for column in root.find_all(exp.Column):
        table = None if column.is_star else scopes.resolve(column)
        if table is not None:
            add(table, column)
    for join in root.find_all(exp.Join):  # JOIN t USING (c): c is a column of both joined tables
        for name in join.args.get("using") or ():
            for table in scopes.having(join, name.name):
                add(table, name)
    return [(table, sorted(first_column[table], key=first_column[table].get))
            for table in sorted(first_table, key=first_table.get)]


def render_links(links: Links) -> str:
    """One short line, e.g. `Links: singer(name, country), concert(year)`; a table none of whose columns the
    query names stands alone. Names are quoted as the schema renders them (`"Song Name"`)."""
    parts = [quote(table) + (f"({', '.join(map(quote, columns))})" if columns else "") for table, columns in links]
    return (LINKS_LABEL + ", ".join(parts)).rstrip()


# ---- resolution ----------------------------------------------------------------------------------------------
def _message(error: Exception) -> str:
    """sqlglot's message on one line, without the terminal underlining it marks the bad token with."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())[:200]


def _parse(sql: str) -> exp.Expression:
    error = "empty statement"
    for dialect in _DIALECTS:
        try:
            statements = sqlglot.parse(sql, read=dialect)
        except sqlglot.errors.SqlglotError as e:
            error = _message(e)
            continue
        if statements and statements[0] is not None:
            return statements[0]
    raise LitSQLError(f"sqlglot cannot parse the SQL: {error}")


def _position(node: exp.Expression) -> int:
    """Where `node` (a table, a column or a bare name) starts in the SQL text: sqlglot keeps each identifier's
    offset."""
    identifier = node.this if isinstance(node.this, exp.Identifier) else node
    return identifier.meta.get("start", 1 << 30)


class _Scopes:
    """The query's scopes (sqlglot's: each SELECT, set operation, subquery and CTE) with the schema tables each
    reads under which name, for resolving columns the way SQLite does: in the column's own scope first, then
    outwards (a correlated subquery may name the outer query's tables)."""

    def __init__(self, root: exp.Expression, known: dict) -> None:
        self.known = known
        try:
            self.scopes: list[Scope] = traverse_scope(root)
        except sqlglot.errors.SqlglotError as e:
            raise LitSQLError(f"the SQL's scopes cannot be read: {_message(e)}") from None
        self.owner = {id(s.expression): s for s in self.scopes}
        # UPDATE, DELETE and INSERT are no scope of sqlglot's: the tables they name directly form the outermost one.
        self.outer = {t.alias_or_name.lower(): t for t in root.find_all(exp.Table) if self._scope_of(t) is None}

    def _scope_of(self, node: exp.Expression) -> Optional[Scope]:
        parent = node.parent
        while parent is not None and id(parent) not in self.owner:
            parent = parent.parent
        return None if parent is None else self.owner[id(parent)]

    def _chain(self, node: exp.Expression) -> list[dict]:
        """The sources (name -> table or inner scope) visible from `node`, innermost first."""
        chain, scope = [], self._scope_of(node)
        while scope is not None:
            chain.append({name.lower(): source for name, source in scope.sources.items()})
            scope = scope.parent
        return chain + [self.outer]

    def _is_table(self, source) -> bool:
        return isinstance(source, exp.Table) and source.name.lower() in self.known

    def tables(self) -> list[exp.Table]:
        """Every schema table the query reads (not the names of CTEs or derived tables)."""
        found = [s for scope in self.scopes for s in scope.sources.values() if self._is_table(s)]
        return found + [t for t in self.outer.values() if self._is_table(t)]

    def resolve(self, column: exp.Column) -> Optional[exp.Table]:
        """The schema table `column` belongs to, or None (a derived table's column, a select alias, a string in
        double quotes, a name the schema lacks)."""
        qualifier, name = column.table.lower(), column.name.lower()
        for sources in self._chain(column):
            if qualifier:
                if qualifier in sources:
                    source = sources[qualifier]
                    return source if self._is_table(source) else None
                continue
            for source in sources.values():
                if self._is_table(source) and name in self.known[source.name.lower()][1]:
                    return source  # the first table in scope that has it (SQLite: the only one, or ambiguous)
                if isinstance(source, Scope) and name in _output_names(source):
                    return None  # a column of a subquery or CTE: its own scope links it
        return None

    def having(self, node: exp.Expression, column: str) -> list[exp.Table]:
        """The tables in `node`'s own scope that have `column`."""
        sources = self._chain(node)[0].values()
        return [s for s in sources if self._is_table(s) and column.lower() in self.known[s.name.lower()][1]]


def _output_names(scope: Scope) -> set[str]:
    """The column names a derived table or CTE gives its readers."""
    return {n.lower() for n in getattr(scope.expression, "named_selects", ())}
