"""SQL extraction from model output: the last query wins, cut at its end, "" when there is none."""

from __future__ import annotations

import pytest

from lit_sql.sql.extract import extract_sql

FENCE = "```"

CASES = [
    # plain SQL
    ("SELECT name FROM singer", "SELECT name FROM singer"),
    ("SELECT name FROM singer;", "SELECT name FROM singer"),
    ("  select name from singer ;  ", "select name from singer"),
    ("SELECT a\nFROM t\nWHERE b = 1\nORDER BY a", "SELECT a\nFROM t\nWHERE b = 1\nORDER BY a"),
    ("WITH t AS (SELECT 1 AS a) SELECT a FROM t", "WITH t AS (SELECT 1 AS a) SELECT a FROM t"),
    ("WITH RECURSIVE c(x) AS (SELECT 1)\nSELECT x FROM c;", "WITH RECURSIVE c(x) AS (SELECT 1)\nSELECT x FROM c"),
    # fenced blocks: the last one holding SQL
    (f"{FENCE}sql\nSELECT count(*)\nFROM singer\n{FENCE}", "SELECT count(*)\nFROM singer"),
    (f"Here is the query:\n{FENCE}\nSELECT 1\n{FENCE}\nIt returns one.", "SELECT 1"),
    (f"Draft:\n{FENCE}sql\nSELECT 1\n{FENCE}\nBetter:\n{FENCE}sql\nSELECT 2;\n{FENCE}\nDone.", "SELECT 2"),
    (f"{FENCE}sql\nSELECT a FROM t\n{FENCE}\n{FENCE}text\na\n---\n1\n{FENCE}", "SELECT a FROM t"),
    (f"{FENCE}python\nprint('SELECT 9')\n{FENCE}\n{FENCE}SQL\nSELECT 3\n{FENCE}", "SELECT 3"),
    (f"{FENCE}sqlite\nSELECT 4 -- comment\n{FENCE}", "SELECT 4 -- comment"),
    (f"{FENCE}sql\nSELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 1"),  # cut off, never closed
    # a fence ends the query even when the fences do not pair up as the model meant
    (f"{FENCE}\n...\n{FENCE}sql\nSELECT count(*) FROM t\n{FENCE}", "SELECT count(*) FROM t"),
    (f"{FENCE}\nnotes\n{FENCE}sql\nSELECT a\nFROM t\n{FENCE}\nDone; that is all.", "SELECT a\nFROM t"),
    # reasoning before the final query
    ("First I list the tables. The answer needs a filter.\nSELECT name FROM singer WHERE age > 30;",
     "SELECT name FROM singer WHERE age > 30"),
    ("Let me think.\nSELECT a FROM t;\nThat misses b. Fixed:\nSELECT a, b FROM t;", "SELECT a, b FROM t"),
    ("With this in mind, select the oldest.\nSELECT max(age) FROM singer", "SELECT max(age) FROM singer"),
    ("The query is: SELECT count(*) FROM t", "SELECT count(*) FROM t"),
    # trailing explanations
    ("SELECT name FROM singer\n\nThis query returns every name.", "SELECT name FROM singer"),
    ("SELECT name FROM singer\nThis query returns every name.", "SELECT name FROM singer"),
    ("SELECT name FROM singer; -- the names\nIt is simple.", "SELECT name FROM singer"),
    ("SELECT a\nFROM t\n**Explanation:** picks a", "SELECT a\nFROM t"),
    ("SQLQuery: SELECT 4\nSQLResult: 4", "SELECT 4"),
    # a subquery on its own line is part of the query, not a new one
    ("SELECT name FROM singer WHERE age > (\n  SELECT avg(age) FROM singer\n)\nNote that avg ignores NULL.",
     "SELECT name FROM singer WHERE age > (\n  SELECT avg(age) FROM singer\n)"),
    # semicolons and quotes inside literals, quoted names and comments
    ("SELECT name FROM singer WHERE country = 'a;b'; -- the names", "SELECT name FROM singer WHERE country = 'a;b'"),
    ("SELECT 'it''s; fine' FROM t; SELECT 2", "SELECT 'it''s; fine' FROM t"),
    ('SELECT "odd;name" FROM t;', 'SELECT "odd;name" FROM t'),
    ("SELECT a -- don't stop; here\nFROM t;", "SELECT a -- don't stop; here\nFROM t"),
    ("SELECT a /* x; y */ FROM t;", "SELECT a /* x; y */ FROM t"),
    # labels
    ("SQL: SELECT 2", "SELECT 2"),
    ("Answer: select a from t where b = 1", "select a from t where b = 1"),
    ("Final SQL query:\nSELECT 5", "SELECT 5"),
    ("Query: Select name FROM singer", "Select name FROM singer"),
    # linked answers (prepare --target_format linked): the SQL after its label, never the links line
    ("Links: singer(Name, Country), concert(Year)\nSQL: SELECT name FROM singer WHERE country = 'France'",
     "SELECT name FROM singer WHERE country = 'France'"),
    ("Links: singer\nSQL: SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    ('Links: "Song List"("Song Name")\nSQL: SELECT "Song Name" FROM "Song List"',
     'SELECT "Song Name" FROM "Song List"'),
    ("Links:\nSQL: SELECT 1", "SELECT 1"),
    ("Links: t(a, b)\nSQL: SELECT a\nFROM t\nWHERE b = 1", "SELECT a\nFROM t\nWHERE b = 1"),
    ("Links: t(a)\nSQL: SELECT a FROM t;\nThat is all.", "SELECT a FROM t"),
    ("Links: t(answer, query)\nSQL: SELECT answer FROM t", "SELECT answer FROM t"),
    ("Links: singer(Name, Country)", ""),  # cut short before its SQL: nothing, not the links
    ("Links: singer(Name)\nSQL: ", ""),
    # nothing SQL-like
    ("I do not know.", ""),
    ("", ""),
    ("Select the youngest singer, then list their songs.", ""),
    (f"{FENCE}python\nx = 1\n{FENCE}", ""),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_sql(text: str, expected: str):
    assert extract_sql(text) == expected
