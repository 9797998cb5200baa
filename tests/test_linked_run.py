"""A run trained on linked answers (prepare --target_format linked) used by every consumer: generate/lora.py
prints only the SQL, the app shows and runs only the SQL, evaluation and the training-time execution check score
the SQL, and each gives the links line room to be written. The model is a stand-in that writes each question's
linked answer token by token, every token offered to grounded decoding as the model's choice (which must keep
it): no training is needed."""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import torch

from lit_sql.data.prepare import prepare
from lit_sql.data.prompt import PromptRecipe
from lit_sql.sql.links import LINKS_ROOM_TOKENS
from lit_sql.tokenizer import Tokenizer
from tests.conftest import REPO_ROOT, make_fake_run, make_tiny_checkpoint

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "data"
QUESTION = "What is the total amount spent by Omar Rossi?"


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """(checkpoint, prepared linked data, a LoRA run whose record says it was trained on them, their examples)."""
    root = tmp_path_factory.mktemp("linked")
    checkpoint = make_tiny_checkpoint(root / "tiny", block_size=2048)
    data = prepare(dataset="spider", data_path=FIXTURES / "spider", checkpoint_dir=checkpoint, out_dir=root / "data",
                   max_seq_length=2048, test_split_fraction=0.5, target_format="linked")
    examples = [r for split in ("train", "test") for r in torch.load(data / f"{split}.pt", weights_only=False)]
    # As fine-tuning writes it: the data's recipe (meta.json), with the checkpoint's prompt style.
    recipe = PromptRecipe.from_dict({"prompt_style": "chatml", **json.loads((data / "meta.json").read_text())})
    assert recipe.target_format == "linked"
    run = make_fake_run(root / "run", checkpoint, recipe)
    return checkpoint, data, run, examples


class LinkedWriter:
    """Writes, for each prompt, the linked answer of the example that has it; records the token budgets asked."""

    def __init__(self, tokenizer: Tokenizer, answers: dict[str, str]) -> None:
        self.tokenizer, self.answers, self.budgets = tokenizer, answers, []

    def answer_for(self, prompt_ids) -> list[int]:
        prompt = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
        (answer,) = [a for question, a in self.answers.items() if question in prompt]
        return self.tokenizer.encode(answer, bos=False)

    def kept_by_grounding(self, grounding, row: int, token: int) -> None:
        if grounding is None:
            return
        logits = torch.full((1, len(grounding.texts)), -1e4)
        logits[0, token] = 0.0
        assert int(grounding.choose([row], logits, torch.tensor([token]), greedy=True)[0]) == token

    def generate(self, model, prompt, max_new_tokens, sampling=None, stop_tokens=(), generator=None, grounding=None):
        """As `lit_sql.generation.generate`."""
        self.budgets.append(max_new_tokens)
        for token in self.answer_for(prompt)[:max_new_tokens]:
            self.kept_by_grounding(grounding, 0, token)
            yield token

    def generate_batch(self, model, prompts, max_new_tokens, pad_id, sampling=None, stop_tokens=(), generator=None,
                       grounding=None):
        """As `lit_sql.generation.generate_batch`."""
        self.budgets.append(max_new_tokens)
        rows = [self.answer_for(p)[:max_new_tokens] for p in prompts]
        for row, tokens in enumerate(rows):
            for token in tokens:
                self.kept_by_grounding(grounding, row, token)
        if grounding is not None:
            assert grounding.replaced == 0 and grounding.unconstrained == 0
        return rows


@pytest.fixture
def writer(linked, monkeypatch) -> LinkedWriter:
    checkpoint, _, _, examples = linked
    writer = LinkedWriter(Tokenizer(checkpoint), {ex["question"]: ex["target"] for ex in examples})
    monkeypatch.setattr("lit_sql.cli.generate.generate", writer.generate)
    monkeypatch.setattr("lit_sql.generation.generate", writer.generate)  # the app imports it when it answers
    monkeypatch.setattr("lit_sql.evaluate.generate_batch", writer.generate_batch)
    return writer


