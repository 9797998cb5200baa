"""Transfer of the main job to real questions: the model `lit-sql demo` trains (generated data only, its settings
and CPU-time budget) evaluated base and fine-tuned on the Spider split's test questions, from databases neither
the main job nor any Spider benchmark trains on.

    .venv/bin/python scripts/prepare_sql.py --dataset spider --data_path ../shared/data/spider-train \\
        --split_by database --schema_format compact --max_seq_length 512 --out_dir data/spider
    .venv/bin/python benchmarks/transfer.py          # writes benchmarks/results/transfer.json

The data and training are the main job's own code (`lit_sql.cli.demo.prepare_data` and `fine_tune`, default
sizes), run into `--out` (a finished run there is kept; an interrupted one resumes); the evaluation is the main
job's too (`eval_config`, the base asked as the fine-tuned model is), on `--questions` test questions chosen as
every Spider benchmark chooses them (`load_split(..., seed=1234)`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from _common import cpu_name, paired

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/transfer.py"


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data_dir", type=Path, default=ROOT / "data" / "spider",
                   help="the prepared Spider split (see this file's docstring)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "transfer")
    p.add_argument("--questions", type=int, default=200, help="test questions of --data_dir evaluated")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "transfer.json")
    args = p.parse_args()

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint
    from lit_sql.cli.demo import eval_config, fine_tune, prepare_data, settings, train_args
    from lit_sql.cli.evaluate import data_recipe, load_split, prompts_for, run_model
    from lit_sql.evaluate import write_reports
    from lit_sql.run import Run, load_run

    if not (args.data_dir / "test.pt").is_file():
        raise SystemExit(f"{args.data_dir}/test.pt not found: prepare Spider first (see this file's docstring), "
                         f"or pass --data_dir")
    started = time.perf_counter()
    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    size = settings()
    data_dir = prepare_data(args.out, checkpoint, size)
    run_dir = fine_tune(data_dir, checkpoint, args.out / "lora", size)
    train_seconds = time.perf_counter() - started

    tuned = load_run(run_dir)
    base = Run(checkpoint, tuned.recipe)  # asked as the fine-tuned model is: the comparison is of weights alone
    cfg = eval_config()
    # Both folders are prepared with a compact schema and 512 tokens; should they differ, the prompts are written
    # again with the run's recipe.
    examples = prompts_for(tuned, load_split(args.data_dir, "test", args.questions, seed=1234),
                           data_recipe(args.data_dir), tuned.recipe.answer_tokens(cfg.max_new_tokens))
    runs = {"base": run_model("base", base, examples, cfg), "finetuned": run_model("finetuned", tuned, examples, cfg)}
    report = write_reports(args.out / "eval", runs, title="The main job's model (generated data only) on the Spider "
                                                          "split's test questions")
    training = json.loads((run_dir / "train_summary.json").read_text())
    result = {
        "name": "transfer", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": "execution accuracy", "mode": cfg.mode, "higher_is_better": True,
        "split": f"{args.data_dir.name}: Spider train split by database, test databases (never trained on)",
        "n": len(examples), "base": runs["base"][1]["execution_accuracy"],
        "finetuned": runs["finetuned"][1]["execution_accuracy"],
        "executes": {m: runs[m][1]["executes"] for m in runs},
        "paired": paired(runs["base"][0], runs["finetuned"][0], ("base", "finetuned")),
        "training": training,
        "settings": {"model": "SmolLM2-135M-Instruct",
                     "recipe": "lit-sql demo's (lit_sql/cli/demo.py SIZES['default'])",
                     "data": "generated only", **size, "train": asdict(train_args(size)),
                     "eval": {"max_new_tokens": cfg.max_new_tokens, "constrained": cfg.constrained,
                              "decoding": "greedy"}},
        "seconds": {"data_and_training": round(train_seconds), "total": round(time.perf_counter() - started)},
        "summaries": {m: runs[m][1] for m in runs}, "report": str(report), "rerun": RERUN,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("n", "base", "finetuned", "executes", "paired")}, indent=2))
    print(f"Report: {report}\nRerun: {RERUN}", file=sys.stderr)


if __name__ == "__main__":
    main()
