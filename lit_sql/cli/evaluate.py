"""`eval/sql.py`: execution accuracy of a base or fine-tuned model on prepared test data."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from lit_sql.data.prompt import PromptRecipe
from lit_sql.errors import LitSQLError
from lit_sql.evaluate import (EvalConfig, candidates_for, evaluate_examples, fix_errors, schemas_of, summarize,
                              write_reports)
from lit_sql.retrieval import Retriever, augment_examples
from lit_sql.run import Run, base_run, load_run
from lit_sql.sql.compare import MODES, ComparisonMode


@dataclass
class Questions:
    """The questions evaluated, and how many the split holds: a subset is always reported as one."""

    examples: list[dict]
    split: str
    in_split: int

    def describe(self) -> str:
        """E.g. "200 of 687 test questions (seeded sample; --limit)", or "all 687 test questions"."""
        if len(self.examples) < self.in_split:
            return f"{len(self.examples)} of {self.in_split} {self.split} questions (seeded sample; --limit)"
        return f"all {self.in_split} {self.split} questions"


def load_questions(data_dir: Path, split: str, limit: Optional[int], seed: int) -> Questions:
    path = Path(data_dir) / f"{split}.pt"
    if not path.is_file():
        raise LitSQLError(f"{path} not found: prepare the data with `python scripts/prepare_sql.py ...` "
                          f"(or pass --data_dir / --split)")
    examples = torch.load(path, weights_only=False)
    in_split = len(examples)
    if limit is not None and limit < len(examples):
        # A fixed random subset, the same for every model evaluated with the same seed.
        g = torch.Generator().manual_seed(seed)
        keep = sorted(torch.randperm(len(examples), generator=g)[:limit].tolist())
        examples = [examples[i] for i in keep]
    return Questions(examples, split, in_split)


def load_split(data_dir: Path, split: str, limit: Optional[int], seed: int) -> list[dict]:
    """The examples alone (see `load_questions`)."""
    return load_questions(data_dir, split, limit, seed).examples


def run_model(name: str, run: Run, examples: list[dict], cfg: EvalConfig, precision: str = "32-true",
              quantize: Optional[str] = None, seed: int = 1234, fast_decoding: bool = True,
              device: str = "cpu") -> tuple[list[dict], dict]:
    """Generate, execute and score `run`'s SQL for `examples`, whose prompts are written by the run's recipe
    (`prompts_for`). `cfg.max_new_tokens` is the room for the SQL: a run trained on linked answers gets room for
    its links line on top."""
    cfg = replace(cfg, max_new_tokens=run.recipe.answer_tokens(cfg.max_new_tokens))
    style, tokenizer = run.style, run.tokenizer
    model = run.load_model(precision, device=device, quantize=quantize, fast_decoding=fast_decoding)
    start = time.perf_counter()
    prompts = [ex.get("prompt") or run.prompt(ex["question"], ex["schema"], evidence=ex.get("evidence"))
               for ex in examples]
    candidates = candidates_for(model, tokenizer, style, prompts, examples, cfg, seed, desc=f"{name}: generating",
                                schemas=schemas_of(examples))
    seconds = time.perf_counter() - start
    records = evaluate_examples(examples, candidates, cfg)
    if cfg.fix_errors:
        fix_errors(model, tokenizer, style, examples, records, cfg, system_prompt=run.recipe.system_prompt)
    summary = summarize(records, cfg.mode)
    summary.update({"model": name, "generation_seconds": round(seconds, 1),
                    "questions_per_minute": round(60 * len(examples) / max(seconds, 1e-9), 1),
                    "num_samples": cfg.num_samples, "greedy_first": cfg.greedy_first,
                    "sample_on_error": cfg.sample_on_error, "fix_errors": cfg.fix_errors,
                    "constrained": cfg.constrained})
    print(f"{name}: execution accuracy {summary['execution_accuracy']:.1f}% ({cfg.mode}) on {len(records)} "
          f"questions; executes {summary['executes']:.1f}%, exact match {summary['exact_match']:.1f}%", file=sys.stderr)
    return records, summary


def prompts_for(run: Run, examples: list[dict], data_recipe: PromptRecipe, max_new_tokens: int) -> list[dict]:
    """`examples` with prompts written by `run`'s recipe. Prepared data stores its prompts; when they were written
    by another recipe than the run was trained with (another schema format, system prompt, ...), each prompt is
    written again from the example's question and database (or schema text), so the model is asked as in
    training."""
    wanted = run.recipe if run.recipe.prompt_style else PromptRecipe.from_dict(
        {**run.recipe.to_dict(), "prompt_style": run.style.name})
    changed = data_recipe.differences(wanted)
    changed.pop("max_seq_length", None)  # a length limit changes no prompt that fits both
    changed.pop("target_format", None)  # what the answer holds: the prompt is the same
    if not changed:
        return examples
    print(f"note: the data's prompts differ from what {run.name} was trained with "
          f"({', '.join(f'{k} {a!r} -> {b!r}' for k, (a, b) in changed.items())}); writing them again",
          file=sys.stderr)
    out = []
    for ex in examples:
        source = {"db": ex["db_path"]} if ex.get("db_path") and Path(ex["db_path"]).is_file() else {"schema": ex["schema"]}
        out.append({**ex, "prompt": run.prompt(ex["question"], evidence=ex.get("evidence"),
                                               max_new_tokens=max_new_tokens, **source)})
    return out


def data_recipe(data_dir: Path) -> PromptRecipe:
    """How the prepared data in `data_dir` wrote its prompts (its meta.json)."""
    meta = Path(data_dir) / "meta.json"
    return PromptRecipe.from_dict(json.loads(meta.read_text())) if meta.is_file() else PromptRecipe()


def sql(
    checkpoint_dir: Optional[Path] = None,
    lora_path: Optional[Path] = None,
    data_dir: Path = Path("data/generated"),
    split: str = "test",
    limit: Optional[int] = 200,
    compare: bool = False,
    out_dir: Optional[Path] = None,
    mode: ComparisonMode = "testsuite",
    num_samples: int = 1,
    temperature: float = 0.7,
    greedy_first: bool = True,
    sample_on_error: bool = False,
    fix_errors: bool = False,
    constrained: bool = True,
    batch_size: int = EvalConfig.batch_size,
    max_new_tokens: int = 200,
    timeout_s: float = 10.0,
    workers: int = 2,
    precision: str = "32-true",
    quantize: Optional[str] = None,
    seed: int = 1234,
    retrieval: Optional[str] = None,
    retrieval_index: Optional[Path] = None,
    retrieval_threshold: float = 0.8,
    retrieval_exclude_same_db: bool = False,
    fast_decoding: bool = True,
) -> dict:
    """Execution accuracy on a prepared test split; with --compare, base and fine-tuned side by side.

    Args:
        checkpoint_dir: the base checkpoint; default: the one --lora_path was trained on (without it: the embedded
            SmolLM2). Another model than the run's is an error.
        lora_path: a finetune/lora.py output folder; without it the base model is evaluated. Its run record
            says how to write the prompts: the data's prompts are written again if they were written otherwise.
        data_dir: prepared data (scripts/prepare_sql.py).
        split: test or train.
        limit: evaluate a fixed random subset of this many questions (default 200; null: all). The table and the
            report say how many of the split's questions were evaluated.
        compare: evaluate the base model too and report both with the questions that changed.
        out_dir: where the reports go (default out/eval/<model>).
        mode: testsuite (bag of rows; order only with ORDER BY; columns may be permuted) or bird (set, strict).
        num_samples: sample this many candidates per question and vote by execution result.
        temperature: sampling temperature when num_samples > 1.
        greedy_first: with num_samples > 1, the first candidate is the greedy answer, so that when no result wins
            the vote the most likely query that runs is chosen (execution-guided selection); false: all sampled.
        sample_on_error: with num_samples > 1, sample only for the questions whose greedy query fails to run
            (execution-guided decoding): the others keep their greedy answer at the cost of one decode.
        fix_errors: give a failing query's SQLite error back to the model once.
        constrained: schema-grounded decoding: every table and column name the model writes must exist in the
            question's database (lit_sql/sql/grounding.py); false: free decoding.
        batch_size: questions decoded together.
        max_new_tokens: longest SQL generated; a run trained on linked answers (prepare --target_format linked)
            is given room for its links line on top.
        timeout_s: per-query execution timeout.
        workers: processes executing SQL.
        precision: 32-true, bf16-true or 16-true for generation.
        quantize: load the base quantized (bnb.nf4, ...).
        seed: picks the subset and seeds sampling.
        retrieval: off by default. examples:K puts the K training examples whose questions are most similar
            into the prompt; schema leaves out the tables least similar to the question when the whole schema
            would not fit (schema:N: within N prompt tokens); both: examples:3,schema.
        retrieval_index: the index built by scripts/build_index.py (default <data_dir>/retrieval).
        retrieval_threshold: examples less similar than this (cosine) are not added.
        retrieval_exclude_same_db: never show examples from the question's own database.
        fast_decoding: decode with lit_sql.fast_inference (float32 on the CPU: the same tokens, faster); false:
            the plain model.
    """
    cfg = EvalConfig(mode=mode, num_samples=num_samples, temperature=temperature, greedy_first=greedy_first,
                     sample_on_error=sample_on_error, max_new_tokens=max_new_tokens,
                     batch_size=batch_size, fix_errors=fix_errors, constrained=constrained, timeout_s=timeout_s,
                     workers=workers)
    if compare and lora_path is None:
        raise LitSQLError("--compare needs --lora_path (the fine-tuned adapter to compare with the base)")
    retriever = Retriever.from_flags(retrieval, retrieval_index, retrieval_threshold, retrieval_exclude_same_db,
                                     default_index=Path(data_dir) / "retrieval")
    tuned = load_run(lora_path, checkpoint_dir) if lora_path is not None else None
    # The base model is asked exactly as the fine-tuned one, so that the comparison is of weights alone; alone,
    # as the data asks (or as its merged run's record says).
    base = Run(tuned.checkpoint_dir, tuned.recipe) if tuned is not None else base_run(
        checkpoint_dir, default=data_recipe(data_dir))
    answer_tokens = base.recipe.answer_tokens(max_new_tokens)  # what a prompt leaves room for (see run_model)
    questions = load_questions(data_dir, split, limit, seed)
    examples = prompts_for(base, questions.examples, data_recipe(data_dir), answer_tokens)
    if retriever is not None:
        examples = augment_examples(retriever, examples, base, answer_tokens)
    runs = {}
    if compare or lora_path is None:
        runs["base"] = run_model("base", base, examples, cfg, precision, quantize, seed, fast_decoding)
    if tuned is not None:
        runs["finetuned"] = run_model("finetuned", tuned, examples, cfg, precision, quantize, seed, fast_decoding)
    checkpoint_dir = base.checkpoint_dir
    out_dir = Path(out_dir or Path("out/eval") / (Path(lora_path).name if lora_path else checkpoint_dir.name))
    title = f"Execution accuracy on {data_dir}/{split}.pt"
    if retriever is not None:
        title += f", retrieval {retrieval} (threshold {retrieval_threshold})"
        for _, s in runs.values():
            s["retrieval"] = {"spec": retrieval, "threshold": retrieval_threshold,
                              "exclude_same_db": retrieval_exclude_same_db}
    for _, s in runs.values():
        s["questions_in_split"] = questions.in_split
    report = write_reports(out_dir, runs, title=title, scope=questions.describe())
    summary = {name: s for name, (_, s) in runs.items()}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary, scope=questions.describe())
    print(f"Report: {report}")
    return summary


def print_table(summary: dict[str, dict], scope: Optional[str] = None) -> None:
    """The main figures of each run side by side, under `scope` (which questions: `Questions.describe`)."""
    names = list(summary)
    if scope:
        print(scope)
    rows = [("execution accuracy", "execution_accuracy"), *((f"  {m} mode", f"execution_accuracy_{m}") for m in MODES),
            ("exact match", "exact_match"), ("executes", "executes"), ("parses", "parses")]
    print(f"{'':22s}" + "".join(f"{n:>12s}" for n in names))
    for label, key in rows:
        print(f"{label:22s}" + "".join(f"{summary[n][key]:11.1f}%" for n in names))
