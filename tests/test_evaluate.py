"""Evaluation's `--num_samples` voting and `--fix_errors`: the vote on real SQLite results, the sampled candidates,
the repair prompt, and eval/sql.py end to end with each flag.

Expected results come from running the SQL with plain sqlite3 on the fixture database (tests/fixtures/data),
never from lit_sql's own execution. Where the model's choice of tokens must be known in advance, a scripted
decoder takes the place of `generate_batch`: it answers each prompt with set SQL, as token ids of the real
tokenizer, so prompt building, decoding, SQL extraction, execution, voting and repair all run as in a real
evaluation.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import pytest
import torch

import lit_sql.evaluate as evaluate
from lit_sql.data.prompt import build_prompt
from lit_sql.data.schema import render_schema
from lit_sql.evaluate import EvalConfig, candidates_for, evaluate_examples, fix_errors, generate_sql, summarize
from lit_sql.generation import SamplingConfig, generate_batch
from lit_sql.prompts import load_prompt_style
from lit_sql.tokenizer import Tokenizer
from tests.conftest import REPO_ROOT, make_tiny_checkpoint

SCHOOL = REPO_ROOT / "tests" / "fixtures" / "data" / "spider" / "database" / "school" / "school.sqlite"
SYSTEM = "Reply with one SQLite query and nothing else."  # not the default: the repair prompt must keep it
REPAIR_MARK = "That query failed in SQLite with: "
LYON = ("How many teachers live in Lyon?", "SELECT count(*) FROM teacher WHERE city = 'Lyon'")
NAMES = ("List the names of all teachers.", "SELECT name FROM teacher")
AGE = ("What is the average age of teachers?", "SELECT avg(age) FROM teacher")


def sqlite_result(sql: str):
    """Rows of `sql` on the school database, or SQLite's error as lit_sql words it ('<class>: <message>')."""
    conn = sqlite3.connect(f"{SCHOOL.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error as e:
        return f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def example(question: str, sql: str, style=None) -> dict:
    ex = {"question": question, "sql": sql, "db_path": str(SCHOOL), "db_id": "school",
          "schema": render_schema(SCHOOL)}
    if style is not None:  # the prompt as scripts/prepare_sql.py writes it
        ex["prompt"] = build_prompt(style, question, ex["schema"], system=SYSTEM)
    return ex


def vote(question_sql: tuple[str, str], candidates: list[str]) -> dict:
    cfg = EvalConfig(num_samples=len(candidates), workers=1)
    return evaluate_examples([example(*question_sql)], [candidates], cfg)[0]


# ---- voting ----------------------------------------------------------------------------------------------------
def test_the_result_most_candidates_agree_on_wins_over_the_first_candidate():
    candidates = ["SELECT count(*) FROM teacher",  # every teacher: 3
                  "SELECT count(*) FROM teacher WHERE city = 'Lyon'",
                  "SELECT count(name) FROM teacher WHERE city LIKE 'lyon'"]  # other SQL, the same 2
    assert [sqlite_result(c) for c in candidates] == [[(3,)], [(2,)], [(2,)]] and sqlite_result(LYON[1]) == [(2,)]
    record = vote(LYON, candidates)
    assert (record["prediction"], record["votes"], record["match"]) == (candidates[1], 2, True)
    assert record["candidates"] == candidates and record["pred_rows"] == [[2]] and record["executes"]
    alone = evaluate_examples([example(*LYON)], [candidates[:1]], EvalConfig(workers=1))[0]  # no vote: wrong
    assert (alone["prediction"], alone["votes"], alone["match"], alone["candidates"]) == (candidates[0], 1, False, None)


def test_failed_candidates_never_win_however_many_agree():
    failing = "SELECT nme FROM teacher"
    assert sqlite_result(failing) == "OperationalError: no such column: nme"
    wrong = "SELECT name FROM teacher WHERE age > 30"
    assert sorted(sqlite_result(wrong)) == [("Ana Silva",), ("Mei Chen",)] != sqlite_result(NAMES[1])
    record = vote(NAMES, [failing, failing, wrong])
    assert (record["prediction"], record["votes"], record["executes"], record["pred_error"]) == (wrong, 1, True, None)
    assert record["match"] is False
    # Only failures: the first candidate is kept, with its error, and nothing has a vote.
    record = vote(NAMES, [failing, "SELEC name FROM teacher"])
    assert (record["prediction"], record["votes"], record["executes"]) == (failing, 0, False)
    assert record["pred_error"] == sqlite_result(failing) and record["pred_rows"] is None


def test_a_tie_goes_to_the_result_the_earliest_candidate_gave():
    youngest = "SELECT min(age) FROM teacher"  # one vote
    oldest = ["SELECT max(age) FROM teacher", "SELECT age FROM teacher ORDER BY age DESC LIMIT 1"]  # 41 twice
    mean = ["SELECT avg(age) FROM teacher", "SELECT sum(age) / 3.0 FROM teacher"]  # 35.0 twice
    assert [sqlite_result(sql) for sql in (youngest, *oldest, *mean)] == [[(29,)], [(41,)], [(41,)], [(35.0,)],
                                                                         [(35.0,)]]
    first_oldest = vote(AGE, [youngest, oldest[0], mean[0], oldest[1], mean[1]])
    assert (first_oldest["prediction"], first_oldest["votes"], first_oldest["match"]) == (oldest[0], 2, False)
    first_mean = vote(AGE, [youngest, mean[1], oldest[0], mean[0], oldest[1]])
    assert (first_mean["prediction"], first_mean["votes"], first_mean["match"]) == (mean[1], 2, True)


# ---- sampling several candidates --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny random model, with a context long enough for the school schema and a repair turn."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("eval_checkpoint"), block_size=1024)


@pytest.fixture(scope="module")
def model(checkpoint):
    from lit_sql.checkpoint import load_model

    return load_model(checkpoint).eval()


class ScriptedDecoder:
    """Stands in for `generate_batch`: answers each prompt with the SQL `script` gives its question, as token ids.

    `script[question]` lists the answers to the question's first prompt, one per sample (the k-th copy of a
    prompt in a batch gets the k-th), and under "repair" the answer to its repair prompt. Each call is logged."""

    def __init__(self, checkpoint_dir: Path, script: dict, log: Optional[Path] = None) -> None:
        self.tokenizer, self.script, self.log = Tokenizer(checkpoint_dir), script, log
        self.calls: list[dict] = []

    def __call__(self, model, prompts, max_new_tokens, pad_id, sampling=SamplingConfig(), stop_tokens=(),
                 generator=None, grounding=None) -> list[list[int]]:
        texts = [self.tokenizer.decode(list(p), skip_special_tokens=False) for p in prompts]
        call = {"prompts": texts, "sampling": asdict(sampling)}
        self.calls.append(call)
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(json.dumps(call) + "\n")
        out = []
        for row, text in enumerate(texts):
            (question,) = [q for q in self.script if f"Question: {q}" in text]
            if REPAIR_MARK in text:
                answer = self.script[question]["repair"]
            else:
                answer = self.script[question]["samples"][texts[:row].count(text)]
            out.append(self.tokenizer.encode(answer, bos=False))  # as generate_batch: without the stop token
        return out


def test_each_question_gets_its_own_samples_in_order_and_sampling_is_on(checkpoint, monkeypatch):
    style = load_prompt_style(checkpoint)
    questions = [LYON, NAMES, AGE]
    script = {q: {"samples": [f"SELECT {i}{k} FROM teacher" for k in range(3)]} for i, (q, _) in enumerate(questions)}
    decoder = ScriptedDecoder(checkpoint, script)
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    prompts = [example(q, sql, style)["prompt"] for q, sql in questions]
    cfg = EvalConfig(num_samples=3, temperature=0.8, batch_size=6, greedy_first=False)  # 2 questions a batch
    candidates = generate_sql(None, Tokenizer(checkpoint), style, prompts, cfg)
    assert candidates == [script[q]["samples"] for q, _ in questions]
    assert sorted(len(call["prompts"]) for call in decoder.calls) == [3, 6]
    for call in decoder.calls:  # each prompt three times in a row, sampled at the set temperature and top_p
        assert call["prompts"][::3] == call["prompts"][1::3] == call["prompts"][2::3]
        assert call["sampling"] == asdict(SamplingConfig(temperature=0.8, top_p=0.95))
    decoder.calls.clear()
    assert generate_sql(None, Tokenizer(checkpoint), style, prompts, EvalConfig()) == [s["samples"][:1]
                                                                                      for s in script.values()]
    assert [call["sampling"] for call in decoder.calls] == [asdict(SamplingConfig())]  # one sample: greedy


def test_greedy_first_makes_the_greedy_answer_the_first_candidate(checkpoint, monkeypatch):
    """Execution-guided selection: the greedy answer, then samples; a vote without a winner keeps the greedy
    answer when it runs (the earliest candidate)."""
    style = load_prompt_style(checkpoint)
    questions = [LYON, NAMES]
    script = {q: {"samples": [f"SELECT {i}{k} FROM teacher" for k in range(3)]} for i, (q, _) in enumerate(questions)}
    decoder = ScriptedDecoder(checkpoint, script)
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    prompts = [example(q, sql, style)["prompt"] for q, sql in questions]
    candidates = generate_sql(None, Tokenizer(checkpoint), style, prompts, EvalConfig(num_samples=3, temperature=0.8))
    # The scripted decoder gives the k-th copy of a prompt its k-th answer: greedy (alone) gets the first, the two
    # samples the first two.
    assert candidates == [[s["samples"][0], s["samples"][0], s["samples"][1]] for s in script.values()]
    assert [call["sampling"] for call in decoder.calls] == [asdict(SamplingConfig()),
                                                            asdict(SamplingConfig(temperature=0.8, top_p=0.95))]
    assert [len(call["prompts"]) for call in decoder.calls] == [2, 4]


def test_sample_on_error_samples_only_where_the_greedy_query_fails(checkpoint, monkeypatch):
    """Execution-guided decoding: a question whose greedy query runs keeps it alone (one decode); one whose query
    fails gets samples too, and the vote picks a sample that runs."""
    style = load_prompt_style(checkpoint)
    questions = [LYON, NAMES, AGE]
    script = {LYON[0]: {"samples": [LYON[1], "SELECT nope FROM teacher", "SELECT 1"]},
              NAMES[0]: {"samples": ["SELECT nam FROM teacher", "SELECT name FROM teacher", "SELECT nom FROM teacher"]},
              AGE[0]: {"samples": ["SELECT avg(ag) FROM teacher", "SELECT avg(age) FROM teachers",
                                   "SELECT avg(age) FROM teacher"]}}
    decoder = ScriptedDecoder(checkpoint, script)
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    examples = [example(q, sql, style) for q, sql in questions]
    prompts = [ex["prompt"] for ex in examples]
    cfg = EvalConfig(num_samples=3, temperature=0.8, sample_on_error=True, workers=1)
    candidates = candidates_for(None, Tokenizer(checkpoint), style, prompts, examples, cfg)
    # The scripted decoder gives the k-th copy of a prompt in a call its k-th answer: greedy gets the first, the
    # two samples of a failing question the first two.
    assert candidates == [[LYON[1]], ["SELECT nam FROM teacher"] * 2 + ["SELECT name FROM teacher"],
                          ["SELECT avg(ag) FROM teacher"] * 2 + ["SELECT avg(age) FROM teachers"]]
    greedy_call, sample_call = decoder.calls
    assert greedy_call["sampling"] == asdict(SamplingConfig()) and len(greedy_call["prompts"]) == 3
    assert sample_call["sampling"] == asdict(SamplingConfig(temperature=0.8, top_p=0.95))
    assert sample_call["prompts"] == [prompts[1]] * 2 + [prompts[2]] * 2  # only the failing questions, twice each
    records = evaluate_examples(examples, candidates, cfg)
    assert [r["prediction"] for r in records] == [LYON[1], "SELECT name FROM teacher", "SELECT avg(ag) FROM teacher"]
    assert [r["match"] for r in records] == [True, True, False]  # no sample of the third ran: its greedy answer stays
    # Off (the default), every question is sampled as before.
    decoder.calls.clear()
    plain = candidates_for(None, Tokenizer(checkpoint), style, prompts, examples, replace(cfg, sample_on_error=False))
    assert [len(c) for c in plain] == [3, 3, 3]


def test_the_real_model_samples_different_candidates_reproducibly(checkpoint, model, monkeypatch):
    tokenizer, style = Tokenizer(checkpoint), load_prompt_style(checkpoint)
    rows = []  # what the model decoded, before SQL extraction (a random model writes no SQL)

    def recording(*args, **kwargs):
        rows.append(generate_batch(*args, **kwargs))
        return rows[-1]

    monkeypatch.setattr(evaluate, "generate_batch", recording)
    prompts = [example(q, sql, style)["prompt"] for q, sql in (LYON, NAMES)]
    cfg = EvalConfig(num_samples=3, temperature=1.0, max_new_tokens=8, batch_size=6, greedy_first=False)
    assert [len(c) for c in generate_sql(model, tokenizer, style, prompts, cfg, seed=7)] == [3, 3]
    (first,) = rows
    assert len(first) == 6 and len({tuple(t) for t in first}) == 6  # six different samples
    generate_sql(model, tokenizer, style, prompts, cfg, seed=7)
    assert rows[1] == first  # the seed fixes them
    generate_sql(model, tokenizer, style, prompts, cfg, seed=8)
    assert rows[2] != first


# ---- fixing errors ------------------------------------------------------------------------------------------------
def test_a_failing_query_gets_a_second_turn_with_the_sqlite_error_and_the_repair_is_scored(checkpoint, model,
                                                                                           monkeypatch):
    style, tokenizer = load_prompt_style(checkpoint), Tokenizer(checkpoint)
    wrong_column = "SELECT count(*) FROM teacher WHERE cty = 'Lyon'"
    typo = "SELECT avg(agee) FROM teacher"
    script = {LYON[0]: {"samples": [wrong_column], "repair": LYON[1]},
              NAMES[0]: {"samples": [NAMES[1]], "repair": "SELECT 'never asked'"},
              AGE[0]: {"samples": [typo], "repair": typo}}  # repaired no better
    decoder = ScriptedDecoder(checkpoint, script)
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    oldest = ("Who is the oldest teacher?", "SELECT name FROM teacher ORDER BY age DESC LIMIT 1")
    examples = [example(*qs, style) for qs in (LYON, NAMES, AGE, oldest)]
    cfg = EvalConfig(workers=1)
    candidates = generate_sql(None, tokenizer, style, [ex["prompt"] for ex in examples[:3]], cfg) + [[""]]  # no SQL
    records = evaluate_examples(examples, candidates, cfg)
    assert [r["executes"] for r in records] == [False, True, False, False]
    before = [dict(r) for r in records]
    decoder.calls.clear()

    assert fix_errors(model, tokenizer, style, examples, records, cfg, system_prompt=SYSTEM) == 2
    (call,) = decoder.calls
    assert call["sampling"] == asdict(SamplingConfig())  # the repair is greedy
    errors = {wrong_column: "OperationalError: no such column: cty", typo: "OperationalError: no such column: agee"}
    assert {sql: sqlite_result(sql) for sql in errors} == errors
    assert len(call["prompts"]) == 2
    for ex, failed in ((examples[0], wrong_column), (examples[2], typo)):
        # The conversation the model answered (its system prompt too), its answer, then SQLite's error verbatim
        (prompt,) = [p for p in call["prompts"] if p.startswith(ex["prompt"])]
        assert prompt.startswith(f"{ex['prompt']}{failed}<|im_end|>\n<|im_start|>user\n{REPAIR_MARK}{errors[failed]}\n")
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    # The repaired answer is what is scored; the original stays on the record.
    assert (records[0]["prediction"], records[0]["fixed_from"], records[0]["match"]) == (LYON[1], wrong_column, True)
    assert (records[2]["prediction"], records[2]["fixed_from"], records[2]["executes"]) == (typo, typo, False)
    assert records[1] == before[1] and records[3] == before[3]  # right, or no SQL to show: not retried
    assert summarize(before, "testsuite")["execution_accuracy"] == 25.0
    assert summarize(records, "testsuite")["execution_accuracy"] == 50.0


def test_repair_prompts_are_greedy_even_when_the_first_pass_sampled(checkpoint, model, monkeypatch):
    style, tokenizer = load_prompt_style(checkpoint), Tokenizer(checkpoint)
    failing = "SELECT nme FROM teacher"
    decoder = ScriptedDecoder(checkpoint, {NAMES[0]: {"samples": [failing] * 3, "repair": NAMES[1]}})
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    examples = [example(*NAMES, style)]
    cfg = EvalConfig(num_samples=3, temperature=0.9, workers=1, greedy_first=False)
    records = evaluate_examples(examples, generate_sql(None, tokenizer, style, [examples[0]["prompt"]], cfg), cfg)
    assert (records[0]["votes"], records[0]["pred_error"]) == (0, sqlite_result(failing))
    assert fix_errors(model, tokenizer, style, examples, records, cfg, system_prompt=SYSTEM) == 1
    assert [(len(c["prompts"]), c["sampling"]) for c in decoder.calls[1:]] == [(1, asdict(SamplingConfig()))]
    assert records[0]["match"] and records[0]["fixed_from"] == failing and records[0]["candidates"] is None


def test_a_repair_prompt_too_long_for_the_context_keeps_the_first_answer(checkpoint, model, tmp_path, monkeypatch,
                                                                         capsys):
    """A repair turn lengthens the prompt: where it no longer fits, the first answer stands; the evaluation goes on
    and the repairs that fit are still asked."""
    from lit_sql.checkpoint import load_model

    style, tokenizer = load_prompt_style(checkpoint), Tokenizer(checkpoint)
    short, long = "SELECT x FROM teacher", "SELECT name, age, city, title, teacher_id, course_id FROM teacher"
    script = {LYON[0]: {"samples": [short], "repair": LYON[1]}, NAMES[0]: {"samples": [long], "repair": NAMES[1]}}
    decoder = ScriptedDecoder(checkpoint, script)
    monkeypatch.setattr(evaluate, "generate_batch", decoder)
    examples = [example(*LYON, style), example(*NAMES, style)]
    cfg = EvalConfig(workers=1, max_new_tokens=8)
    first = evaluate_examples(examples, generate_sql(None, tokenizer, style, [e["prompt"] for e in examples], cfg), cfg)
    assert fix_errors(model, tokenizer, style, examples, [dict(r) for r in first], cfg) == 2  # room for both here
    lengths = sorted(len(tokenizer.encode(p)) for p in decoder.calls[-1]["prompts"])
    assert lengths[0] < lengths[1]
    # A context that holds the shorter repair prompt and its answer, not the longer one: the real model decodes.
    small = make_tiny_checkpoint(tmp_path / "small", block_size=lengths[0] + cfg.max_new_tokens)
    monkeypatch.setattr(evaluate, "generate_batch", generate_batch)
    records = [dict(r) for r in first]
    capsys.readouterr()
    assert fix_errors(load_model(small).eval(), tokenizer, style, examples, records, cfg) == 1
    assert records[1] == first[1]  # the long one: its first answer stands
    assert records[0]["fixed_from"] == short  # the short one was asked again
    assert "fix_errors: 1 repair prompts do not fit the model's context with --max_new_tokens 8" in \
        capsys.readouterr().err


# ---- eval/sql.py end to end ---------------------------------------------------------------------------------------
def prepared_school_data(data_dir: Path, checkpoint: Path, questions) -> Path:
    """test.pt and meta.json as scripts/prepare_sql.py writes them, for questions on the school database."""
    style, tokenizer = load_prompt_style(checkpoint), Tokenizer(checkpoint)
    records = []
    for question, sql in questions:
        ex = example(question, sql, style)
        prompt_ids, answer_ids = tokenizer.encode(ex["prompt"]), tokenizer.encode(sql, bos=False, eos=True)
        records.append({**ex, "input_ids": torch.tensor(prompt_ids + answer_ids),
                        "labels": torch.tensor([-100] * len(prompt_ids) + answer_ids), "difficulty": "easy",
                        "prompt_length": len(prompt_ids)})
    data_dir.mkdir(parents=True, exist_ok=True)
    torch.save(records, data_dir / "test.pt")
    (data_dir / "meta.json").write_text(json.dumps({"tokenizer": tokenizer.name, "prompt_style": style.name,
                                                    "system_prompt": SYSTEM}))
    return data_dir


def run_eval_script(checkpoint: Path, tmp_path: Path, script: dict, *flags: str) -> tuple[dict, list[dict], list, str]:
    """python eval/sql.py with `script` deciding the model's tokens; the summary, the records, the decoder calls and
    what it printed."""
    data = prepared_school_data(tmp_path / "data", checkpoint, [(q, s["gold"]) for q, s in script.items()])
    (tmp_path / "script.json").write_text(json.dumps(script))
    log, out = tmp_path / "decoder.jsonl", tmp_path / "eval"
    code = ("import json, runpy, sys\n"
            "from pathlib import Path\n"
            "import lit_sql.evaluate\n"
            "from tests.test_evaluate import ScriptedDecoder\n"
            "checkpoint, script, log = sys.argv[1:4]\n"
            "lit_sql.evaluate.generate_batch = ScriptedDecoder(Path(checkpoint), json.loads(Path(script).read_text()),"
            " Path(log))\n"
            "sys.argv = ['eval/sql.py', *sys.argv[4:]]\n"
            "runpy.run_path('eval/sql.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(tmp_path / "script.json"), str(log),
                             "--checkpoint_dir", str(checkpoint), "--data_dir", str(data), "--out_dir", str(out),
                             "--workers", "1", *flags], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"base": json.loads((out / "base_summary.json").read_text())}
    records = [json.loads(line) for line in (out / "base.jsonl").read_text().splitlines()]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return summary["base"], records, calls, result.stdout


