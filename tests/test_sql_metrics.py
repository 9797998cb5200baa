"""Text metrics on SQL: parsing, exact match, BLEU, ROUGE-L and Spider hardness."""

from __future__ import annotations

import math

import pytest

from lit_sql.sql.metrics import bleu, exact_match, normalize, parses, rouge_l, spider_hardness, sql_tokens


def test_parses():
    assert parses("SELECT a FROM t WHERE b = 1") and parses("SELECT a FROM t;")
    assert not parses("SELEC a FROM") and not parses("SELECT a FROM t WHERE") and not parses("")
    assert not parses("SELECT 1; SELECT 2")  # two statements are not one query
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


@pytest.mark.parametrize("sql,level", [
    ("SELECT count(*) FROM cars_data WHERE cylinders > 4", "easy"),  # one component
    ("SELECT name FROM singer", "easy"),
    ("SELECT name, age FROM singer ORDER BY age", "medium"),  # one component, two columns
    ("SELECT T2.name, COUNT(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.id = T2.id GROUP BY T1.id", "medium"),
    ("SELECT a FROM t WHERE x = 1 AND y = 2 ORDER BY a LIMIT 1", "hard"),  # three components
    ("SELECT a, b, c FROM t WHERE x = 1 AND y = 2 GROUP BY a, b", "hard"),  # three others
    ("SELECT name FROM stadium WHERE id NOT IN (SELECT id FROM concert)", "hard"),  # one nested
    ("SELECT a FROM t UNION SELECT b FROM u", "hard"),
    ("WITH c AS (SELECT 1 AS a) SELECT a FROM c", "hard"),
    ("SELECT a FROM t WHERE x LIKE '%a%' OR y = 2 ORDER BY a LIMIT 3", "extra"),  # five components
    ("SELECT a, b FROM t WHERE x IN (SELECT a FROM u) INTERSECT SELECT a, b FROM v", "extra"),
    ("SELECT T1.a FROM t1 AS T1 JOIN t2 AS T2 ON T1.id = T2.id JOIN t3 AS T3 ON T2.id = T3.id "
     "WHERE T3.x = 'e' GROUP BY T1.a HAVING count(*) >= 3", "extra"),  # joins count one per table
    ("not sql at all", "unknown"),
])
def test_spider_hardness(sql: str, level: str):
    assert spider_hardness(sql) == level
