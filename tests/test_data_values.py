"""Value hints (`lit_sql.data.values`): which cells a question names, how they render, and their bounds."""

import sqlite3
from pathlib import Path

import pytest

from lit_sql.data import values
from lit_sql.data.prompt import PromptRecipe
from lit_sql.data.schema import read_schema
from lit_sql.data.values import add_value_hints, value_index, value_words

FIXTURES = Path(__file__).parent / "fixtures" / "data"
SCHOOL = FIXTURES / "spider" / "database" / "school" / "school.sqlite"


def make_db(path: Path, script: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


def test_words_fold_case_and_plurals():
    assert value_words("Cities of the U.S. ranked by Countries") == ("city", "of", "the", "u", "s", "ranked", "by",
                                                                     "country")


def test_hints_are_the_cells_whose_every_word_the_question_holds():
    index = value_index(SCHOOL)
    assert index.hints("How many teachers live in Lyon?") == {("teacher", "city"): ["Lyon"]}
    # lower case in the question, stored case in the hint
    assert index.hints("which courses does ana silva teach?") == {("teacher", "name"): ["Ana Silva"]}
    # a cell only part of whose words the question holds is no hint ("Silva" alone is not "Ana Silva")
    assert index.hints("Is Silva a teacher?") == {}
    assert index.hints("What is the average age of teachers?") == {}


def test_noise_is_left_out_and_hints_are_bounded(tmp_path):
    db = make_db(tmp_path / "people.sqlite", """
        CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, initial TEXT, city VARCHAR(20), note TEXT,
                             zip TEXT, age INTEGER);
        INSERT INTO person VALUES (1, 'John', 'J', 'New York', 'the', '10001', 30);
        INSERT INTO person VALUES (2, 'John Smith', 'S', 'York', 'a very long note about nothing that goes on and on', '20002', 40);
        INSERT INTO person VALUES (3, 'Ann', 'A', 'Paris', 'Ann''s line' || char(10) || 'second', '30003', 50);
    """)
    index = value_index(db)
    hints = index.hints("Where does John Smith from New York live, and what is the zip 10001? a the s")
    # The longest cell of a column wins over one whose words it holds (John Smith over John); stop words and
    # single letters are no hints; a text column's digits are (the model learns they are quoted).
    assert hints == {("person", "name"): ["John Smith"], ("person", "city"): ["New York"],
                     ("person", "zip"): ["10001"]}
    # Cells with a line break would break the schema's layout; long cells are prose.
    assert all("\n" not in e.value and len(e.value) <= values.MAX_VALUE_CHARS for es in index.by_word.values()
               for e in es)
    assert index.hints("ann paris") == {("person", "name"): ["Ann"], ("person", "city"): ["Paris"]}


def test_hints_per_column_and_per_question_are_capped(tmp_path, monkeypatch):
    rows = ", ".join(f"('red {i}', 'blue {i}')" for i in range(10))
    db = make_db(tmp_path / "colours.sqlite", f"CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES {rows};")
    question = "red blue " + " ".join(str(i) for i in range(10))
    hints = value_index(db).hints(question, per_column=3, per_question=4)
    assert sum(len(v) for v in hints.values()) == 4 and all(len(v) <= 3 for v in hints.values())


def test_reading_stops_at_its_deadline_with_a_note(tmp_path, monkeypatch, capsys):
    db = make_db(tmp_path / "big.sqlite", "CREATE TABLE t (a TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                 "SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t SELECT 'Lyon ' || i FROM n;")
    monkeypatch.setattr(values, "INDEX_SECONDS", -1.0)  # already past: the read stops at its first check
    index = value_index(db)
    assert index.size < values.VALUES_PER_COLUMN  # without the deadline the column's first 2000 are read
    assert index.hints("Lyon 1000") == {}
    assert "value hints for big.sqlite cover only what was read" in capsys.readouterr().err


def test_hints_render_beside_their_column_in_both_formats():
    schema = add_value_hints(read_schema(SCHOOL), SCHOOL, "teachers in Lyon or named Tom Baker")
    assert schema.render("compact").splitlines()[0] == (
        "teacher(teacher_id INTEGER PK, name TEXT ['Tom Baker'], age INTEGER, city TEXT ['Lyon'])")
    ddl = schema.render("ddl")
    assert "  name TEXT, -- values: ['Tom Baker']\n" in ddl and "  city TEXT -- values: ['Lyon']\n);" in ddl
    # The hinted DDL still runs: the hints are comments.
    sqlite3.connect(":memory:").executescript(ddl)
    # The cached schema read from the file is not changed.
    assert "Lyon" not in read_schema(SCHOOL).render("compact")


def test_quotes_in_hints_are_escaped(tmp_path):
    db = make_db(tmp_path / "pub.sqlite", "CREATE TABLE pub (name TEXT); INSERT INTO pub VALUES ('O''Brien Arms');")
    schema = add_value_hints(read_schema(db), db, "When does O'Brien Arms open?")
    assert schema.render("compact") == "pub(name TEXT ['O''Brien Arms'])"


@pytest.mark.parametrize("on", [False, True])
def test_the_recipe_adds_hints_only_when_it_shows_them(on):
    recipe = PromptRecipe(schema_format="compact", value_hints=on)
    schema = read_schema(SCHOOL)
    hinted = recipe.with_value_hints(schema, "teachers in Lyon", SCHOOL)
    assert (hinted is schema) is not on
    assert ("['Lyon']" in recipe.render_schema(hinted)) is on
    assert recipe.with_value_hints(schema, "teachers in Lyon", None) is schema  # no database, no hints
    assert PromptRecipe.from_dict(recipe.to_dict()) == recipe


def test_hints_from_tables_and_columns_named_like_keywords(tmp_path, capsys):
    # SELECT DISTINCT order FROM transaction is a syntax error: the index quotes every name it queries.
    db = make_db(tmp_path / "shop.sqlite", """CREATE TABLE "transaction" ("order" TEXT, amount INTEGER);
                                              INSERT INTO "transaction" VALUES ('pending', 1), ('shipped', 2);""")
    schema = add_value_hints(read_schema(db), db, "Which transactions are pending?")
    assert schema.render("compact") == """"transaction"("order" TEXT ['pending'], amount INTEGER)"""
    assert "note:" not in capsys.readouterr().err  # every column was read
