"""The one statement splitter: semicolons inside literals, quoted names, comments and trigger bodies do not end a
statement; and every reader of SQL scripts (schemas, context databases, extraction) splits with it."""

from __future__ import annotations

import sqlite3

import pytest

from lit_sql.data.schema import schema_from_sql
from lit_sql.sql.build_db import prepare_databases
from lit_sql.sql.extract import extract_sql
from lit_sql.sql.lexer import split_statements, squeeze_spaces, statement_ends

TRIGGER = ("CREATE TRIGGER log_sale AFTER INSERT ON sale BEGIN INSERT INTO log VALUES ('sold; again'); "
           "UPDATE stock SET n = n - 1; END")


@pytest.mark.parametrize("script,statements", [
    ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("SELECT 'a;b'; SELECT 'it''s; fine'", ["SELECT 'a;b'", "SELECT 'it''s; fine'"]),
    ('SELECT "odd;name" FROM t; SELECT `x;y`, [p;q] FROM u;',
     ['SELECT "odd;name" FROM t', "SELECT `x;y`, [p;q] FROM u"]),
    ("SELECT 1 -- one; two\n; SELECT /* ; */ 2;", ["SELECT 1 -- one; two", "SELECT /* ; */ 2"]),
    (f"CREATE TABLE sale (id);\n{TRIGGER};\nSELECT 3;", ["CREATE TABLE sale (id)", TRIGGER, "SELECT 3"]),
    (" ;; SELECT 1;;\n-- only a comment;\n/* and another */ ;", ["SELECT 1"]),
    ("SELECT 'cut short; by the model", ["SELECT 'cut short; by the model"]),  # the literal runs to the end
    ("", []),
])
def test_split_statements(script: str, statements: list[str]):
    assert split_statements(script) == statements


def test_statement_ends_are_the_semicolons_that_end_statements():
    script = "SELECT 'a;b'; SELECT 2 /* ; */;"
    assert list(statement_ends(script)) == [12, len(script) - 1]
    assert list(statement_ends("SELECT 1")) == []


def test_statements_run_one_by_one_build_what_sqlite_builds_from_the_script():
    script = (f"CREATE TABLE sale (id, note); CREATE TABLE log (msg); CREATE TABLE stock (n);\n"
              f"INSERT INTO stock VALUES (5); {TRIGGER};\n"
              "INSERT INTO sale VALUES (1, 'a; b -- not a comment'); -- a comment; with a semicolon\n"
              "INSERT INTO sale VALUES (2, '/* not a comment; */');")
    whole, parts = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    whole.executescript(script)
    for statement in split_statements(script):
        parts.execute(statement)
    assert list(parts.iterdump()) == list(whole.iterdump())
    assert parts.execute("SELECT n FROM stock").fetchone() == (3,)  # the trigger ran, whole, twice


def test_squeeze_spaces_keeps_literals_quoted_names_and_comments():
    sql = "SELECT  a,\n\t'two  spaces' AS \"b  c\"   FROM t -- keep  this\nWHERE x  = 1"
    assert squeeze_spaces(sql) == "SELECT a, 'two  spaces' AS \"b  c\" FROM t -- keep  this\nWHERE x = 1"


def test_schemas_context_databases_and_extraction_split_alike(tmp_path):
    context = ("CREATE TABLE note (id INT, body TEXT);  INSERT INTO note VALUES (1, 'a;b  c');\n"
               "INSERT INTO note VALUES (2, 'd'); -- the end; really")
    schema = schema_from_sql(context)
    assert [t.name for t in schema.tables] == ["note"]
    assert schema.tables[0].inserts == ["INSERT INTO note VALUES (1, 'a;b  c');", "INSERT INTO note VALUES (2, 'd');"]
    built = prepare_databases(context, cache_dir=tmp_path)
    assert built.errors == [] and len(built.paths) == 1
    with sqlite3.connect(built.paths[0]) as conn:
        assert conn.execute("SELECT body FROM note ORDER BY id").fetchall() == [("a;b  c",), ("d",)]
    assert extract_sql("SQL: SELECT body FROM note WHERE body = 'a;b'; That is all.") == \
           "SELECT body FROM note WHERE body = 'a;b'"