def test_eval_script_with_three_samples_reports_the_voted_answers(checkpoint, tmp_path):
    script = {
        LYON[0]: {"gold": LYON[1], "samples": ["SELECT count(*) FROM teacher", LYON[1],
                                               "SELECT count(name) FROM teacher WHERE city LIKE 'lyon'"]},
        NAMES[0]: {"gold": NAMES[1], "samples": ["SELECT nme FROM teacher", "SELECT name FROM teacher WHERE age > 30",
                                                 "SELECT nme FROM teacher"]},
        AGE[0]: {"gold": AGE[1], "samples": ["SELECT max(age) FROM teacher", "SELECT min(age) FROM teacher",
                                             "SELECT avg(age) FROM teacher"]},
    }
    summary, records, calls, _ = run_eval_script(checkpoint, tmp_path, script, "--num_samples", "3",
                                              "--temperature", "0.9", "--greedy_first", "false")
    assert (summary["num_samples"], summary["fix_errors"], summary["n"]) == (3, False, 3)
    assert [r["candidates"] for r in records] == [s["samples"] for s in script.values()]
    # Lyon: 2 of 3 agree on the right count; names: one wrong query runs, two fail; age: three results, one
    # vote each, so the first one (max, wrong) wins.
    assert [(r["prediction"], r["votes"], r["match"]) for r in records] == [
        (LYON[1], 2, True), ("SELECT name FROM teacher WHERE age > 30", 1, False),
        ("SELECT max(age) FROM teacher", 1, False)]
    assert summary["execution_accuracy"] == round(100 / 3, 2) and summary["executes"] == 100.0
    assert all(c["sampling"] == asdict(SamplingConfig(temperature=0.9, top_p=0.95)) for c in calls)
    assert sorted(p for c in calls for p in c["prompts"]) == sorted(r["prompt"] for r in torch.load(
        tmp_path / "data" / "test.pt", weights_only=False) for _ in range(3))  # each question sampled 3 times
    report = (tmp_path / "eval" / "report.md").read_text()
    assert f"| execution_accuracy | {100 / 3:.1f} |" in report


