"""The main job (`lit-sql demo`): the real-question set shipped with the package, that it is never trained on, and
the before/after table and reports with a row for generated and a row for real questions."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import torch

from lit_sql.cli.demo import (GENERATED_LABEL, SIZES, prepare_data, results_table, settings, train_args,
                              write_report)
from lit_sql.data.prompt import PromptRecipe
from lit_sql.data.real import describe, prepare_real, real_databases, real_dir, real_questions
from lit_sql.sql.execute import execute_sql
from tests.conftest import REPO_ROOT, SPIDER_TRAIN, make_tiny_checkpoint


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    # Room for the main job's 512-token samples written with the tiny tokenizer's small vocabulary.
    return make_tiny_checkpoint(tmp_path_factory.mktemp("demo_checkpoint"), block_size=2048)


# ---- the shipped set ---------------------------------------------------------------------------------------
def test_shipped_set_loads_and_every_gold_query_runs():
    questions = real_questions()
    databases = real_databases()
    assert len(questions) == 208 and len(databases) == 8
    assert {q["db_id"] for q in questions} == set(databases)
    for q in questions:
        assert set(q) == {"db_id", "question", "query"} and q["question"].strip() and q["query"].strip()
    for db_id, path in databases.items():
        assert path.is_file() and path.is_relative_to(real_dir())
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # a real SQLite database with tables
            assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] >= 2
    nonempty = 0
    for q in questions:
        result = execute_sql(databases[q["db_id"]], q["query"], timeout_s=10)
        assert result.error is None and not result.timed_out, (q, result.error)
        nonempty += bool(result.rows)
    assert nonempty >= 200  # Spider has a few gold queries with an empty answer; almost all return rows


def test_shipped_files_are_package_data():
    """pyproject.toml's package-data patterns cover every file of the set, so a wheel carries it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["lit_sql"]
    package = REPO_ROOT / "lit_sql"
    files = [p.relative_to(package).as_posix() for p in (package / "data" / "real").rglob("*") if p.is_file()]
    assert "data/real/ATTRIBUTION.md" in files and len(files) == 2 + 8
    for f in files:
        assert any(fnmatch.fnmatch(f, pattern) for pattern in patterns), f"{f} is not package data"
    attribution = (package / "data" / "real" / "ATTRIBUTION.md").read_text()
    for needed in ("Spider", "Yu", "2018", "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"):
        assert needed in attribution
    for db_id in real_databases():
        assert f"`{db_id}`" in attribution


@pytest.mark.skipif(not SPIDER_TRAIN.is_dir(), reason="the real Spider train split is not on this machine")
def test_shipped_set_is_spider_unchanged_and_on_the_test_side_of_the_benchmark_split():
    """Byte-identical databases and Spider's own records, from databases that the Spider benchmarks' split
    (prepare_sql.py --dataset spider --split_by database, default fraction and seed) puts on the test side."""
    from lit_sql.data.prepare import check_sql, drop_duplicates, normalize_sql, split
    from lit_sql.data.sources import load_spider

    databases = real_databases()
    spider = json.loads((SPIDER_TRAIN / "train.json").read_text())
    assert real_questions() == [{k: r[k] for k in ("db_id", "question", "query")} for r in spider
                                if r["db_id"] in databases]
    for db_id, path in databases.items():
        assert sha256(path) == sha256(SPIDER_TRAIN / "database" / db_id / f"{db_id}.sqlite")
    # prepare()'s steps before tokenization: the split is decided by then
    examples, _ = load_spider(SPIDER_TRAIN)
    for ex in examples:
        ex.question, ex.sql = " ".join(ex.question.split()), normalize_sql(ex.sql)
    examples, _ = drop_duplicates(check_sql(examples, "spider")[0])
    train, test = split(examples, 0.1, "database", 42)
    assert set(databases) <= {ex.db_id for ex in test}
    assert not set(databases) & {ex.db_id for ex in train}


