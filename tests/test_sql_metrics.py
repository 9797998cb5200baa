"""Text metrics on SQL: parsing, exact match, BLEU, ROUGE-L and the difficulty labeller (Spider's hardness levels)."""

from __future__ import annotations

import math

import pytest

from lit_sql.sql.metrics import (DIFFICULTY_LEVELS, bleu, exact_match, normalize, parses, rouge_l, sql_difficulty,
                                 sql_tokens)


def test_parses():
    assert parses("SELECT a FROM t WHERE b = 1") and parses("SELECT a FROM t;")
    assert not parses("SELEC a FROM") and not parses("SELECT a FROM t WHERE") and not parses("")
    assert not parses("SELECT 1; SELECT 2")  # two statements are not one query
    # sqlglot reads these as bare expressions (a column with an alias): not SQL
    assert not parses("hello world") and not parses("SELEC nope") and not parses("nope") and not parses("1 + 1")
    assert parses("WITH a AS (SELECT 1) SELECT * FROM a") and parses("SELECT 1 UNION SELECT 2")
    assert parses("(SELECT 1)") and parses("VALUES (1)") and parses("DELETE FROM t WHERE a < 2")
    # statements as the one splitter counts them: a semicolon in a literal ends nothing, a comment is no statement
    assert parses("SELECT 'a;b' FROM t; -- done") and parses("SELECT a FROM t;;")


def test_exact_match_normalises_case_space_and_quoting_but_not_literals():
    assert exact_match("select  A from T where b=1;", "SELECT a FROM t WHERE b = 1")
    assert exact_match('SELECT "Name" FROM [Singer] AS T1', "select name from singer as t1")
    assert not exact_match("SELECT a FROM t WHERE b = 'Bob'", "SELECT a FROM t WHERE b = 'bob'")
    assert not exact_match("SELECT a FROM t", "SELECT b FROM t")
    assert not exact_match("", "")
    # unparseable text falls back to lower case and single spaces
    assert exact_match("SELEC  a FROM", "selec a from") and normalize("SELEC  a\nFROM") == "selec a from"


def test_tokens():
    assert sql_tokens("SELECT T1.a, 'It''s' FROM t WHERE x>=1.5") == [
        "select", "t1", ".", "a", ",", "'It''s'", "from", "t", "where", "x", ">=", "1.5"]


def test_bleu():
    assert bleu("SELECT a FROM t", "SELECT a FROM t") == pytest.approx(1.0)
    assert bleu("", "SELECT a") == 0.0 and bleu("foo bar", "SELECT a FROM t") == 0.0
    # 8 predicted tokens, 4 gold: no brevity penalty; 4 of 8 unigrams match, then 3 of 7 bigrams, 2 of 6
    # trigrams, 1 of 5 4-grams, smoothed by adding one to both counts for n > 1.
    expected = math.exp((math.log(4 / 8) + math.log(4 / 8) + math.log(3 / 7) + math.log(2 / 6)) / 4)
    assert bleu("SELECT a FROM t WHERE x = 1", "SELECT a FROM t") == pytest.approx(expected)
    # a prediction shorter than the gold pays the brevity penalty
    short, full = "SELECT a", "SELECT a FROM t"
    assert bleu(short, full) == pytest.approx(math.exp(1 - 4 / 2) * math.exp((0 + math.log(2 / 2) + 0 + 0) / 4))
    assert bleu("SELECT b FROM u", "SELECT a FROM t") < bleu("SELECT a FROM u", "SELECT a FROM t") < 1


def test_rouge_l():
    assert rouge_l("SELECT a FROM t", "SELECT a FROM t") == 1.0
    assert rouge_l("SELECT b", "SELECT a FROM t") == pytest.approx(2 * (1 / 2 * 1 / 4) / (1 / 2 + 1 / 4))
    assert rouge_l("t FROM a SELECT", "SELECT a FROM t") == pytest.approx(0.25)  # LCS of 1 in 4 and 4
    assert rouge_l("", "SELECT a") == 0.0


