"""Spider, database split, on one GPU: benchmarks/spider_split.py's LoRA recipe for full epochs instead of 30
CPU-minutes; execution accuracy of SmolLM2-135M-Instruct after 1, 3 and 5 epochs, and the wall time.

    python benchmarks/gpu_spider.py --data /tmp/lit_sql_gpu/spider --out $OUT/spider_split_gpu.json   # gpu.sh
    .venv/bin/python benchmarks/gpu_spider.py --device cpu --tiny --data data/spider --out /tmp/s.json  # dry run

One run of 5 epochs through finetune/lora.py (its cosine schedule spans all 5): the adapter after epochs 1 and 3 is
the run's checkpoint at that step (`--train.save_interval` is one epoch), after epoch 5 the final adapter. The
recipe is spider_split.py's (LoRA r=16, alpha=32 on every linear layer of the blocks, bf16-true, answer-only loss,
global batch 16, learning rate 1e-3, 10 warmup steps then cosine, no execution check while training) with one
change: micro-batches of 16 instead of 8 x 2 accumulation steps (the same global batch and token-weighted loss; a
135M model's step on a GPU costs its kernel launches, not its arithmetic, so one micro-batch a step halves the
time). Evaluation is spider_split.py's: greedy, float32, at most 128 new tokens, on the 200 test questions that its
seed picks from the split, here on the GPU in batches of 64.

`--data` is a prepared Spider split (scripts/prepare_sql.py, as spider_split.py's docstring says) with a
`database/<db_id>/<db_id>.sqlite` folder beside it (what benchmarks/gpu_pack.sh packs): the examples' database
paths are pointed there, wherever the split was prepared.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
RERUN = "bash benchmarks/gpu.sh spider   # on the GPU machine: see the top of benchmarks/gpu.sh"
EVAL_SEED = 1234  # spider_split.py's: the same 200 questions


def prepare_data(src: Path, work: Path, tiny: bool) -> Path:
    """train.pt and meta.json as they are, test.pt with every database path pointed into `src/database`."""
    from lit_sql.checkpoint import atomic_torch_save

    dst = work / "data"
    dst.mkdir(parents=True, exist_ok=True)
    train = torch.load(src / "train.pt", weights_only=False)
    test = torch.load(src / "test.pt", weights_only=False)
    if tiny:  # the shortest examples: a 2-core CPU takes seconds a step even so
        train = sorted(train, key=lambda ex: len(ex["input_ids"]))[:4]
    missing = set()
    for ex in test:
        db = (src / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite").resolve()
        if not db.is_file():
            missing.add(ex["db_id"])
        ex["db_path"] = str(db)
    if missing:
        raise SystemExit(f"{src}/database lacks {len(missing)} test databases (e.g. {sorted(missing)[:3]}): "
                         f"pack them with benchmarks/gpu_pack.sh")
    atomic_torch_save(train, dst / "train.pt")
    atomic_torch_save(test, dst / "test.pt")
    shutil.copyfile(src / "meta.json", dst / "meta.json")
    return dst


def train(args, checkpoint: Path, data: Path, run: Path, n_train: int, timeout: float) -> dict:
    """finetune/lora.py for max(epochs) epochs, saving the adapter at every epoch's end; killed at `timeout`."""
    steps_per_epoch = (n_train // args.micro_batch_size) // (args.global_batch_size // args.micro_batch_size)
    cmd = [sys.executable, "finetune/lora.py", "--data_dir", str(data), "--checkpoint_dir", str(checkpoint),
           "--out_dir", str(run), "--accelerator", args.device, "--devices", "1", "--precision", args.precision,
           "--lora_r", "16", "--lora_alpha", "32", "--lora_targets", "all-linear",
           "--train.micro_batch_size", str(args.micro_batch_size),
           "--train.global_batch_size", str(args.global_batch_size), "--train.warmup_steps", "10",
           "--train.learning_rate", str(args.learning_rate),
           "--train.max_steps", str(steps_per_epoch * max(args.epochs)),
           "--train.save_interval", str(steps_per_epoch), "--train.eval_interval", "100000",
           # validation loss on spider_split.py's 160 test examples (20 batches of 8), before and after
           "--train.eval_batches", str(max(1, 160 // args.micro_batch_size) if not args.tiny else 1),
           "--train.exec_eval_interval", "0", "--train.log_interval", "10"]
    print(f"[spider] {n_train} examples, {steps_per_epoch} steps an epoch, {max(args.epochs)} epochs, up to "
          f"{timeout:.0f} s:\n  {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    log = run.parent / "train.log"
    timed_out = False
    with open(log, "w") as f:
        try:
            code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code, timed_out = None, True
    wall = time.perf_counter() - started
    tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()
    print("[spider] training log, last lines:\n  " + "\n  ".join(line for line in tail[-12:] if line.strip()),
          flush=True)
    summary_path = run / "train_summary.json"
    return {"wall_s": round(wall, 1), "exit_code": code, "timed_out": timed_out, "steps_per_epoch": steps_per_epoch,
            "summary": json.loads(summary_path.read_text()) if summary_path.is_file() else None}


def adapter_after(run: Path, epoch: int, steps_per_epoch: int, last_epoch: int) -> Path | None:
    """A run folder holding the adapter after `epoch` (the final adapter, or the epoch's checkpoint made into one),
    or None if training did not get there."""
    from lit_sql.lora import ADAPTER_FILE, HYPERPARAMETERS_FILE

    if epoch == last_epoch:
        return run if (run / ADAPTER_FILE).is_file() else None
    checkpoint = run / "checkpoints" / f"step-{epoch * steps_per_epoch:06d}.pth"
    if not checkpoint.is_file():
        return None
    folder = run.parent / f"epoch-{epoch}"
    folder.mkdir(exist_ok=True)
    lora = torch.load(checkpoint, weights_only=False, map_location="cpu")["model"]
    torch.save({k: v.float() for k, v in lora.items()}, folder / ADAPTER_FILE)
    shutil.copyfile(run / HYPERPARAMETERS_FILE, folder / HYPERPARAMETERS_FILE)
    return folder


def device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    from _common import cpu_name

    return cpu_name()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="prepared split with database/ beside it")
    p.add_argument("--checkpoint_dir", type=Path,
                   default=ROOT / "checkpoints" / "HuggingFaceTB" / "SmolLM2-135M-Instruct")
    p.add_argument("--work", type=Path, default=Path("/tmp/lit_sql_gpu/spider_run"))
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--epochs", default="1,3,5", help="evaluate after these epochs (one run of the largest)")
    p.add_argument("--micro_batch_size", type=int, default=16)
    p.add_argument("--global_batch_size", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--precision", default="bf16-true")
    p.add_argument("--eval_questions", type=int, default=200)
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--budget_s", type=float, default=200.0, help="training and evaluation together")
    p.add_argument("--eval_reserve_s", type=float, default=60.0, help="kept for evaluation: training ends before")
    p.add_argument("--tiny", action="store_true",
                   help="4 training examples, 2 a batch, 2 questions, 16 new tokens (a CPU dry run)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spider_split_gpu.json")
    p.add_argument("--evaluate", help=argparse.SUPPRESS)  # one evaluation process: an adapter folder, or "" (base)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.evaluate is not None:
        return evaluate_one(args)
    args.epochs = sorted(int(e) for e in args.epochs.split(","))
    if args.tiny:
        args.eval_questions, args.max_new_tokens, args.micro_batch_size, args.global_batch_size = 2, 16, 2, 2
    deadline = time.perf_counter() + args.budget_s

    from lit_sql.checkpoint import check_checkpoint_dir

    check_checkpoint_dir(args.checkpoint_dir)
    if args.work.exists():
        shutil.rmtree(args.work)  # a rerun starts afresh (finetune/lora.py refuses a finished run's folder)
    args.work.mkdir(parents=True)
    data = prepare_data(args.data, args.work, args.tiny)
    n_train = len(torch.load(data / "train.pt", weights_only=False))
    run = args.work / "lit_sql"
    training = train(args, args.checkpoint_dir, data, run, n_train,
                     timeout=max(10.0, deadline - time.perf_counter() - args.eval_reserve_s))

    # Every model is evaluated at once, one process each: decoding a 135M model is bound by one CPU core's
    # kernel launches, so four processes share the GPU with little loss and take a quarter of the time.
    last = max(args.epochs)
    jobs: dict[str, tuple[subprocess.Popen, Path]] = {}
    results: dict[str, dict] = {}
    threads = str(max(1, (os.cpu_count() or 1) // (1 + len(args.epochs))))  # the CPU cores shared out
    for epoch in [0, *args.epochs]:
        lora = None if epoch == 0 else adapter_after(run, epoch, training["steps_per_epoch"], last)
        if epoch and lora is None:
            results[str(epoch)] = {"error": "training did not reach this epoch"}
            continue
        result = args.work / f"eval-{epoch}.json"
        cmd = [sys.executable, __file__, "--evaluate", str(lora or ""), "--result", str(result), "--data",
               str(data), "--checkpoint_dir", str(args.checkpoint_dir), "--device", args.device,
               "--eval_questions", str(args.eval_questions), "--eval_batch_size", str(args.eval_batch_size),
               "--max_new_tokens", str(args.max_new_tokens)]
        log = open(args.work / f"eval-{epoch}.log", "w")
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        jobs[str(epoch)] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env), result)
    for key, (proc, result) in jobs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            results[key] = {"error": "evaluation out of time"}
            continue
        if proc.returncode != 0 or not result.is_file():
            tail = (args.work / f"eval-{key}.log").read_text(errors="replace").replace("\r", "\n").splitlines()[-15:]
            results[key] = {"error": f"evaluation failed (exit {proc.returncode}): " + "\n".join(tail)}
            print(f"[spider] epoch {key} evaluation failed:\n  " + "\n  ".join(tail), flush=True)
            continue
        results[key] = json.loads(result.read_text())
        print(f"[spider] {'base' if key == '0' else 'epoch ' + key}: execution accuracy "
              f"{results[key]['execution_accuracy']:.1f}% ({results[key]['eval_wall_s']:.0f} s)", flush=True)
    write(args, training, results, args.eval_questions)


def evaluate_one(args) -> None:
    """One model (the base if --evaluate is empty, else that adapter folder) on the test questions, greedy, float32
    (spider_split.py's evaluation): its summary to --result."""
    from lit_sql.cli.evaluate import data_recipe, load_split, run_model
    from lit_sql.evaluate import EvalConfig
    from lit_sql.run import Run, load_run

    started = time.perf_counter()
    lora = Path(args.evaluate) if args.evaluate else None
    examples = load_split(args.data, "test", args.eval_questions, seed=EVAL_SEED)
    greedy = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size, workers=3)
    run = load_run(lora) if lora else Run(Path(args.checkpoint_dir), data_recipe(args.data))
    _, summary = run_model(lora.name if lora else "base", run, examples, greedy, seed=EVAL_SEED, device=args.device)
    result = {k: summary[k] for k in ("n", "execution_accuracy", "executes", "exact_match", "by_difficulty",
                                      "questions_per_minute")}
    result["eval_wall_s"] = round(time.perf_counter() - started, 1)
    args.result.write_text(json.dumps(result, indent=2))


def write(args, training: dict, results: dict, n: int) -> None:
    def acc(key: str):
        return results.get(key, {}).get("execution_accuracy")

    reached = [e for e in args.epochs if acc(str(e)) is not None]
    report = {
        "name": args.out.stem, "date": date.today().isoformat(), "device": device_name(args.device),
        "metric": "execution accuracy", "mode": "testsuite", "higher_is_better": True,
        "split": f"{args.data.name}: Spider train split by database (test databases never trained on)",
        "n": n, "base": acc("0"), "finetuned": acc(str(reached[-1])) if reached else None,
        "finetuned_epochs": reached[-1] if reached else None,
        "by_epoch": {e: acc(str(e)) for e in args.epochs},
        "training_wall_s": training["wall_s"],
        "training": training,
        "evaluations": results,
        "settings": {"model": "SmolLM2-135M-Instruct", "recipe": "benchmarks/spider_split.py's, full epochs",
                     "epochs": max(args.epochs), "lora": "r=16 alpha=32, all linear layers of the blocks",
                     "precision": f"{args.precision} (training), 32-true (evaluation)",
                     "micro_batch_size": args.micro_batch_size, "global_batch_size": args.global_batch_size,
                     "learning_rate": args.learning_rate, "schedule": "10 warmup steps, cosine over all epochs",
                     "loss": "answer tokens only",
                     "eval": f"greedy, {args.max_new_tokens} new tokens, batches of {args.eval_batch_size}",
                     "tiny_dry_run": args.tiny},
        "rerun": RERUN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
