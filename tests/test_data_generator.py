"""The embedded generator: Spider-like data. Every gold query runs and answers; levels in Spider's proportions by the
project's labeller; the SQL shapes Spider asks; varied wording; varied schema styles; same seed, same data."""

import re
import sqlite3
from collections import Counter

import pytest

from lit_sql.data import domains as D
from lit_sql.data.generator import LEVEL_SHARES, generate_dataset, parse_domain, plural
from lit_sql.sql.metrics import DIFFICULTY_LEVELS, sql_difficulty

SPIDER_MIX = {"easy": 25, "medium": 40, "hard": 17, "extra": 17}  # percent, Spider's train split


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The default generation, written to disk, with a connection to each database."""
    root = tmp_path_factory.mktemp("generated")
    examples = generate_dataset(root, seed=42)
    connections = {e.db_id: sqlite3.connect(e.db_path) for e in examples}
    yield root, examples, connections
    for conn in connections.values():
        conn.close()


def names_of(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """table -> its column names."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def test_default_size_databases_domains_and_every_query_answers(generated):
    root, examples, connections = generated
    assert len(examples) == 10_000  # the defaults: 10,000 questions on 100 databases across 40+ domains
    assert len(connections) == 100 and len({e.extra["domain"] for e in examples}) >= 40
    assert (root / "questions.json").is_file()
    for e in examples:  # gold SQL runs on the database written to disk and answers something that is not NULL
        rows = connections[e.db_id].execute(e.sql).fetchall()
        assert rows and any(v is not None for row in rows for v in row), e.sql
        assert rows != [(0,)], e.sql  # a count of nothing teaches nothing
    assert len({(e.db_id, e.question) for e in examples}) == len(examples)  # no question twice on a database


def test_difficulty_mix_is_spiders(generated):
    _, examples, _ = generated
    assert sum(LEVEL_SHARES.values()) == pytest.approx(0.99)  # Spider's shares as published, rounded
    levels = Counter(sql_difficulty(e.sql) for e in examples)  # the project's one labeller, on each query
    assert set(levels) == set(DIFFICULTY_LEVELS)
    for level, percent in SPIDER_MIX.items():
        assert abs(100 * levels[level] / len(examples) - percent) <= 5, levels
    assert all(e.difficulty == sql_difficulty(e.sql) for e in examples[:2000])  # the stored label is the labeller's


def test_spider_sql_style(generated):
    _, examples, _ = generated
    joins = [e.sql for e in examples if " JOIN " in e.sql]
    assert joins and all(" AS T1 JOIN " in s for s in joins)  # aliases T1, T2, ... in every join
    assert not any(re.search(r"\b(COUNT|AVG|MAX|MIN|SUM)\(", e.sql) or "select " in e.sql for e in examples)


def is_bridge_join(conn: sqlite3.Connection, sql: str) -> bool:
    """T1 -> T2 <- T3 where T2 is joined on two of its own non-key columns to the keys of T1 and T3."""
    m = re.search(r"FROM (\w+) AS T1 JOIN (\w+) AS T2 ON T1\.(\w+) = T2\.(\w+) JOIN (\w+) AS T3 ON T2\.(\w+) = "
                  r"T3\.(\w+)", sql)
    if m is None:
        return False
    first, bridge, first_key, to_first, third, to_third, third_key = m.groups()

    def keys(table: str) -> set[str]:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[5]}

    return (first_key in keys(first) and third_key in keys(third) and to_first != to_third
            and not {to_first, to_third} & keys(bridge))


def test_every_listed_sql_shape_is_asked(generated):
    _, examples, connections = generated
    shapes = {
        "join of 3 tables": r" JOIN .* JOIN ", "join of 4 tables": r"( JOIN .*){3}",
        "HAVING": r" HAVING ", "INTERSECT": r" INTERSECT ", "UNION": r" UNION ", "EXCEPT": r" EXCEPT ",
        "NOT IN": r" NOT IN \(SELECT ", "IN": r" (?<!NOT )IN \(SELECT ", "LIKE": r" LIKE '", "BETWEEN": r" BETWEEN ",
        "nested in WHERE": r" WHERE [^()]*\(SELECT ", "nested in FROM": r" FROM \(SELECT ",
        "nested in HAVING": r" HAVING \w+\(\S+\) . \(SELECT ", "ORDER BY several keys": r" ORDER BY \S+ (ASC|DESC), ",
        "DISTINCT": r"SELECT DISTINCT ", "count(DISTINCT": r"count\(DISTINCT ",
        "aggregates together": r"SELECT (count|avg|min|max|sum)\([^)]*\), (count|avg|min|max|sum)\(",
        "superlative by LIMIT": r" ORDER BY .* LIMIT 1$", "superlative by nesting": r"= \(SELECT (max|min)\(",
        "grouped superlative": r" GROUP BY .* ORDER BY (count|avg|sum)\(.*\) (DESC|ASC) LIMIT 1$",
        "OR": r" WHERE .* OR ", "not equal": r" != ",
    }
    missing = [name for name, pattern in shapes.items() if not any(re.search(pattern, e.sql) for e in examples)]
    assert not missing
    bridged = [e for e in examples if is_bridge_join(connections[e.db_id], e.sql)]
    assert len(bridged) >= 100, len(bridged)  # many-to-many questions, through a bridge table
    assert any(" WHERE " in e.sql for e in bridged) and any(" GROUP BY " in e.sql for e in bridged)