# (query, level, why): counted as Spider's evaluation.py counts (see `sql_difficulty`): c components, n nested, o others
DIFFICULTY = [
    ("SELECT count(*) FROM head WHERE age > 56", "easy", "c1 (WHERE), one aggregate"),
    ("SELECT name FROM singer", "easy", "nothing"),
    ("SELECT a FROM t;", "easy", "a trailing semicolon is no second statement"),
    ("SELECT name, age FROM singer ORDER BY age DESC", "medium", "c1 (ORDER BY), o1 (two columns)"),
    ("SELECT T2.name, COUNT(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.id = T2.id GROUP BY T1.id", "medium",
     "c2 (GROUP BY, one joined table), o1 (two columns; one aggregate)"),
    ("SELECT name FROM t WHERE name NOT LIKE '%a%'", "medium", "c2 (WHERE, LIKE: NOT LIKE is a LIKE)"),
    # the two queries the two former labellers disagreed on
    ("SELECT name FROM singer WHERE name ILIKE '%an%' AND age > 30", "medium",
     "c2 (WHERE, ILIKE counts as LIKE), o1 (two WHERE conditions)"),
    ("SELECT name FROM singer WHERE age > 30 UNION SELECT name FROM singer WHERE country = 'France' "
     "ORDER BY name LIMIT 3", "hard",
     "c1 (WHERE of the left query: ORDER BY and LIMIT after a set operation are the right query's), n1 (UNION)"),
    ("SELECT a FROM t WHERE x = 1 AND y = 2 ORDER BY a LIMIT 1", "hard", "c3 (WHERE, ORDER BY, LIMIT), o1"),
    ("SELECT a, b, c FROM t WHERE x = 1 AND y = 2 GROUP BY a, b", "hard",
     "c2, o3 (three columns, two WHERE conditions, two GROUP BY columns)"),
    ("SELECT name FROM t WHERE p > (SELECT avg(p) FROM t)", "hard", "c1, n1 (a subquery as a value)"),
    ("SELECT name FROM stadium WHERE id NOT IN (SELECT id FROM concert)", "hard",
     "c1, n1, o0 (the NOT flag is evaluation.py's one 'aggregate' here)"),
    ("SELECT a FROM t UNION SELECT b FROM u UNION SELECT c FROM v", "hard", "n1: a chain of set operations is one"),
    ("SELECT count(*) FROM stadium WHERE id NOT IN (SELECT id FROM concert)", "extra",
     "c1, n1, o1: count(*) and the NOT flag make two 'aggregates' in evaluation.py"),
    ("SELECT a FROM t WHERE x LIKE '%a%' OR y = 2 ORDER BY a LIMIT 3", "extra",
     "c5 (WHERE, ORDER BY, LIMIT, OR, LIKE)"),
    ("SELECT a, b FROM t WHERE x IN (SELECT a FROM u) INTERSECT SELECT a, b FROM v", "extra", "n2 (INTERSECT, IN)"),
    ("SELECT T1.a FROM t1 AS T1 JOIN t2 AS T2 ON T1.id = T2.id JOIN t3 AS T3 ON T2.id = T3.id "
     "WHERE T3.x = 'e' GROUP BY T1.a HAVING count(*) >= 3", "extra", "c4 (WHERE, GROUP BY, two joined tables)"),
    ("SELECT T2.name FROM a AS T1 JOIN b AS T2 ON T1.x = T2.x GROUP BY T1.x ORDER BY count(*) DESC LIMIT 1", "extra",
     "c4 (GROUP BY, ORDER BY, LIMIT, a joined table)"),
    ("SELECT name, (SELECT max(age) FROM singer) FROM singer", "extra", "n1 (a subquery in the select list), o1"),
    ("SELECT count(*) FROM (SELECT * FROM endowment WHERE amount > 8.5 GROUP BY school_id HAVING count(*) > 1)",
     "easy", "a subquery in FROM is a table, not nested; the outer query has nothing"),
    ("WITH c AS (SELECT 1 AS a) SELECT a FROM c", "easy", "a common table expression is a table, as in FROM"),
]


@pytest.mark.parametrize("sql,level,why", DIFFICULTY, ids=[why for _, _, why in DIFFICULTY])
def test_sql_difficulty(sql: str, level: str, why: str):
    assert sql_difficulty(sql) == level, why
    assert level in DIFFICULTY_LEVELS


@pytest.mark.parametrize("sql", ["not sql at all", "SELEC oops", "SELECT 1; SELECT 2", "UPDATE t SET a = 1", ""])
def test_no_difficulty_for_what_is_not_one_query(sql: str):
    assert sql_difficulty(sql) is None


def test_the_generator_labels_with_sql_difficulty(tmp_path):
    """The embedded generator labels each query's shape (names and values blanked) once: the same levels."""
    from lit_sql.data.generator import difficulty, generate_dataset

    for example in generate_dataset(tmp_path, num_databases=3, num_questions=60, seed=1, write=False):
        assert example.difficulty == sql_difficulty(example.sql), example.sql
    assert difficulty("SELECT count(*) FROM pet WHERE pet_id NOT IN (SELECT pet_id FROM visit)") == "extra"
