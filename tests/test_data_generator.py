"""The embedded generator: enough databases and questions, every gold query runs, same seed same data."""

import sqlite3
from collections import Counter

from lit_sql.data.generator import generate_dataset, plural
from lit_sql.sql.metrics import DIFFICULTY_LEVELS


def test_default_size_every_query_runs_and_levels(tmp_path):
    examples = generate_dataset(tmp_path, seed=42)
    assert len(examples) == 5000
    db_ids = {e.db_id for e in examples}
    assert Counter(e.db_id for e in examples) == {d: 100 for d in db_ids} and len(db_ids) == 50  # the defaults
    levels = Counter(e.difficulty for e in examples)
    assert set(levels) == set(DIFFICULTY_LEVELS)
    assert len({(e.db_id, e.question) for e in examples}) == 5000
    connections = {d: sqlite3.connect(tmp_path / "database" / d / f"{d}.sqlite") for d in db_ids}
    for e in examples:  # gold SQL runs on the database written to disk and answers something
        assert connections[e.db_id].execute(e.sql).fetchall(), e.sql
    assert (tmp_path / "questions.json").is_file()
    # one canonical style: upper-case keywords, lower-case aggregates, T1/T2 aliases
    joins = [e.sql for e in examples if " JOIN " in e.sql]
    assert joins and all(" AS T1 JOIN " in s for s in joins)
    assert not any("COUNT(" in e.sql or "select " in e.sql for e in examples)


def test_reproducible(tmp_path):
    a = generate_dataset(tmp_path / "a", 5, 200, seed=3)
    b = generate_dataset(tmp_path / "b", 5, 200, seed=3)
    c = generate_dataset(tmp_path / "c", 5, 200, seed=4)
    assert [(e.question, e.sql) for e in a] == [(e.question, e.sql) for e in b]
    assert [(e.question, e.sql) for e in a] != [(e.question, e.sql) for e in c]


def test_plural():
    assert [plural(w) for w in ("city", "price", "weight in kilograms", "years of experience", "class")] == \
           ["cities", "prices", "weights in kilograms", "years of experience", "classes"]