def test_questions_are_worded_in_many_ways(generated):
    _, examples, _ = generated
    openers = Counter(e.question.split()[0] for e in examples)
    assert len([w for w, n in openers.items() if n >= 50]) >= 10, openers  # List, Show, What, Which, How, Find ...
    assert max(openers.values()) < 0.3 * len(examples)
    literals = [(e, v) for e in examples for v in re.findall(r"'((?:[^']|'')+)'", e.sql) if not v.startswith("%")]
    quoted = [e for e, v in literals if f"'{v}'" in e.question or f'"{v}"' in e.question]
    bare = [e for e, v in literals if v in e.question and f"'{v}'" not in e.question and f'"{v}"' not in e.question]
    assert len(quoted) > 300 and len(bare) > 1000  # text values quoted or not
    # a column asked by a synonym that is no column's usual name ("pay" for salary, "fare" for price)
    columns = [c for text in D.DOMAINS.values() for t in parse_domain(text) for c in t.cols if c.kind != "fk"]
    synonyms = {w for c in columns for w in c.labels[1:]} - {c.labels[0] for c in columns}
    synonym = re.compile(r"\b(" + "|".join(sorted(map(re.escape, synonyms), key=len, reverse=True)) + r")\b")
    assert sum(bool(synonym.search(e.question)) for e in examples) > 1000
    # an abbreviated column asked in whole words: `dept_name`, `HireDt` ... as "department", "hire date"
    shortened = [(full, re.compile(rf"(\b|_|[a-z]){short}(\b|_|[A-Z])", re.IGNORECASE))
                 for full, short in D.ABBREVIATIONS.items()]
    asked_in_full = [e for e in examples
                     if any(full in e.question and short.search(e.sql) for full, short in shortened)]
    assert len(asked_in_full) > 100
    assert any(" of each " in e.question for e in examples) and any(" of all " in e.question for e in examples)


def test_schemas_come_in_many_styles(generated):
    _, examples, connections = generated
    styles, declared, table_counts, key_names = Counter(), Counter(), [], Counter()
    for db_id, conn in connections.items():
        names = names_of(conn)
        table_counts.append(len(names))
        every = list(names) + [c for cols in names.values() for c in cols]
        if all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in every):
            styles["snake_case"] += 1
        elif all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", n) for n in every):
            styles["CamelCase"] += 1
        else:
            styles["other"] += 1
        declared[any(conn.execute(f"PRAGMA foreign_key_list({t})").fetchall() for t in names)] += 1
        key_names.update(cols[0].lower() == "id" for cols in names.values())
    assert styles["snake_case"] >= 20 and styles["CamelCase"] >= 10 and styles["other"] >= 5, styles
    assert declared[True] >= 20 and declared[False] >= 10, declared  # foreign keys declared, or not
    joined = {e.db_id for e in examples if " JOIN " in e.sql}
    undeclared = {d for d, conn in connections.items()
                  if not any(conn.execute(f"PRAGMA foreign_key_list({t})").fetchall() for t in names_of(conn))}
    assert joined & undeclared  # joins on keys the schema does not declare
    assert min(table_counts) == 3 and max(table_counts) <= 15 and sum(n >= 10 for n in table_counts) >= 3
    assert key_names[True] >= 50 and key_names[False] >= 50  # keys named `id` and `<table>_id`
    # abbreviations that no domain spells out itself: `dept`, `emp`, `qty`...
    native = {w for text in D.DOMAINS.values() for t in parse_domain(text) for c in t.cols for w in c.name.split("_")}
    shorts = {s for s in D.ABBREVIATIONS.values() if s not in native}
    abbreviated = [c for conn in connections.values() for cols in names_of(conn).values() for c in cols
                   if set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", c).lower())) & shorts]
    assert len(abbreviated) >= 30
    # text values with spaces and capitals, and one category stored in different cases by different databases
    values = [v for conn in connections.values() for t, cols in names_of(conn).items() for c in cols
              for (v,) in conn.execute(f"SELECT DISTINCT {c} FROM {t} WHERE typeof({c}) = 'text'")]
    assert any(" " in v and v != v.lower() for v in values)
    spellings = Counter(v.lower() for v in set(values))
    assert sum(n >= 2 for n in spellings.values()) >= 10


def test_reproducible(tmp_path):
    a = generate_dataset(tmp_path / "a", 5, 200, seed=3)
    b = generate_dataset(tmp_path / "b", 5, 200, seed=3)
    c = generate_dataset(tmp_path / "c", 5, 200, seed=4)
    assert len(a) == 200 and [(e.question, e.sql) for e in a] == [(e.question, e.sql) for e in b]
    assert [(e.question, e.sql) for e in a] != [(e.question, e.sql) for e in c]

    def databases(root):
        return {p.name: p.read_bytes() for p in (root / "database").rglob("*.sqlite")}

    assert databases(tmp_path / "a") == databases(tmp_path / "b")  # the same databases, byte for byte


def test_small_generation_keeps_the_mix(tmp_path):
    """A few databases still get Spider's mix: each database asks for what keeps the running mix on target."""
    examples = generate_dataset(tmp_path, num_databases=3, num_questions=60, seed=1, write=False)
    assert len(examples) == 60
    levels = Counter(e.difficulty for e in examples)
    assert all(abs(100 * levels[lv] / 60 - share) <= 5 for lv, share in SPIDER_MIX.items()), levels


def test_plural():
    assert [plural(w) for w in ("city", "price", "weight in kilograms", "years of experience", "class", "date shipped",
                                "copies sold", "top speed")] == \
           ["cities", "prices", "weights in kilograms", "years of experience", "classes", "dates shipped",
            "copies sold", "top speeds"]