def test_prepare_real_writes_every_question_as_test_with_the_given_recipe(checkpoint, tmp_path):
    recipe = PromptRecipe(schema_format="compact", max_seq_length=2048, system_prompt="Write SQLite only.")
    out = prepare_real(recipe, tmp_path / "real", checkpoint)
    test = torch.load(out / "test.pt", weights_only=False)
    assert torch.load(out / "train.pt", weights_only=False) == []
    assert len(test) == 208 and {r["db_id"] for r in test} == set(real_databases())
    meta = json.loads((out / "meta.json").read_text())
    assert PromptRecipe.from_dict(meta).differences(recipe) == {"prompt_style": ("chatml", None)}
    first = test[0]
    assert "Write SQLite only." in first["prompt"] and "CREATE TABLE" not in first["prompt"]  # compact, not DDL
    assert Path(first["db_path"]).is_relative_to(real_dir())


# ---- never trained on --------------------------------------------------------------------------------------
def test_the_main_jobs_training_data_never_holds_the_real_databases(checkpoint, tmp_path):
    from lit_sql.data.generator import databases_plan

    shipped = real_databases()
    # The default run's databases, by name (generating all 50 would take long); the quick run's data, whole.
    for size in SIZES.values():
        assert not {db_id for db_id, _, _ in databases_plan(size["num_databases"], seed=42)} & set(shipped)
    data_dir = prepare_data(tmp_path, checkpoint, settings(quick=True))
    train = torch.load(data_dir / "train.pt", weights_only=False)
    assert len(train) > 100
    assert not {r["db_id"] for r in train} & set(shipped)
    trained_files = {r["db_path"] for r in train}
    assert not any(Path(p).resolve().is_relative_to(real_dir().resolve()) for p in trained_files)
    assert not {sha256(p) for p in trained_files} & {sha256(p) for p in shipped.values()}


def test_training_budget_counts_cpu_time():
    args = train_args(settings())
    assert args.clock == "cpu" and args.max_minutes == SIZES["default"]["cpu_minutes"]
    assert args.max_steps == SIZES["default"]["steps"]
    assert train_args(settings(cpu_minutes=0)).max_minutes is None  # 0: no time limit


# ---- the table ---------------------------------------------------------------------------------------------
def summary(accuracy: float, executes: float) -> dict:
    return {"execution_accuracy": accuracy, "executes": executes}


def rows(tmp_path: Path) -> list[dict]:
    return [{"name": "generated", "label": GENERATED_LABEL, "questions": 100, "base": summary(1.0, 20.0),
             "finetuned": summary(43.0, 76.0), "report": str(tmp_path / "eval" / "generated" / "report.md")},
            {"name": "real", "label": describe(), "questions": 208, "base": summary(0.5, 31.25),
             "finetuned": summary(4.33, 60.0), "report": str(tmp_path / "eval" / "real" / "report.md")}]


TRAINING = {"steps": 53, "clock": "cpu", "clock_seconds": 960.0, "seconds": 498.0}


def test_results_table_has_a_generated_and_a_real_row(tmp_path):
    lines = results_table(rows(tmp_path), seconds=861.0, training=TRAINING).splitlines()
    assert lines[0].split()[-3:] == ["questions", "base", "fine-tuned"]
    generated, real = lines[1], lines[2]
    assert generated.startswith("generated questions (synthetic)")
    assert generated.split()[-5:] == ["100", "1.0%", "(20%)", "43.0%", "(76%)"]
    assert real.startswith("real questions (Spider, 8 unseen databases)")
    assert real.split()[-5:] == ["208", "0.5%", "(31%)", "4.3%", "(60%)"]
    assert lines[-1] == "took 14m21s; fine-tuning: 53 steps in 16m00s of CPU time (8m18s of wall time)"
    # a run trained before the budget counted CPU time: no CPU figure to show
    assert results_table(rows(tmp_path), 861.0, {"steps": 53, "seconds": 498.0}).splitlines()[-1] == "took 14m21s"


def test_report_files_hold_both_rows(tmp_path):
    table = results_table(rows(tmp_path), 861.0, TRAINING)
    report, written = write_report(tmp_path, rows(tmp_path), table, {"training": TRAINING, "seconds": 861})
    text = report.read_text()
    assert table in text
    assert f"- {GENERATED_LABEL}: [eval/generated/report.md](eval/generated/report.md)" in text
    assert f"- {describe()}: [eval/real/report.md](eval/real/report.md)" in text
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == written
    assert saved["real"]["label"] == describe() and saved["real"]["questions"] == 208
    assert saved["generated"]["finetuned"]["execution_accuracy"] == 43.0 and saved["training"] == TRAINING
