"""Execution-based evaluation speed: run gold and predicted SQL of Spider train examples in the sandbox and
compare them in both modes (testsuite and bird), as an evaluation does after generation.

    .venv/bin/python benchmarks/eval_sql_speed.py      # writes benchmarks/results/eval_sql_speed.json

The first `--examples` examples of /work/shared/data/spider-train (beside the checkout) are used, with the gold
query standing in for the prediction, so every example costs two executions and two comparisons. Each run
starts a fresh worker pool (its start-up is part of the time). The median of `--reps` runs is quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path

from lit_sql.sql.compare import MODES, results_match
from lit_sql.sql.execute import execute_many

ROOT = Path(__file__).resolve().parents[1]
SPIDER_TRAIN = ROOT.parent / "shared" / "data" / "spider-train"


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"CPU, {os.cpu_count()} cores"


def one_run(examples: list[dict], workers: int, timeout_s: float) -> float:
    """Seconds to execute gold and prediction of every example and compare them in every mode."""
    start = time.perf_counter()
    jobs = []
    for ex in examples:
        db = SPIDER_TRAIN / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite"
        jobs += [(db, ex["query"]), (db, ex["query"])]  # gold, then the "prediction"
    results = execute_many(jobs, timeout_s=timeout_s, num_workers=workers)
    matches = sum(results_match(results[2 * i], results[2 * i + 1], mode, ex["query"])
                  for i, ex in enumerate(examples) for mode in MODES)
    seconds = time.perf_counter() - start
    print(f"  {len(examples)} examples in {seconds:.2f} s ({matches} of {len(examples) * len(MODES)} comparisons match)")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--timeout_s", type=float, default=30.0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_sql_speed.json"))
    args = p.parse_args()
    if not (SPIDER_TRAIN / "train.json").is_file():
        raise SystemExit(f"{SPIDER_TRAIN / 'train.json'} not found: put the Spider train split beside the checkout")
    examples = json.loads((SPIDER_TRAIN / "train.json").read_text())[:args.examples]

    runs = [one_run(examples, args.workers, args.timeout_s) for _ in range(args.reps)]
    per_1000 = [round(s * 1000 / len(examples), 3) for s in runs]
    report = {
        "name": "eval_sql_speed",
        "date": date.today().isoformat(),
        "device": cpu_name(),
        "metric": "seconds per 1,000 examples (execution + comparison)",
        "higher_is_better": False,
        "lit_sql": statistics.median(per_1000),
        "settings": {"dataset": "spider-train (first examples)", "examples": len(examples),
                     "executions_per_example": 2, "modes": list(MODES), "workers": args.workers,
                     "timeout_s": args.timeout_s, "reps": args.reps, "statistic": "median"},
        "runs": {"lit_sql": per_1000},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['lit_sql']} s per 1,000 examples; wrote {args.out}")
    print(f"rerun: .venv/bin/python benchmarks/eval_sql_speed.py --examples {args.examples} --workers {args.workers}")


if __name__ == "__main__":
    main()
