"""scripts/prepare_sql.py on every source, each from a small fixture in its real layout (and on the real Spider
train split when it is on this machine): masking, EOS, splits, duplicates and rejects."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from lit_sql.data.prepare import IGNORE_INDEX, parse_mix, prepare
from lit_sql.data.schema import read_schema, render_schema
from lit_sql.errors import LitSQLError
from lit_sql.sql.extract import extract_sql
from lit_sql.sql.links import render_links, schema_links
from lit_sql.sql.metrics import DIFFICULTY_LEVELS
from lit_sql.tokenizer import Tokenizer
from tests.conftest import SPIDER_TRAIN, make_tiny_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    # the tiny tokenizer spends about one token per 2 characters: a long context keeps whole schemas
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), block_size=4096)


def run(checkpoint, tmp_path, **kwargs) -> tuple[list, list, dict, list]:
    out = prepare(checkpoint_dir=checkpoint, out_dir=tmp_path / "out", max_seq_length=4096, **kwargs)
    train = torch.load(out / "train.pt", weights_only=False)
    test = torch.load(out / "test.pt", weights_only=False)
    meta = json.loads((out / "meta.json").read_text())
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return train, test, meta, rejects


def check_records(records, tokenizer, mask=True):
    for r in records:
        ids, labels = r["input_ids"], r["labels"]
        assert ids.dtype == torch.long and labels.shape == ids.shape
        n = r["prompt_length"]
        assert ids[-1].item() == tokenizer.eos_id  # the EOS ends every answer
        assert tokenizer.decode(ids[n:]).strip() == r["sql"]
        assert tokenizer.decode(ids[:n], skip_special_tokens=False) == r["prompt"]
        if mask:
            assert (labels[:n] == IGNORE_INDEX).all() and torch.equal(labels[n:], ids[n:])
        else:
            assert torch.equal(labels, ids)
        assert r["question"] in r["prompt"] and r["schema"] in r["prompt"]
        assert r["difficulty"] in DIFFICULTY_LEVELS


def test_spider_layout_rejects_and_database_split(checkpoint, tmp_path):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="spider", data_path=FIXTURES / "spider",
                                     split_by="database", test_split_fraction=0.3)
    check_records(train + test, Tokenizer(checkpoint))
    reasons = sorted(r["reason"].split(":")[0] for r in rejects)
    assert reasons == ["SQL does not execute on school", "SQL does not parse", "missing field 'question'",
                       "unknown database 'airport' (no database/airport/airport.sqlite under "
                       f"{FIXTURES / 'spider'})"]
    # Whole databases go to test until 30% of the 7 valid examples are covered: one database does it.
    valid = {"school": 4, "shop": 3}  # the fixture's rows that parse, execute and are not duplicates
    (test_db,) = {r["db_id"] for r in test}
    assert test_db == "shop"  # the database seed 42 draws first
    assert meta["counts"] == {"train": 7 - valid[test_db], "test": valid[test_db], "rejected": 4, "duplicates": 1,
                              "shortened": 0}
    assert not {r["db_id"] for r in train} & {r["db_id"] for r in test}  # no test database seen in training
    for r in train + test:
        assert Path(r["db_path"]).is_absolute() and Path(r["db_path"]).is_file()
        assert r["schema"].startswith("CREATE TABLE")
    assert meta["tokenizer"] == Tokenizer(checkpoint).name and meta["prompt_style"] == "chatml"
    assert meta["prompt_tokens"]["n"] == 7


def test_bird_evidence_goes_into_the_prompt(checkpoint, tmp_path):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="bird", data_path=FIXTURES / "bird",
                                     schema_format="compact", sample_rows=1, mask_prompt=False)
    check_records(train + test, Tokenizer(checkpoint), mask=False)
    big = next(r for r in train + test if r["question"].startswith("How many big"))
    assert "Hint: big refers to amount > 10" in big["prompt"]
    assert "customer(customer_id INT PK, name TEXT, city TEXT)\n  rows: (1, 'Omar Rossi', 'Lyon')" in big["schema"]
    assert [r["reason"] for r in rejects] == ["field 'evidence' is not text (int)"]


def test_sql_create_context_local_copy(checkpoint, tmp_path):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="sql-create-context",
                                     data_path=FIXTURES / "sql_create_context.json", test_split_fraction=0.34)
    check_records(train + test, Tokenizer(checkpoint))
    assert len(train) + len(test) == 3 and len(test) == 1
    assert meta["counts"]["duplicates"] == 1
    assert sorted(r["reason"].split(":")[0] for r in rejects) == [
        "SQL does not parse", "field 'question' is not text (int)", "missing field 'answer'"]
    assert any(r["schema"] == "CREATE TABLE singer (name VARCHAR, country VARCHAR);" for r in train + test)


def test_synthetic_text_to_sql(checkpoint, tmp_path):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="synthetic-text-to-sql",
                                     data_path=FIXTURES / "synthetic_text_to_sql.jsonl")
    assert len(train) == 4 and len(test) == 1 and not rejects  # the default 80/20 split
    check_records([r for r in train + test if r["difficulty"]], Tokenizer(checkpoint))
    sales = next(r for r in train + test if "revenue" in r["question"])
    assert "INSERT INTO sales VALUES" in sales["schema"] and sales["extra"]["domain"] == "retail"
    assert sales["sql"] == "SELECT SUM(amount) FROM sales WHERE year = 2022"


@pytest.mark.parametrize("name, keys, n, reasons", [
    ("alpaca.json", {}, 2, []),
    ("messages.jsonl", {}, 1, ["invalid UTF-8 in field 'content'", "messages hold no user turn and assistant turn"]),
    ("custom.csv", {"question_key": "q", "context_key": "ddl", "sql_key": "gold"}, 2, ["empty field 'gold'"]),
])
def test_json_formats(checkpoint, tmp_path, name, keys, n, reasons):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="json", data_path=FIXTURES / name,
                                     test_split_fraction=0.0, **keys)
    assert len(train) == n and not test
    check_records(train, Tokenizer(checkpoint))
    assert sorted(r["reason"] for r in rejects) == sorted(reasons)
    if name == "messages.jsonl":  # the CREATE TABLE in the user turn becomes the schema
        assert train[0]["schema"] == "CREATE TABLE city (name TEXT, population INTEGER);"
        assert train[0]["question"] == "Which city has the largest population?"


def test_gold_that_is_no_query_is_rejected_without_a_database(checkpoint, tmp_path):
    """Without a database the gold SQL is only parsed, and sqlglot reads "SELEC nope" as a column with an alias:
    such gold is rejected with its reason, a real query or statement is kept."""
    data = tmp_path / "gold.jsonl"
    rows = [("How many planets?", "SELECT count(*) FROM planet"), ("Typo?", "SELEC nope"),
            ("Prose?", "hello world"), ("Remove the small ones.", "DELETE FROM planet WHERE name = 'x'")]
    data.write_text("".join(json.dumps({"question": q, "context": "CREATE TABLE planet (name TEXT)", "sql": sql})
                            + "\n" for q, sql in rows))
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="json", data_path=data, test_split_fraction=0.0)
    assert sorted(r["sql"] for r in train) == ["DELETE FROM planet WHERE name = 'x'", "SELECT count(*) FROM planet"]
    assert {r["sql"]: r["reason"] for r in rejects} == {
        "SELEC nope": "SQL does not parse: no query or statement, only a bare expression (Alias)",
        "hello world": "SQL does not parse: no query or statement, only a bare expression (Alias)"}
    assert meta["rejects_by_reason"] == {"SQL does not parse": 2}


def test_generated_and_mix(checkpoint, tmp_path, capsys):
    train, test, meta, rejects = run(checkpoint, tmp_path, mix=f"generated:0.5,spider@{FIXTURES / 'spider'}:2",
                                     num_databases=3, num_questions=60, test_split_fraction=0.2)
    # the report gives the difficulty mix of what was written, train and test together
    levels = Counter(r["difficulty"] for r in train + test)
    shares = ", ".join(f"{lv} {100 * levels[lv] / len(train + test):.1f}%" for lv in DIFFICULTY_LEVELS if lv in levels)
    assert f"difficulty: {shares} (of {len(train + test)})" in capsys.readouterr().err
    sources = meta["sources"]
    assert sources["generated"]["train"] == 48 and sources["spider"]["train"] == 6
    assert sum(r["source"] == "generated" for r in train) == 24  # a seeded half
    assert sum(r["source"] == "spider" for r in train) == 12  # each twice
    assert len(test) == 12 + 1
    assert (tmp_path / "out" / "database" / "library_1" / "library_1.sqlite").is_file()
    check_records(train[:10], Tokenizer(checkpoint))


def test_too_long_is_shortened_then_rejected(checkpoint, tmp_path):
    out = prepare(dataset="spider", data_path=FIXTURES / "spider", checkpoint_dir=checkpoint, out_dir=tmp_path,
                  max_seq_length=310, test_split_fraction=0.0, sample_rows=3)
    meta = json.loads((out / "meta.json").read_text())
    train = torch.load(out / "train.pt", weights_only=False)
    assert all(len(r["input_ids"]) <= 310 and r["input_ids"][-1] == 2 for r in train)
    # Every schema with 3 sample rows is too long at 310 tokens: each kept example had its schema shortened
    # (rows first); the two JOIN questions, with the longest SQL, did not fit even so.
    whole = {r["db_path"]: render_schema(r["db_path"], sample_rows=3) for r in train}
    assert all(r["schema"] != whole[r["db_path"]] and "INSERT INTO" not in r["schema"] for r in train)
    assert meta["counts"]["shortened"] == len(train) == 5
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    too_long = sorted(r["question"] for r in rejects if r["reason"].startswith("too long"))
    assert too_long == ["What is the total amount spent by Omar Rossi?", "Which courses does Ana Silva teach?"]
    assert meta["rejects_by_reason"]["too long"] == 2 and len(train) + len(too_long) == 7  # the 7 valid rows


def test_strict_and_bad_flags(checkpoint, tmp_path):
    with pytest.raises(LitSQLError, match="--strict: 4 rows rejected"):
        prepare(dataset="spider", data_path=FIXTURES / "spider", checkpoint_dir=checkpoint, out_dir=tmp_path,
                strict=True, max_seq_length=4096)
    with pytest.raises(LitSQLError, match="pass --data_path"):
        prepare(dataset="spider", checkpoint_dir=checkpoint, out_dir=tmp_path)
    with pytest.raises(LitSQLError, match="does not exist"):
        prepare(dataset="bird", data_path=tmp_path / "nowhere", checkpoint_dir=checkpoint, out_dir=tmp_path)
    with pytest.raises(LitSQLError, match="longer than the model's context"):
        prepare(checkpoint_dir=checkpoint, out_dir=tmp_path, max_seq_length=10_000)
    with pytest.raises(LitSQLError, match="unknown source 'spyder'"):
        parse_mix("spyder:1", "generated", None)


def test_linked_targets_name_what_the_gold_query_uses_then_the_sql(checkpoint, tmp_path):
    """scripts/prepare_sql.py --target_format linked: each answer is the links line derived from the gold SQL, then
    the SQL after its label; the rows, prompts and the records' "sql" are those of plain answers."""
    common = ["--dataset", "spider", "--data_path", str(FIXTURES / "spider"), "--checkpoint_dir", str(checkpoint),
              "--max_seq_length", "4096", "--split_by", "database", "--test_split_fraction", "0.3"]
    for target_format in ("linked", "sql"):
        result = subprocess.run([sys.executable, "scripts/prepare_sql.py", *common, "--out_dir",
                                 str(tmp_path / target_format), "--target_format", target_format],
                                cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    linked, plain = ([r for split in ("train", "test") for r in torch.load(tmp_path / f / f"{split}.pt",
                                                                           weights_only=False)]
                     for f in ("linked", "sql"))
    assert json.loads((tmp_path / "linked" / "meta.json").read_text())["target_format"] == "linked"
    assert json.loads((tmp_path / "sql" / "meta.json").read_text())["target_format"] == "sql"
    assert [(r["prompt"], r["sql"]) for r in linked] == [(r["prompt"], r["sql"]) for r in plain]
    assert all("target" not in r for r in plain)
    check_records(plain, Tokenizer(checkpoint))
    tokenizer = Tokenizer(checkpoint)
    for r in linked:
        ids, n = r["input_ids"], r["prompt_length"]
        answer = tokenizer.decode(ids[n:])
        links = render_links(schema_links(r["sql"], read_schema(r["db_path"])))
        assert answer == r["target"] == f"{links}\nSQL: {r['sql']}"
        assert ids[-1].item() == tokenizer.eos_id and (r["labels"][:n] == IGNORE_INDEX).all()
        assert extract_sql(answer) == r["sql"]
    targets = {r["question"]: r["target"] for r in linked}
    assert targets["Which courses does Ana Silva teach?"].startswith(
        "Links: course(title, teacher_id), teacher(teacher_id, name)\nSQL: SELECT T1.title FROM course AS T1 JOIN")
    assert targets["How many customers are there?"] == "Links: customer\nSQL: SELECT count(*) FROM customer"


def test_linked_targets_from_create_table_text_and_a_row_without_links(checkpoint, tmp_path, monkeypatch):
    import lit_sql.sql.links

    train, test, meta, _ = run(checkpoint, tmp_path / "context", dataset="sql-create-context",
                               data_path=FIXTURES / "sql_create_context.json", target_format="linked")
    targets = {r["question"]: r["target"] for r in train + test}
    assert targets["What is the name of the singer from France?"] == (  # "France": a string to SQLite
        'Links: singer(name, country)\nSQL: SELECT name FROM singer WHERE country = "France"')

    real = lit_sql.sql.links.schema_links

    def fails_on_avg(sql, schema):
        if "avg(" in sql:
            raise LitSQLError("sqlglot cannot parse the SQL: a stand-in for a query it cannot read")
        return real(sql, schema)

    monkeypatch.setattr(lit_sql.sql.links, "schema_links", fails_on_avg)
    train, test, meta, rejects = run(checkpoint, tmp_path / "spider", dataset="spider", data_path=FIXTURES / "spider",
                                     target_format="linked")
    (bad,) = [r for r in rejects if "links" in r["reason"]]
    assert bad["source"] == "spider" and bad["index"] == 3 and bad["question"] == "What is the average age of teachers?"
    assert bad["reason"] == ("schema links not derived (--target_format linked): sqlglot cannot parse the SQL: a "
                             "stand-in for a query it cannot read")
    assert meta["rejects_by_reason"]["schema links not derived"] == 1
    assert "What is the average age of teachers?" not in {r["question"] for r in train + test}
    with pytest.raises(LitSQLError, match="--target_format must be one of sql, linked, got 'links'"):
        prepare(checkpoint_dir=checkpoint, out_dir=tmp_path, target_format="links")


def test_unreachable_hub_fails_at_once(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(LitSQLError, match="pass the local copy .* with --data_path"):
        prepare(dataset="sql-create-context", checkpoint_dir=checkpoint, out_dir=tmp_path)


def test_cli_prints_error_without_traceback(checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "scripts/prepare_sql.py", "--dataset", "spider", "--checkpoint_dir",
                             str(checkpoint), "--out_dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: spider needs its data") and "Traceback" not in result.stderr


def test_a_source_without_usable_examples_is_an_error_naming_its_file(checkpoint, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = subprocess.run([sys.executable, "scripts/prepare_sql.py", "--dataset", "json", "--data_path", str(empty),
                             "--checkpoint_dir", str(checkpoint), "--out_dir", str(tmp_path / "out"),
                             "--max_seq_length", "2048"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {empty} holds no examples (0 rows read): pass a file with "
                                          f"questions and their SQL"]
    assert not (tmp_path / "out" / "train.pt").exists()
    rejected = tmp_path / "rejected.jsonl"
    rejected.write_text(json.dumps({"question": "Typo?", "context": "CREATE TABLE t (a INT)", "sql": "SELEC a"}) + "\n")
    with pytest.raises(LitSQLError, match=f"^{rejected} holds no usable examples: all 1 rows were rejected "
                                          f"\\(1 SQL does not parse\\); the first, row 0: SQL does not parse"):
        prepare(dataset="json", data_path=rejected, checkpoint_dir=checkpoint, out_dir=tmp_path / "out")
    # Examples that are all too long for --max_seq_length leave nothing to train on either.
    with pytest.raises(LitSQLError, match="none of the 2 training examples could be prepared \\(2 too long\\)"):
        prepare(dataset="json", data_path=FIXTURES / "alpaca.json", checkpoint_dir=checkpoint,
                out_dir=tmp_path / "out", max_seq_length=16, test_split_fraction=0.0)


@pytest.mark.skipif(not SPIDER_TRAIN.is_dir(), reason="the real Spider train split is not on this machine")
def test_real_spider_sample(checkpoint, tmp_path):
    train, test, meta, rejects = run(checkpoint, tmp_path, dataset="spider", data_path=SPIDER_TRAIN,
                                     split_by="database", max_examples=300)
    assert len(train) + len(test) + meta["counts"]["duplicates"] + len(rejects) == 300
    assert not {r["db_id"] for r in train} & {r["db_id"] for r in test}
    assert all(r["reason"].startswith(("SQL does not execute", "too long")) for r in rejects)
    check_records(train[:50] + test[:20], Tokenizer(checkpoint))