def test_eval_script_with_fix_errors_scores_the_repaired_queries(checkpoint, tmp_path):
    script = {
        LYON[0]: {"gold": LYON[1], "samples": ["SELECT count(*) FROM teacher WHERE cty = 'Lyon'"], "repair": LYON[1]},
        NAMES[0]: {"gold": NAMES[1], "samples": [NAMES[1]], "repair": "SELECT 'never asked'"},
        AGE[0]: {"gold": AGE[1], "samples": ["SELECT avg(agee) FROM teacher"],
                 "repair": "SELECT max(age) FROM teacher"},
    }
    summary, records, calls, _ = run_eval_script(checkpoint, tmp_path, script, "--fix_errors", "true")
    assert (summary["num_samples"], summary["fix_errors"]) == (1, True)
    assert [(r["prediction"], r.get("fixed_from"), r["match"], r["executes"]) for r in records] == [
        (LYON[1], script[LYON[0]]["samples"][0], True, True),
        (NAMES[1], None, True, True),  # right the first time: never retried
        ("SELECT max(age) FROM teacher", script[AGE[0]]["samples"][0], False, True)]  # runs now, still wrong
    assert summary["execution_accuracy"] == round(200 / 3, 2) and summary["executes"] == 100.0
    first, repair = calls  # one batch of the three questions, then one of the two repair prompts, greedy both
    assert (len(first["prompts"]), len(repair["prompts"])) == (3, 2)
    assert [c["sampling"] for c in calls] == [asdict(SamplingConfig())] * 2
    # Each repair prompt continues the prepared prompt (with the data's own system prompt, from meta.json) after
    # the failed query, with SQLite's error.
    prompts = {r["question"]: r["prompt"] for r in torch.load(tmp_path / "data" / "test.pt", weights_only=False)}
    assert all(SYSTEM in p for p in prompts.values())
    for question in (LYON[0], AGE[0]):
        failed = script[question]["samples"][0]
        expected = f"{prompts[question]}{failed}<|im_end|>\n<|im_start|>user\n{REPAIR_MARK}{sqlite_result(failed)}\n"
        assert sum(p.startswith(expected) for p in repair["prompts"]) == 1


def test_an_evaluated_subset_says_so_in_the_table_and_the_report(checkpoint, tmp_path):
    """--limit (200 by default) evaluates a seeded sample: the printed table and report.md say how many of the
    split's questions were asked."""
    script = {q: {"gold": sql, "samples": [sql]} for q, sql in (LYON, NAMES, AGE)}
    summary, records, _, printed = run_eval_script(checkpoint, tmp_path / "two", script, "--limit", "2")
    assert len(records) == summary["n"] == 2 and summary["questions_in_split"] == 3
    scope = "2 of 3 test questions (seeded sample; --limit)"
    assert printed.splitlines()[0] == scope
    assert f"{scope}." in (tmp_path / "two" / "eval" / "report.md").read_text()
    summary, _, _, printed = run_eval_script(checkpoint, tmp_path / "all", script)
    assert printed.splitlines()[0] == "all 3 test questions" and summary["n"] == 3
