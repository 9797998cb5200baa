"""200 LoRA steps on the embedded SmolLM2-135M-Instruct and the `generated` data, on the CPU: how far the validation
loss falls and how much of the fine-tuned model's SQL executes (issue #4's acceptance run).

    .venv/bin/python benchmarks/finetune_200_steps.py     # writes benchmarks/results/finetune_200_steps.json

It is the main job (`lit-sql demo`) with --steps 200: generated SQLite databases split by database, LoRA on
every linear layer in bf16, the validation loss measured before the first step and every 50 steps, then base and
fine-tuned execution accuracy on the same test questions from databases never trained on.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from _common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/finetune_200_steps.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval_questions", type=int, default=100)
    p.add_argument("--out_dir", type=Path, default=ROOT / "out" / "finetune_200_steps")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_200_steps.json")
    args = p.parse_args()

    from lit_sql.cli.demo import SIZES, demo

    started = time.perf_counter()
    summary = demo(steps=args.steps, cpu_minutes=0, eval_questions=args.eval_questions, out_dir=args.out_dir)
    train = json.loads((args.out_dir / "lora" / "train_summary.json").read_text())
    val = {int(k): v for k, v in train["val_loss"].items()}
    first, last = val[min(val)], val[max(val)]
    base, tuned = summary["generated"]["base"], summary["generated"]["finetuned"]
    result = {
        "name": "finetune_200_steps",
        "date": date.today().isoformat(),
        "device": cpu_name(),
        "metric": "validation loss and execution accuracy after LoRA fine-tuning",
        "steps": train["steps"],
        "val_loss": val,
        "val_loss_start": round(first, 4),
        "val_loss_end": round(last, 4),
        "val_loss_fraction_left": round(last / first, 4),
        "halved": last <= first / 2,
        "base": base,
        "finetuned": tuned,
        "real_questions": {k: summary["real"][k] for k in ("label", "questions", "base", "finetuned")},
        "seconds": {"training": round(train["seconds"]), "total": round(time.perf_counter() - started)},
        "settings": {"model": "SmolLM2-135M-Instruct", "data": "generated (split by database)",
                     **{k: v for k, v in SIZES["default"].items() if k != "steps"},
                     "eval_questions": args.eval_questions, "lora": "r=16 alpha=32 all-linear, bf16-true (the defaults)"},
        "rerun": RERUN,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("val_loss_start", "val_loss_end", "halved", "seconds")}, indent=2))
    print(f"wrote {args.results}; rerun: {RERUN}")


if __name__ == "__main__":
    main()
