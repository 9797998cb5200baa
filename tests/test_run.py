"""The run record (`lit_sql.run`): a run trained with compact schemas, value hints and a custom system prompt on a base
that is not the default is used by generate, eval, the app, merge and every export with no flag but --lora_path, and each
writes the prompt token for token as training did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lit_sql.data.prompt import PromptRecipe
from lit_sql.errors import LitSQLError
from lit_sql.run import RECIPE_FILE, base_run, load_run
from tests.conftest import REPO_ROOT, make_tiny_checkpoint

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "data"
SYSTEM = "Write one SQLite query for the question."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny base in a folder of its own, Spider-layout data prepared with compact schemas and value hints, and a
    2-step run."""
    from lit_sql.data.prepare import prepare

    root = tmp_path_factory.mktemp("run_record")
    checkpoint = make_tiny_checkpoint(root / "models" / "tiny-base", block_size=2048)
    common = dict(dataset="spider", data_path=FIXTURES / "spider", checkpoint_dir=checkpoint, max_seq_length=2048,
                  system_prompt=SYSTEM, test_split_fraction=0.3, split_by="database")
    data = prepare(out_dir=root / "compact", schema_format="compact", value_hints=True, **common)
    ddl = prepare(out_dir=root / "ddl", schema_format="ddl", **common)
    out = root / "run"
    result = subprocess.run(
        [sys.executable, "finetune/lora.py", "--checkpoint_dir", str(checkpoint), "--data_dir", str(data),
         "--out_dir", str(out), "--lora_r", "2", "--lora_alpha", "4", "--train.micro_batch_size", "2",
         "--train.global_batch_size", "2", "--train.max_steps", "2", "--train.save_interval", "1",
         "--train.eval_interval", "2", "--train.exec_eval_interval", "0", "--precision", "32-true"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return checkpoint, data, ddl, out


@pytest.fixture
def no_default(monkeypatch, tmp_path):
    """Make the default checkpoint unusable: a consumer that falls back to it instead of the record fails."""
    monkeypatch.setattr("lit_sql.run.DEFAULT_CHECKPOINT", tmp_path / "no-default-model")


def examples_of(data: Path, split: str = "test") -> list[dict]:
    return torch.load(data / f"{split}.pt", weights_only=False)


def prompt_ids(ex: dict) -> list[int]:
    return ex["input_ids"][:ex["prompt_length"]].tolist()


def test_the_record_holds_everything_needed_to_use_the_run(trained):
    checkpoint, data, _, out = trained
    record = yaml.safe_load((out / "hyperparameters.yaml").read_text())
    assert record["base"] == {"checkpoint_dir": str(checkpoint.resolve()), "model_name": "tiny"}
    assert record["lora"]["r"] == 2 and record["precision"] == "32-true" and record["quantize"] is None
    assert record["prompt"] == {"prompt_style": "chatml", "system_prompt": SYSTEM, "schema_format": "compact",
                                "sample_rows": 0, "value_hints": True, "max_seq_length": 2048,
                                "dialect": "sqlite", "target_format": "sql"}
    # Every step checkpoint carries the same record.
    step = torch.load(out / "checkpoints" / "step-000001.pth", weights_only=False)
    assert step["run"] == record


def test_run_prompt_is_the_training_prompt_token_for_token(trained, no_default):
    _, data, _, out = trained
    run = load_run(out)
    examples = examples_of(data, "test") + examples_of(data, "train")
    assert len(examples) >= 4
    # What training saw: the custom system prompt and one line per table.
    assert all(SYSTEM in ex["prompt"] and "CREATE TABLE" not in ex["prompt"] for ex in examples)
    # and the cells a question names beside their column, question by question
    lyon = next(ex for ex in examples if ex["question"] == "How many teachers live in Lyon?")
    assert "city TEXT ['Lyon']" in lyon["prompt"]
    assert sum("['" in ex["prompt"] for ex in examples) < len(examples)  # not every question names a cell
    for ex in examples:
        assert run.tokenizer.encode(run.prompt(ex["question"], db=ex["db_path"])) == prompt_ids(ex)


def test_generate_with_only_lora_path_and_db(trained, no_default, capsys):
    from lit_sql.cli.generate import lora

    _, data, _, out = trained
    ex = examples_of(data)[0]
    lora(ex["question"], lora_path=out, db=Path(ex["db_path"]), max_new_tokens=4, show_prompt=True)
    printed = capsys.readouterr().err
    assert ex["prompt"] in printed
    assert "CREATE TABLE" not in printed  # compact, as in training, not the ddl a default would give


def test_generate_script_with_a_compact_run(trained):
    """generate/lora.py --db from the command line, as a user types it."""
    _, data, _, out = trained
    ex = examples_of(data)[0]
    result = subprocess.run([sys.executable, "generate/lora.py", "--lora_path", str(out), "--db", ex["db_path"],
                             "--prompt", ex["question"], "--max_new_tokens", "4", "--show_prompt", "true"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ex["prompt"] in result.stderr


def test_eval_writes_prompts_again_for_data_prepared_another_way(trained, no_default, tmp_path):
    from lit_sql.cli.evaluate import data_recipe, prompts_for, sql

    _, data, ddl, out = trained
    run = load_run(out)
    by_question = {ex["question"]: ex for ex in examples_of(data)}
    ddl_examples = examples_of(ddl)
    assert all("CREATE TABLE" in ex["prompt"] for ex in ddl_examples)
    rewritten = prompts_for(run, ddl_examples, data_recipe(ddl), max_new_tokens=8)
    for ex in rewritten:
        assert run.tokenizer.encode(ex["prompt"]) == prompt_ids(by_question[ex["question"]])
    # Data prepared as the run was trained: its stored prompts are used as they are.
    same = examples_of(data)
    assert prompts_for(run, same, data_recipe(data), max_new_tokens=8) is same
    # The whole command, with no flag naming the base.
    summary = sql(lora_path=out, data_dir=ddl, limit=None, max_new_tokens=8, out_dir=tmp_path / "eval", workers=1,
                  compare=True)
    assert summary["finetuned"]["n"] == summary["base"]["n"] == len(ddl_examples)


def test_app_loads_each_run_on_its_base_and_prompts_like_training(trained, no_default):
    from lit_sql.app import BASE_MODEL, ModelGenerator, Request

    checkpoint, data, _, out = trained
    generator = ModelGenerator(adapters={"sql": out}, max_new_tokens=8)
    assert generator.runs[BASE_MODEL].checkpoint_dir == checkpoint  # the run's base, not the default model
    for ex in examples_of(data):
        prompt = generator.prompt(Request(ex["question"], Path(ex["db_path"]), "sql"))
        assert generator.runs["sql"].tokenizer.encode(prompt) == prompt_ids(ex)


def test_merge_and_exports_with_only_lora_path(trained, no_default, tmp_path):
    from lit_sql.cli.export import export, merge_lora
    from lit_sql.config import Config

    _, data, _, out = trained
    merge_lora(lora_path=out, out_dir=tmp_path / "merged")
    assert Config.from_checkpoint(tmp_path / "merged").name == "tiny"
    # The merged checkpoint keeps the run's recipe: asked as a base model, it gets the training prompt.
    merged = base_run(tmp_path / "merged")
    assert merged.recipe == load_run(out).recipe
    ex = examples_of(data)[0]
    assert merged.tokenizer.encode(merged.prompt(ex["question"], db=ex["db_path"])) == prompt_ids(ex)
    with pytest.raises(LitSQLError, match="schema_format 'ddl' differs from 'compact'"):
        base_run(tmp_path / "merged", schema_format="ddl")

    export(tmp_path / "hf", format="hf", lora_path=out)
    assert yaml.safe_load((tmp_path / "merged" / RECIPE_FILE).read_text())["schema_format"] == "compact"
    import json

    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["hidden_size"] == Config.from_checkpoint(tmp_path / "merged").n_embd == 32
    export(tmp_path / "peft", format="peft", lora_path=out)
    peft_config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert peft_config["r"] == 2 and peft_config["base_model_name_or_path"] == str(trained[0].resolve())


def test_flags_that_contradict_the_record_are_errors_naming_both(trained, tmp_path):
    checkpoint, _, _, out = trained
    other = make_tiny_checkpoint(tmp_path / "other", n_embd=48)
    Path(other / "model_config.yaml").write_text(
        Path(other / "model_config.yaml").read_text().replace("name: tiny", "name: other-model"))
    with pytest.raises(LitSQLError, match=r"holds other-model, but .* was trained on tiny"):
        load_run(out, checkpoint_dir=other)
    with pytest.raises(LitSQLError, match=r"--system_prompt 'Be brief.' differs from 'Write one SQLite query"):
        load_run(out, system_prompt="Be brief.")
    # Repeating the recorded values is fine; a copy of the same model elsewhere too.
    assert load_run(out, checkpoint_dir=checkpoint, schema_format="compact").recipe.schema_format == "compact"


def test_old_records_keep_working_with_a_note(trained, tmp_path, capsys):
    import shutil

    checkpoint, data, _, out = trained
    old = tmp_path / "old-run"
    shutil.copytree(out, old)
    record = yaml.safe_load((old / "hyperparameters.yaml").read_text())
    # What lit_sql wrote before run records: LoRA settings, the base path and the data folder, nothing more.
    (old / "hyperparameters.yaml").write_text(yaml.safe_dump(
        {"lora": record["lora"], "checkpoint_dir": str(checkpoint), "data_dir": str(data), "quantize": None}))
    run = load_run(old)
    assert "no prompt recipe in its record" in capsys.readouterr().err
    assert run.recipe == PromptRecipe.from_dict(record["prompt"]) and run.checkpoint_dir == checkpoint
    ex = examples_of(data)[0]
    assert run.tokenizer.encode(run.prompt(ex["question"], db=ex["db_path"])) == prompt_ids(ex)
    # Its data folder gone: the defaults, said so.
    (old / "hyperparameters.yaml").write_text(yaml.safe_dump(
        {"lora": record["lora"], "checkpoint_dir": str(checkpoint), "data_dir": str(tmp_path / "gone")}))
    assert load_run(old).recipe == PromptRecipe()
    assert "assuming the default prompt" in capsys.readouterr().err


def test_unreadable_records_are_clear_errors(tmp_path):
    (tmp_path / "hyperparameters.yaml").write_text("lora: [unclosed\n")
    with pytest.raises(LitSQLError, match="hyperparameters.yaml is not a readable run record"):
        load_run(tmp_path)
    (tmp_path / "hyperparameters.yaml").write_text("steps: 3\n")
    with pytest.raises(LitSQLError, match="no 'lora' settings"):
        load_run(tmp_path)
    with pytest.raises(LitSQLError, match="not found: --lora_path must be the output folder"):
        load_run(tmp_path / "nowhere")


def damaged_record(tmp_path, checkpoint, edit) -> Path:
    """A run folder whose hyperparameters.yaml went through `edit(text) -> text`."""
    from tests.conftest import make_fake_run

    run = make_fake_run(tmp_path / "run", checkpoint, PromptRecipe())
    record = run / "hyperparameters.yaml"
    record.write_text(edit(record.read_text()))
    return run


@pytest.mark.parametrize("edit, message", [
    (lambda t: t[:len(t) // 2], " is cut short (it ends before its last setting, checkpoint_dir)"),
    (lambda t: t.replace("version: 2", "version: two"), " is damaged: its version is 'two', not int"),
    (lambda t: t.replace("base:\n", "base: oops\nold_base:\n"), " is damaged: its base is 'oops', not dict"),
    (lambda t: t.replace("  model_name: tiny", "  model_name: [1]"),
     " is damaged: its base.model_name is [1], not str"),
    (lambda t: t.replace("prompt:\n", "prompt: [1]\nold_prompt:\n"), " is damaged: its prompt is [1], not dict"),
    (lambda t: t + "quantize: bnb.nf9\n", " is damaged: its quantize is 'bnb.nf9', not one of bnb.nf4"),
    (lambda t: t.replace("  sample_rows: 0", "  sample_rows: many"), ": its prompt recipe does not load: invalid"),
    (lambda t: t.replace("  prompt_style: null", "  prompt_style: nonsense"),
     ": its prompt recipe does not load: unknown prompt style 'nonsense'"),
])
def test_a_damaged_record_is_an_error_naming_it(tiny_checkpoint_dir, tmp_path, edit, message):
    run = damaged_record(tmp_path, tiny_checkpoint_dir, edit)
    with pytest.raises(LitSQLError) as error:
        load_run(run)
    assert str(error.value).startswith(f"{run / 'hyperparameters.yaml'}{message}"), error.value


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbled"])
def test_a_damaged_adapter_is_an_error_naming_it(tiny_checkpoint_dir, tmp_path, damage):
    from lit_sql.lora import read_adapter

    run = damaged_record(tmp_path, tiny_checkpoint_dir, lambda t: t)
    adapter = run / "adapter.pth"
    data = adapter.read_bytes()
    adapter.write_bytes({"truncated": data[:len(data) // 2], "empty": b"", "garbled": bytes(range(256)) * 8}[damage])
    with pytest.raises(LitSQLError, match=f"^{adapter} could not be read .*The file is corrupt or incomplete: delete "
                                          f"it and finish the run again from its last step checkpoint"):
        read_adapter(run)


@pytest.mark.parametrize("damage", ["adapter", "record"])
def test_generate_with_a_damaged_run_prints_one_error_line(tiny_checkpoint_dir, tmp_path, damage):
    run = damaged_record(tmp_path, tiny_checkpoint_dir, lambda t: t[:len(t) // 2] if damage == "record" else t)
    if damage == "adapter":
        (run / "adapter.pth").write_bytes((run / "adapter.pth").read_bytes()[:700])
    result = subprocess.run(["timeout", "600", sys.executable, "generate/lora.py", "--lora_path", str(run), "--prompt",
                             "How many?", "--schema", "CREATE TABLE t (a INT)"], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    named = run / ("adapter.pth" if damage == "adapter" else "hyperparameters.yaml")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named} "), result.stderr
