"""Spider, database split: base SmolLM2-135M-Instruct against lit_sql's LoRA fine-tune and the transformers+peft
peer, each fine-tuned for the same CPU-time budget, evaluated by execution accuracy on test databases never
trained on.

    .venv/bin/python scripts/prepare_sql.py --dataset spider --data_path ../shared/data/spider-train \\
        --split_by database --schema_format compact --max_seq_length 512 --out_dir data/spider
    .venv/bin/python benchmarks/spider_split.py          # writes benchmarks/results/spider_split_eval.json

Training: both tools get the same records, LoRA (r=16, alpha=32, every linear layer of the blocks), bf16,
answer-only loss, batches, learning rate and warmup+cosine schedule, and the same budget of process CPU time
(`--cpu_minutes`, default 30). They train side by side, one thread each, so a machine shared with other jobs
slows both alike and the CPU-time budget stays exact. The peer's adapter is merged and converted, so every model
is evaluated by the same code: greedy on `--eval_questions` test questions, and voting over `--vote_samples`
samples on the first `--vote_questions` of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _common import cpu_name, paired

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/spider_split.py"


def lit_sql_command(data_dir: Path, checkpoint: Path, out_dir: Path, cpu_minutes: float, learning_rate: float,
                    method: str = "lora") -> list[str]:
    """lit_sql's fine-tuning on the Spider split as every Spider benchmark trains it: micro-batches of 8, global
    16, 10 warmup steps, cosine over a budget of process CPU time, no execution check (the peer has none); LoRA
    r16 on every linear layer in bf16, or (method full) every weight at full.py's default precision."""
    common = ["--data_dir", str(data_dir), "--checkpoint_dir", str(checkpoint), "--out_dir", str(out_dir),
              "--train.micro_batch_size", "8", "--train.global_batch_size", "16", "--train.warmup_steps", "10",
              "--train.max_minutes", str(cpu_minutes), "--train.clock", "cpu",
              "--train.eval_interval", "100000", "--train.eval_batches", "20", "--train.save_interval", "100",
              "--train.exec_eval_interval", "0", "--train.learning_rate", str(learning_rate), "--resume", "auto"]
    if method == "full":
        return [sys.executable, "finetune/full.py", *common]
    return [sys.executable, "finetune/lora.py", *common, "--precision", "bf16-true", "--lora_r", "16",
            "--lora_alpha", "32", "--lora_targets", "all-linear"]


ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_both(args, checkpoint: Path, out: Path) -> None:
    """lit_sql's finetune/lora.py and the peer, side by side, one thread each, same CPU-time budget."""
    from lit_sql.export import export_hf
    from lit_sql.run import base_run

    hf_base = out / "hf_base"
    if not (hf_base / "config.json").is_file():
        export_hf(base_run(checkpoint), hf_base, overwrite=True)
    shared = ["--learning_rate", str(args.learning_rate)]
    env = {**os.environ, **ONE_THREAD}
    lit_cmd = lit_sql_command(args.data_dir, checkpoint, out / "lit_sql", args.cpu_minutes,
                              args.full_learning_rate if args.method == "full" else args.learning_rate, args.method)
    peer_cmd = [sys.executable, "benchmarks/_spider_peer.py", "--hf_dir", str(hf_base), "--data_dir", str(args.data_dir),
                "--out_dir", str(out / "peer"), "--cpu_minutes", str(args.cpu_minutes), *shared,
                # Same global batch of 16; micro-batches of 4 because transformers computes float32 logits over the
                # whole vocabulary for every position: with 8 it outgrew 13 GB at 512 tokens and the OOM killer
                # ended it on this 24 GB machine.
                "--micro_batch_size", "4"]
    procs = {}
    for name, cmd in (("lit_sql", lit_cmd), ("transformers+peft", peer_cmd)):
        log = open(out / f"train_{name.replace('+', '_')}.log", "w")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    for name, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"{name} training failed: see {out}/train_{name.replace('+', '_')}.log")
    print(f"training took {time.perf_counter() - started:.0f} s of wall time", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", type=Path, default=ROOT / "data" / "spider")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "spider_split")
    p.add_argument("--cpu_minutes", type=float, default=30.0)
    p.add_argument("--learning_rate", type=float, default=2e-3, help="LoRA's, and the peer's")
    p.add_argument("--method", choices=["lora", "full"], default="lora",
                   help="lit_sql's fine-tuning: LoRA (as the peer) or every weight (finetune/full.py)")
    p.add_argument("--full_learning_rate", type=float, default=5e-5, help="with --method full")
    p.add_argument("--eval_questions", type=int, default=200)
    p.add_argument("--vote_questions", type=int, default=24)
    p.add_argument("--vote_samples", type=int, default=8)
    p.add_argument("--skip_training", action="store_true", help="evaluate the runs already in --out")
    p.add_argument("--skip_eval", action="store_true", help="only train")
    p.add_argument("--only", nargs="*", help="evaluate only these models (base, lit_sql, transformers+peft) for now")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "spider_split_eval.json")
    args = p.parse_args()

    import torch

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint
    from lit_sql.cli.evaluate import data_recipe, load_split, run_model
    from lit_sql.evaluate import EvalConfig, write_reports
    from lit_sql.run import Run, load_run

    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.data_dir / "test.pt").is_file():
        raise SystemExit(f"{args.data_dir}/test.pt not found: prepare Spider first (see this file's docstring)")
    if not args.skip_training:
        train_both(args, checkpoint, args.out)
    if args.skip_eval:
        return

    torch.set_num_threads(os.cpu_count() or 1)
    examples = load_split(args.data_dir, "test", args.eval_questions, seed=1234)
    vote_examples = examples[:args.vote_questions]
    greedy = EvalConfig(max_new_tokens=128, batch_size=8)
    voting = EvalConfig(max_new_tokens=128, batch_size=16, num_samples=args.vote_samples, temperature=0.7)
    models = {"base": (checkpoint, None), "lit_sql": (checkpoint, args.out / "lit_sql"),
              "transformers+peft": (args.out / "peer", None)}
    if args.only:
        models = {k: v for k, v in models.items() if k in args.only}
    cache = args.out / "eval_runs"
    cache.mkdir(exist_ok=True)

    def evaluate(name: str, kind: str, subset: list[dict], cfg: EvalConfig) -> tuple[list[dict], dict]:
        """One model's evaluation, kept on disk so an interrupted benchmark resumes where it stopped."""
        path = cache / f"{name.replace('+', '_')}-{kind}-{len(subset)}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            return saved["records"], saved["summary"]
        ckpt, lora = models[name]
        run = load_run(lora) if lora is not None else Run(ckpt, data_recipe(args.data_dir))
        records, summary = run_model(f"{name} {kind}", run, subset, cfg)
        path.write_text(json.dumps({"records": records, "summary": summary}))
        return records, summary

    runs, summaries = {}, {}
    for name in models:
        runs[name] = evaluate(name, "greedy", examples, greedy)
        summaries[name] = {"greedy": runs[name][1]}
    for name in [m for m in ("base", "lit_sql") if m in models]:
        records, summary = evaluate(name, f"vote{args.vote_samples}", vote_examples, voting)
        # The same questions greedy, for a like-for-like comparison with voting.
        same = [r for r in runs[name][0][:len(vote_examples)]]
        summaries[name]["vote"] = summary
        summaries[name]["greedy_on_vote_questions"] = round(100.0 * sum(r["match"] for r in same) / max(1, len(same)), 2)
    if args.only:
        print(json.dumps(summaries, indent=2))
        return
    training = {"lit_sql": json.loads((args.out / "lit_sql" / "train_summary.json").read_text()),
                "transformers+peft": json.loads((args.out / "peer" / "train_summary.json").read_text())}
    report = write_reports(args.out / "eval", runs, title="Spider train, database split: base vs fine-tuned (greedy)")

    def acc(name: str, key: str = "greedy") -> float:
        return summaries[name][key]["execution_accuracy"]

    result = {
        "name": "spider_split_eval", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": "execution accuracy", "mode": greedy.mode, "higher_is_better": True,
        "split": f"{args.data_dir.name}: Spider train split by database (test databases never trained on)",
        "n": len(examples), "base": acc("base"), "finetuned": acc("lit_sql"),
        "lit_sql": acc("lit_sql"), "peers": {"transformers+peft": acc("transformers+peft")},
        "ratio_vs_base": round(acc("lit_sql") / max(acc("base"), 1e-9), 2),
        "paired_vs_peer": paired(runs["lit_sql"][0], runs["transformers+peft"][0], ("lit_sql", "transformers+peft")),
        "voting": {"n": len(vote_examples), "samples": args.vote_samples,
                   "base": acc("base", "vote"), "finetuned": acc("lit_sql", "vote"),
                   "base_greedy_same_questions": summaries["base"]["greedy_on_vote_questions"],
                   "finetuned_greedy_same_questions": summaries["lit_sql"]["greedy_on_vote_questions"]},
        "training": training,
        "settings": {"model": "SmolLM2-135M-Instruct", "cpu_minutes_each": args.cpu_minutes,
                     "threads_each": 1, "lit_sql_method": args.method,
                     "lora": "r=16 alpha=32, all linear layers of the blocks (the peer's, and lit_sql's with "
                             "--method lora)",
                     "precision": f"{training['lit_sql'].get('precision') or 'bf16-true'} (lit_sql's training), "
                                  f"bf16-true (the peer's), 32-true (evaluation)", "micro_batch_size": 8,
                     "peer_micro_batch_size": 4,  # same global batch; at 8 the peer outgrew memory (see train_both)
                     "global_batch_size": 16, "learning_rate": args.learning_rate,
                     **({"full_learning_rate": args.full_learning_rate} if args.method == "full" else {}),
                     "schedule": "10 warmup steps, cosine over the CPU-time budget",
                     "schema_format": "compact", "max_seq_length": 512, "loss": "answer tokens only"},
        "summaries": summaries, "report": str(report.relative_to(ROOT)), "rerun": RERUN,
    }
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    # The Markdown report and its chart are committed beside the figures (out/ is not).
    chart = report.with_name("accuracy.png")
    text = report.read_text().replace("](accuracy.png)", "](spider_split_accuracy.png)")
    args.results.with_name("spider_split_report.md").write_text(text)
    if chart.is_file():
        shutil.copyfile(chart, args.results.with_name("spider_split_accuracy.png"))
    print(json.dumps({k: result[k] for k in ("n", "base", "finetuned", "peers", "voting")}, indent=2))
    print(f"Report: {report}\nRerun: {RERUN}")


if __name__ == "__main__":
    main()
