"""Decoding and recipe levers on the Spider database split, one row at a time on the same questions.

    .venv/bin/python benchmarks/spider_ablation.py [--lora_path out/spider_split/lit_sql] [--questions 200]

Every row is evaluated by the same code (`eval/sql.py`'s `run_model`) on the same test questions of databases
never trained on (prepare them as `benchmarks/spider_split.py`'s docstring says, and train the adapter with it or
`finetune/lora.py`). Each row reports execution accuracy (testsuite mode), the share of answers that execute,
the questions per minute of generation (and its time against `constrained`'s), and a paired sign test against
the row above it. Rows are cached, so evaluate every row in one quiet run for their times to compare. Rows:

- base: the base model, free decoding;
- greedy: the fine-tuned run, free decoding;
- + constrained: the same with schema-grounded decoding (`lit_sql/sql/grounding.py`), the default;
- + guided3: execution-guided selection: the greedy answer and 2 samples (temperature 0.7), constrained; the
  result most candidates agree on wins, else the most likely query that runs (`--num_samples 3`).
- guided_on_error: execution-guided decoding: the greedy query, and 2 samples only for the questions whose greedy
  query fails to run; the vote picks among those that run (`--num_samples 3 --sample_on_error`); its sign test
  is against `constrained`.
- guided2_on_error: the same with one sample instead of two (`--num_samples 2 --sample_on_error`), against
  `constrained`.
- full: full fine-tuning (`finetune/full.py`, `--full_path`, trained for the same CPU time as the adapter),
  constrained greedy decoding; its sign test is against `constrained` (the same decoding, LoRA).

Results are cached per row and trained run in `--out`, so a rerun only evaluates what is missing.
Writes `benchmarks/results/spider_split_ablation.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import date
from pathlib import Path

from _common import cpu_name, paired

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/spider_ablation.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", type=Path, default=ROOT / "data" / "spider")
    p.add_argument("--lora_path", type=Path, default=ROOT / "out" / "spider_split" / "lit_sql")
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "spider_ablation")
    p.add_argument("--full_path", type=Path, default=ROOT / "out" / "spider_split_full" / "lit_sql",
                   help="a finetune/full.py run for the row `full`")
    p.add_argument("--rows", default="base,greedy,constrained,guided3,guided_on_error,full",
                   help="comma-separated rows to evaluate")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "spider_split_ablation.json")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from lit_sql.cli.evaluate import load_split, run_model
    from lit_sql.evaluate import EvalConfig
    from lit_sql.run import Run, load_run

    torch.set_num_threads(os.cpu_count() or 1)
    tuned = load_run(args.lora_path)
    base = Run(tuned.checkpoint_dir, tuned.recipe)  # asked exactly as the fine-tuned run
    examples = load_split(args.data_dir, "test", args.questions, seed=1234)
    free = EvalConfig(max_new_tokens=128, constrained=False)
    rows = {
        "base": (base, free),
        "greedy": (tuned, free),
        "constrained": (tuned, EvalConfig(max_new_tokens=128)),
        "guided3": (tuned, EvalConfig(max_new_tokens=128, num_samples=3, temperature=0.7)),
        "guided_on_error": (tuned, EvalConfig(max_new_tokens=128, num_samples=3, temperature=0.7,
                                              sample_on_error=True)),
        "guided2_on_error": (tuned, EvalConfig(max_new_tokens=128, num_samples=2, temperature=0.7,
                                               sample_on_error=True)),
        "full": (lambda: load_run(args.full_path), EvalConfig(max_new_tokens=128)),
    }
    versus = {"guided_on_error": "constrained", "guided2_on_error": "constrained", "full": "constrained"}  # else above
    wanted = [r for r in args.rows.split(",") if r]
    unknown = set(wanted) - set(rows)
    if unknown:
        raise SystemExit(f"--rows: unknown {sorted(unknown)}; choose from {', '.join(rows)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    def tag(path: Path) -> str:
        """Which trained run a cached row belongs to: its folder and when its weights were written."""
        weights = next(f for f in (path / "adapter.pth", path / "lit_model.pth") if f.is_file())
        return hashlib.sha1(f"{path.resolve()}:{weights.stat().st_mtime_ns}".encode()).hexdigest()[:8]

    for name in wanted:
        cache = args.out / f"{name}-{len(examples)}-{tag(args.full_path if name == 'full' else args.lora_path)}.json"
        if cache.is_file():
            saved = json.loads(cache.read_text())
        else:
            run, cfg = rows[name]
            run = run() if callable(run) else run
            records, summary = run_model(name, run, examples, cfg)
            saved = {"records": records, "summary": summary}
            cache.write_text(json.dumps(saved))
        results[name] = saved
    table, previous = [], None
    for name in wanted:
        s = results[name]["summary"]
        row = {"row": name, "execution_accuracy": s["execution_accuracy"], "executes": s["executes"],
               "questions_per_minute": s["questions_per_minute"], "constrained": s.get("constrained")}
        if "constrained" in results:  # decoding time against grounded greedy decoding's (the default's)
            row["time_vs_constrained"] = round(
                s["generation_seconds"] / results["constrained"]["summary"]["generation_seconds"], 2)
        other = versus.get(name, previous)
        if other is not None and other in results:
            row["paired_vs"] = other
            row["paired"] = paired(results[name]["records"], results[other]["records"], (name, other))
        table.append(row)
        previous = name
    def described(path: Path) -> dict:
        """Where a run is, how it was trained, and how far it got."""
        record = load_run(path).record
        training = path / "train_summary.json"
        return {"path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                "record": {k: record.get(k) for k in ("precision", "train")},
                "training": json.loads(training.read_text()) if training.is_file() else None}

    out = {
        "name": "spider_split_ablation", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": "execution accuracy", "mode": "testsuite", "higher_is_better": True,
        "split": f"{args.data_dir.name}: Spider train split by database (test databases never trained on)",
        "n": len(examples), "rows": table,
        "adapter": described(args.lora_path),
        **({"full": described(args.full_path)} if "full" in wanted else {}),
        "rerun": RERUN,
    }
    args.results.write_text(json.dumps(out, indent=2) + "\n")
    for row in table:
        test = row.get("paired", {})
        print(f"{row['row']:>12s}  {row['execution_accuracy']:5.1f}%  executes {row['executes']:5.1f}%  "
              f"{row['questions_per_minute']:6.1f} q/min  sign test p={test.get('sign_test_p', '-')}")
    print(f"wrote {args.results}\nRerun: {RERUN}")


if __name__ == "__main__":
    main()