def example(examples, question: str) -> dict:
    return next(ex for ex in examples if ex["question"] == question)


def test_the_prepared_answer_is_linked(linked):
    _, _, _, examples = linked
    ex = example(examples, QUESTION)
    assert ex["target"] == f"Links: customer(customer_id, name), purchase(amount, customer_id)\nSQL: {ex['sql']}"


def test_generate_prints_only_the_sql(linked, writer, capsys):
    from lit_sql.cli.generate import lora

    _, _, run, examples = linked
    ex = example(examples, QUESTION)
    sql = lora(QUESTION, lora_path=run, db=ex["db_path"], max_new_tokens=200)
    assert sql == ex["sql"] and capsys.readouterr().out == ex["sql"] + "\n"
    assert writer.budgets == [200 + LINKS_ROOM_TOKENS]  # 200 tokens of SQL after the links line


def test_the_app_shows_and_runs_only_the_sql(linked, writer, tmp_path):
    from lit_sql.app import DemoApp, ModelGenerator

    _, _, run, examples = linked
    ex = example(examples, QUESTION)
    shop = tmp_path / "shop.sqlite"
    shutil.copy(ex["db_path"], shop)
    demo = DemoApp(ModelGenerator(adapters={"linked": run}, max_new_tokens=200), {"shop": shop})
    final = list(demo.ask(QUESTION, [], shop, model="linked"))[-1]
    assert final.done and final.sql == ex["sql"]
    assert final.result is not None and final.status.startswith("1 rows")  # Omar Rossi's total, as the gold gives
    assert "Links:" not in final.history[-1]["content"] and ex["sql"] in final.history[-1]["content"]
    assert writer.budgets == [200 + LINKS_ROOM_TOKENS]


def test_evaluation_scores_the_sql(linked, writer, tmp_path):
    from lit_sql.cli.evaluate import sql

    _, data, run, examples = linked
    summary = sql(lora_path=run, data_dir=data, limit=None, out_dir=tmp_path / "eval", workers=1)
    assert summary["finetuned"]["execution_accuracy"] == 100.0 and summary["finetuned"]["exact_match"] == 100.0
    assert set(writer.budgets) == {200 + LINKS_ROOM_TOKENS}  # --max_new_tokens 200 of SQL, and the links line
    predictions = (tmp_path / "eval" / "finetuned.jsonl").read_text()
    assert "Links:" not in predictions


def test_training_execution_check_scores_the_sql(linked, writer):
    from lit_sql.checkpoint import load_model
    from lit_sql.prompts import load_prompt_style
    from lit_sql.training import ExecutionCheck

    checkpoint, _, _, examples = linked
    tokenizer = Tokenizer(checkpoint)

    class OneProcess:  # the Fabric calls the check makes, for one process
        global_rank, world_size, device = 0, 1, torch.device("cpu")

        def autocast(self):
            return contextlib.nullcontext()

        def all_reduce(self, tensor, reduce_op):
            return tensor

    check = ExecutionCheck(examples, tokenizer, load_prompt_style(checkpoint), n=len(examples))
    longest = max(len(tokenizer.encode(ex["target"], bos=False)) for ex in examples)
    assert check.max_new_tokens > longest  # the room comes from the answers' labels, links line included
    scores = check(OneProcess(), load_model(checkpoint).eval())
    assert scores == {"val_exec_acc": 1.0, "val_executes": 1.0}


def test_a_plain_run_keeps_its_budget(linked, writer, tmp_path):
    from lit_sql.cli.generate import lora

    checkpoint, _, _, examples = linked
    plain = make_fake_run(tmp_path / "plain", checkpoint, PromptRecipe(prompt_style="chatml"))
    ex = example(examples, QUESTION)
    lora(QUESTION, lora_path=plain, db=ex["db_path"], max_new_tokens=200)
    assert writer.budgets == [200]
