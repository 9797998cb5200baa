"""Recipe levers on the Spider database split at equal CPU time: each variant trained for the same budget of
process CPU time under the same conditions, then evaluated on the same test questions.

    .venv/bin/python scripts/prepare_sql.py --dataset spider --data_path ../shared/data/spider-train \\
        --split_by database --schema_format compact --max_seq_length 512 --out_dir data/spider [--value_hints true]
    .venv/bin/python benchmarks/spider_recipes.py --variants default,hints [--cpu_minutes 30]

A variant is a prepared data folder, a learning rate and a budget (`VARIANTS`); everything else is
`spider_split.py`'s recipe (`lit_sql_command`). Variants train one thread each, two at a time (the next starts
when one ends), so all see the same machine; a variant already trained in `--out` is not trained again (delete
its folder to retrain). Each is evaluated with
the default decoding (schema-grounded greedy) on the same `--questions` test questions: a seeded sample of those
every variant's data kept (a variant with longer prompts or answers may reject a few more as too long), each
asked with the prompt its own data holds; then compared with the first variant by a paired sign test.
Writes `benchmarks/results/spider_split_recipes.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _common import cpu_name, paired
from spider_split import ONE_THREAD, lit_sql_command

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/spider_recipes.py"

# name: (prepared data folder, learning rate, CPU-minutes (None: --cpu_minutes), what it tests)
VARIANTS = {
    "default": ("data/spider", 2e-3, None, "the recipe of spider_split.py: plain SQL answers, no value hints"),
    "lr1e-3": ("data/spider", 1e-3, None, "the learning rate finetune/lora.py defaults to"),
    "hints": ("data/spider_hints", 2e-3, None, "value hints: prepare_sql.py --value_hints true"),
    "linked": ("data/spider_linked", 2e-3, None, "schema-linking targets: prepare_sql.py --target_format linked"),
    # a second run of the default recipe, trained beside another variant: how far two runs of one recipe differ
    "default-b": ("data/spider", 2e-3, None, "the default recipe again, in another pair"),
    "default-60min": ("data/spider", 2e-3, 60.0, "the default recipe trained twice as long"),
    "hints-60min": ("data/spider_hints", 2e-3, 60.0, "value hints trained twice as long"),
}


def key(example: dict) -> tuple:
    """A test question, whatever prompt a variant wrote for it."""
    return example["db_id"], example["question"], example["sql"]


def train(names: list[str], checkpoint: Path, out: Path, cpu_minutes: float) -> None:
    """Train the variants not yet trained, one thread each, two at a time: the next starts when one ends."""
    todo = [n for n in names if not (out / n / "train_summary.json").is_file()]
    env = {**os.environ, **ONE_THREAD}
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    while todo or running:
        while todo and len(running) < 2:
            name = todo.pop(0)
            data, lr, minutes, _ = VARIANTS[name]
            cmd = lit_sql_command(ROOT / data, checkpoint, out / name, minutes or cpu_minutes, lr)
            log = open(out / f"train_{name}.log", "a")
            running[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), \
                time.perf_counter()
        time.sleep(5)
        for name, (proc, started) in list(running.items()):
            if proc.poll() is None:
                continue
            if proc.returncode != 0:
                raise SystemExit(f"{name} training failed: see {out}/train_{name}.log")
            print(f"trained {name} in {time.perf_counter() - started:.0f} s of wall time", file=sys.stderr)
            del running[name]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="default,hints", help=f"comma-separated, the first is the baseline; "
                                                                 f"of: {', '.join(VARIANTS)}")
    p.add_argument("--cpu_minutes", type=float, default=30.0)
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "spider_recipes")
    p.add_argument("--skip_training", action="store_true", help="evaluate the variants already trained in --out")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "spider_split_recipes.json")
    args = p.parse_args()
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    for name in names:
        if not (ROOT / VARIANTS[name][0] / "test.pt").is_file():
            raise SystemExit(f"{VARIANTS[name][0]}/test.pt not found: prepare it (see this file's docstring)")
    sys.path.insert(0, str(ROOT))
    import torch

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint
    from lit_sql.cli.evaluate import load_split, run_model
    from lit_sql.evaluate import EvalConfig
    from lit_sql.run import load_run

    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_training:
        train(names, checkpoint, args.out, args.cpu_minutes)

    torch.set_num_threads(os.cpu_count() or 1)
    splits = {name: {key(ex): ex for ex in load_split(ROOT / VARIANTS[name][0], "test", None, 0)} for name in names}
    common = [k for k in splits[names[0]] if all(k in s for s in splits.values())]
    g = torch.Generator().manual_seed(1234)
    questions = [common[i] for i in sorted(torch.randperm(len(common), generator=g)[:args.questions].tolist())]
    results = {}
    for name in names:
        examples = [splits[name][k] for k in questions]
        run_dir = args.out / name
        weights = run_dir / "adapter.pth"
        cache = args.out / f"eval-{name}-{len(examples)}-{weights.stat().st_mtime_ns}.json"
        if cache.is_file():
            saved = json.loads(cache.read_text())
        else:
            records, summary = run_model(name, load_run(run_dir), examples, EvalConfig(max_new_tokens=128))
            saved = {"records": records, "summary": summary}
            cache.write_text(json.dumps(saved))
        training = json.loads((run_dir / "train_summary.json").read_text())
        results[name] = saved | {"training": training}

    baseline = names[0]
    rows = []
    for name in names:
        s, t = results[name]["summary"], results[name]["training"]
        row = {"variant": name, "what": VARIANTS[name][3], "data": VARIANTS[name][0],
               "learning_rate": VARIANTS[name][1], "cpu_minutes": VARIANTS[name][2] or args.cpu_minutes,
               "execution_accuracy": s["execution_accuracy"],
               "executes": s["executes"], "questions_per_minute": s["questions_per_minute"],
               "steps": t.get("steps"), "final_val_loss": list(t["val_loss"].values())[-1] if t.get("val_loss") else None,
               "training": t}
        if name != baseline:
            row["paired_vs"] = baseline
            row["paired"] = paired(results[name]["records"], results[baseline]["records"], (name, baseline))
        rows.append(row)
    out = {
        "name": "spider_split_recipes", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": "execution accuracy", "mode": "testsuite", "higher_is_better": True,
        "split": "Spider train split by database (test databases never trained on)", "n": len(questions),
        "questions": f"a seeded sample of the {len(common)} test questions every variant's data kept",
        "budget": f"{args.cpu_minutes:g} CPU-minutes of training each unless the row says otherwise, one thread "
                  f"each, two variants training at a time",
        "decoding": "schema-grounded greedy (the default), 128 new tokens, float32",
        "rows": rows, "rerun": f"{RERUN} --variants {','.join(names)}",
    }
    args.results.write_text(json.dumps(out, indent=2) + "\n")
    for row in rows:
        test = row.get("paired", {})
        print(f"{row['variant']:>10s}  {row['execution_accuracy']:5.1f}%  executes {row['executes']:5.1f}%  "
              f"{row['steps']} steps  sign test p={test.get('sign_test_p', '-')}")
    print(f"wrote {args.results}\nRerun: {out['rerun']}")


if __name__ == "__main__":
    main()
