"""LoRA fine-tuning throughput on CPU: lit_sql against litgpt and transformers+peft, side by side.

    .venv/bin/python benchmarks/finetune.py            # writes benchmarks/results/finetune_cpu.json
    .venv/bin/python benchmarks/finetune.py --precision 32-true --out benchmarks/results/finetune_cpu_fp32.json
    .venv/bin/python benchmarks/finetune.py --setting spider512     # writes benchmarks/results/finetune_cpu_512.json

The same SmolLM2-135M-Instruct weights, the same micro-batches of Spider questions (prompt = schema +
question in the chat template, answer-only labels), AdamW, one process each, alternating tools, 3
repetitions; tokens/s counts real tokens (no padding), and each process reports its peak RSS.

- `default`: micro-batches of 4 prompts of <= 256 tokens, shuffled; LoRA r=8 alpha=16 on q and v; bf16-true.
- `spider512`: the Spider recipe (scripts/prepare_sql.py --dataset spider --split_by database --schema_format
  compact --max_seq_length 512, then finetune/lora.py --train.micro_batch_size 8 --precision 32-true): the
  training loop's first micro-batches of 8 (the longest first: it sets the peak; 6 more timed); LoRA r=16
  alpha=32 on every linear layer; float32 (as on a CPU without AMX). lit_sql only, with activation
  checkpointing as by default (`lit_sql`), on every block (`lit_sql:checkpointing=true`) and off
  (`lit_sql:checkpointing=false`). `lit_sql:budget_gib=2` tries another activation budget than the default
  (`lit_sql.fast_training.ACTIVATION_BUDGET_GIB`).

`--baseline DIR` adds `lit_sql@baseline`: the same runner on the lit_sql package of another checkout (e.g.
`git worktree add /tmp/old <rev>`), to see what a change did to speed and memory.
Peers run from benchmarks/.venv-peers (created on first use; torch stays at 2.13.0).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch
from _common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
PEERS_VENV = ROOT / "benchmarks" / ".venv-peers"
SPIDER = ROOT.parent / "shared" / "data" / "spider-train"
RUNNERS = ROOT / "benchmarks" / "_finetune_runners.py"


def ensure_peers() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)  # first, so nothing below replaces it
        subprocess.run([*pip, "torch==2.13.0", "litgpt==0.5.13", "transformers==5.3.*", "peft==0.21.*"], check=True)
    return python


def spider_examples(tokenizer, style, max_len: int) -> list[dict]:
    """Schema as CREATE TABLE lines from tables.json, the question, the gold SQL; answer-only labels."""
    from lit_sql.data.prepare import IGNORE_INDEX

    tables = {db["db_id"]: db for db in json.loads((SPIDER / "tables.json").read_text())}
    examples = []
    for ex in json.loads((SPIDER / "train.json").read_text()):
        db = tables[ex["db_id"]]
        columns: dict[int, list[str]] = {}
        for (t, name), ctype in zip(db["column_names_original"], db["column_types"]):
            if t >= 0:
                columns.setdefault(t, []).append(f"{name} {ctype}")
        schema = "\n".join(f"CREATE TABLE {tname} ({', '.join(columns.get(i, []))});"
                           for i, tname in enumerate(db["table_names_original"]))
        prompt = tokenizer.encode(style.apply(f"{schema}\n\nQuestion: {ex['question']}",
                                              system="Answer with only the SQL query."))
        answer = tokenizer.encode(ex["query"], bos=False, eos=True)
        if len(prompt) + len(answer) <= max_len:
            examples.append({"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer})
    return examples


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SETTINGS = {
    "default": dict(steps=12, warmup=3, micro_batch_size=4, max_seq_length=256, precision="bf16-true",
                    tools="lit_sql,litgpt,transformers+peft", data="schema + question", batches="shuffled",
                    out="finetune_cpu.json",
                    lora={"r": 8, "alpha": 16, "dropout": 0.05, "lit_sql_targets": ["query", "value"],
                          "hf_targets": ["q_proj", "v_proj"]}),
    "spider512": dict(steps=6, warmup=1, micro_batch_size=8, max_seq_length=512, precision="32-true",
                      tools="lit_sql,lit_sql:checkpointing=true,lit_sql:checkpointing=false",
                      data="the Spider recipe's: compact schema + question, split by database",
                      batches="the training loop's first: the longest, then groups of similar length",
                      out="finetune_cpu_512.json",
                      lora={"r": 16, "alpha": 32, "dropout": 0.0, "lit_sql_targets": ["all-linear"],
                            "hf_targets": ALL_LINEAR}),
}


def recipe_examples(checkpoint: Path, max_len: int) -> list[dict]:
    """The Spider recipe's training examples, prepared once into benchmarks/.cache as `scripts/prepare_sql.py
    --dataset spider --split_by database --schema_format compact --max_seq_length <max_len>` prepares them."""
    out = CACHE / f"spider-compact-{max_len}"
    if not (out / "train.pt").is_file():
        from lit_sql.data.prepare import prepare

        prepare(dataset="spider", checkpoint_dir=checkpoint, out_dir=out, data_path=SPIDER, split_by="database",
                schema_format="compact", max_seq_length=max_len)
    return [{"input_ids": s["input_ids"].tolist(), "labels": s["labels"].tolist()}
            for s in torch.load(out / "train.pt", weights_only=False)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setting", default="default", choices=SETTINGS)
    p.add_argument("--steps", type=int, help="timed steps (default: the setting's)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default: the setting's)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--micro_batch_size", type=int)
    p.add_argument("--precision", choices=["bf16-true", "32-true"])
    p.add_argument("--tools", help="comma-separated: lit_sql, lit_sql:checkpointing=true|false, "
                                   "lit_sql:budget_gib=N, litgpt, transformers+peft (default: the setting's)")
    p.add_argument("--baseline", type=Path, help="a checkout of other lit_sql code: adds the tool lit_sql@baseline")
    p.add_argument("--out", help="default: benchmarks/results/<the setting's file>")
    args = p.parse_args()
    setting = SETTINGS[args.setting]
    for key in ("steps", "warmup", "micro_batch_size", "precision", "tools"):
        if getattr(args, key) is None:
            setattr(args, key, setting[key])
    args.out = args.out or str(ROOT / "benchmarks" / "results" / setting["out"])
    if args.baseline is not None:
        if not (args.baseline / "lit_sql" / "training.py").is_file():
            raise SystemExit(f"--baseline {args.baseline}: no lit_sql package there")
        args.tools += ",lit_sql@baseline"

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint
    from lit_sql.export import export_hf
    from lit_sql.prompts import load_prompt_style
    from lit_sql.run import base_run
    from lit_sql.tokenizer import Tokenizer

    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    tools = args.tools.split(",")
    hf_dir, litgpt_dir = CACHE / "hf", CACHE / "litgpt"
    if not (hf_dir / "model.safetensors").exists():
        export_hf(base_run(checkpoint), hf_dir, overwrite=True)
    peers_python = ensure_peers() if any(not t.startswith("lit_sql") for t in tools) else None
    if "litgpt" in tools and not (litgpt_dir / "lit_model.pth").exists():
        litgpt_dir.mkdir(parents=True, exist_ok=True)
        for f in hf_dir.iterdir():
            (litgpt_dir / f.name).write_bytes(f.read_bytes())
        subprocess.run([str(peers_python), "-c", "from pathlib import Path; "
                        "from litgpt.scripts.convert_hf_checkpoint import convert_hf_checkpoint; "
                        f"convert_hf_checkpoint(checkpoint_dir=Path('{litgpt_dir}'), model_name='SmolLM2-135M-Instruct')"],
                       check=True)

    n_batches = args.steps + args.warmup
    if setting["data"] == "schema + question":
        examples = spider_examples(Tokenizer(checkpoint), load_prompt_style(checkpoint), setting["max_seq_length"])
        random.Random(0).shuffle(examples)
        n = args.micro_batch_size * n_batches
        batches = [examples[i:i + args.micro_batch_size] for i in range(0, n, args.micro_batch_size)]
    else:
        from lit_sql.training import TrainArgs, length_grouped_batches

        examples = recipe_examples(checkpoint, setting["max_seq_length"])
        lengths = [len(e["input_ids"]) for e in examples]
        # The micro-batches the training loop starts with: the longest first, then groups of similar length.
        order = length_grouped_batches(lengths, args.micro_batch_size, TrainArgs.seed, epoch=0)[:n_batches]
        batches = [[examples[i] for i in b] for b in order]
    settings = setting["lora"]
    data = CACHE / f"finetune_batches_{args.setting}.pt"
    torch.save({"batches": batches, "settings": settings}, data)

    runs: dict[str, list[float]] = {t: [] for t in tools}
    memory: dict[str, list[float]] = {t: [] for t in tools}
    for rep in range(args.reps):
        for tool in tools:  # alternate tools within each repetition: noise hits all alike
            runner, _, option = tool.partition(":")
            env = dict(os.environ)
            if runner == "lit_sql@baseline":  # the runner is a script: its lit_sql comes from PYTHONPATH first
                runner, env["PYTHONPATH"] = "lit_sql", str(args.baseline.resolve())
            python = sys.executable if runner == "lit_sql" else str(peers_python)
            cmd = [python, str(RUNNERS), "--runner", runner, "--data", str(data), "--precision", args.precision,
                   "--warmup", str(args.warmup), "--checkpoint_dir", str(checkpoint), "--hf_dir", str(hf_dir),
                   "--litgpt_dir", str(litgpt_dir)]
            if option:  # e.g. checkpointing=false -> --checkpointing false
                key, value = option.split("=", 1)
                cmd += [f"--{key}", value]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if out.returncode != 0:
                raise SystemExit(f"{tool} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[tool].append(round(result["tokens_per_s"], 1))
            memory[tool].append(round(result["peak_rss_gib"], 3))
            print(f"rep {rep + 1} {tool:18s} {result['tokens_per_s']:7.1f} tokens/s  peak RSS "
                  f"{result['peak_rss_gib']:.2f} GiB", flush=True)

    median = {t: statistics.median(v) for t, v in runs.items()}
    rerun = " ".join(["python benchmarks/finetune.py", *sys.argv[1:]])
    peers = {t: median[t] for t in tools if not t.startswith("lit_sql")}
    best_peer = max(peers.values()) if peers else None
    report = {
        "name": Path(args.out).stem,
        "date": date.today().isoformat(),
        "device": cpu_name(),
        "metric": "tokens/s (without padding)",
        "higher_is_better": True,
        "lit_sql": median.get("lit_sql"),
        "peers": peers,
        "ratio_vs_best_peer": round(median["lit_sql"] / best_peer, 2) if best_peer and "lit_sql" in median else None,
        "tokens_per_s": median,
        "peak_rss_gib": {t: statistics.median(v) for t, v in memory.items()},
        "settings": {"model": "SmolLM2-135M-Instruct", "precision": args.precision, "lora": settings,
                     "micro_batch_size": args.micro_batch_size, "max_seq_length": setting["max_seq_length"],
                     "batches": setting["batches"], "timed_steps": args.steps, "warmup_steps": args.warmup,
                     "data": f"Spider train ({setting['data']}; answer-only loss)", "optimizer": "AdamW",
                     **({"baseline": str(args.baseline)} if args.baseline else {})},
        "runs": runs,
        "rerun": rerun,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("lit_sql", "peers", "ratio_vs_best_peer", "peak_rss_gib")}))
    print(f"Wrote {args.out}. Rerun: .venv/bin/{rerun}")


if __name__ == "__main__":
    main()
