"""Greedy generation speed on CPU: lit_sql against transformers' `generate`, same weights, one run.

    .venv/bin/python benchmarks/generate.py          # writes benchmarks/results/generate_cpu.json
    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/generate.py   # on a machine shared with other jobs

A ~100-token chat prompt (a schema and a question), 128 new tokens, greedy, float32, batch 1. The tools are
loaded once and alternate, `--reps` repetitions each after a short warm-up; the median is quoted. tokens/s is
128 / the wall time of the whole call (prefill included) for every tool; prefill is also reported alone.

- lit_sql: `load_for_inference`, which applies `lit_sql.fast_inference.optimize_for_decoding` (the default).
- lit_sql (unoptimized): `load_for_inference(fast_decoding=False)`, for reference.
- transformers: `LlamaForCausalLM.generate(do_sample=False, min_new_tokens=max_new_tokens=128)`.

Then batched decoding as evaluation runs it (`generate_batch`, 8 left-padded prompts of different lengths),
lit_sql against lit_sql (unoptimized): tokens/s over all rows, and whether the tokens are the same.
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
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ("CREATE TABLE head (head_id INTEGER PRIMARY KEY, name TEXT, born_state TEXT, age REAL);\n"
          "CREATE TABLE department (department_id INTEGER PRIMARY KEY, name TEXT, creation TEXT, ranking INTEGER, "
          "budget_in_billions REAL, num_employees REAL);\n")
PROMPT = SCHEMA + "How many heads of the departments are older than 56? Explain the query step by step."
# The batch: eight questions of different lengths about the same schema, as an evaluation batch has.
QUESTIONS = ("How many heads are older than 56?", "List the names of all heads born in California.",
             "What is the average budget of the departments?", "Which department has the most employees?",
             "Show the name and age of the oldest head.", "How many departments were created after 1900?",
             "List the departments ordered by ranking, with their budgets and number of employees.", "Count heads.")
RERUN = (f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} " if "OMP_WAIT_POLICY" in os.environ else "") + \
    ".venv/bin/python benchmarks/generate.py"


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return f"{line.split(':', 1)[1].strip()}, {torch.get_num_threads()} cores"
    return "CPU"


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch_new_tokens", type=int, default=32)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generate_cpu.json"))
    args = p.parse_args()

    import transformers

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, WEIGHTS_FILE, ensure_checkpoint, hf_config_dict, load_state_dict, to_hf_state_dict
    from lit_sql.fast_inference import exact_kernels
    from lit_sql.generation import generate, generate_batch, load_for_inference
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    load_before = [round(x, 1) for x in os.getloadavg()]
    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    tokenizer = Tokenizer(checkpoint)
    prompt = tokenizer.encode(load_prompt_style(checkpoint).apply(PROMPT))
    start = time.perf_counter()
    fast = load_for_inference(checkpoint, "32-true")
    load_s = {"lit_sql": time.perf_counter() - start}
    start = time.perf_counter()
    plain = load_for_inference(checkpoint, "32-true", fast_decoding=False)
    load_s["lit_sql (unoptimized)"] = time.perf_counter() - start
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config_dict(plain.config)))
    hf.load_state_dict(to_hf_state_dict(load_state_dict(checkpoint / WEIGHTS_FILE), plain.config), strict=False)
    hf.tie_weights()
    hf.eval()
    idx = torch.tensor([prompt])

    def lit_sql_run(model, new_tokens: int = args.new_tokens) -> tuple[float, float, list[int]]:
        start = time.perf_counter()
        stream = generate(model, prompt, new_tokens)  # no stop tokens: always new_tokens tokens
        first = next(stream)
        prefill = time.perf_counter() - start
        tokens = [first, *stream]
        return len(tokens) / (time.perf_counter() - start), prefill, tokens

    def hf_run(new_tokens: int = args.new_tokens) -> tuple[float, float, list[int]]:
        with torch.inference_mode():
            start = time.perf_counter()
            hf(idx, logits_to_keep=1)
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            out = hf.generate(idx, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              attention_mask=torch.ones_like(idx), pad_token_id=tokenizer.eos_id)
            seconds = time.perf_counter() - start
        tokens = out[0, idx.shape[1]:].tolist()
        return len(tokens) / seconds, prefill, tokens

    tools = {"lit_sql": lambda **kw: lit_sql_run(fast, **kw), "transformers": hf_run,
             "lit_sql (unoptimized)": lambda **kw: lit_sql_run(plain, **kw)}
    runs: dict[str, list[float]] = {name: [] for name in tools}
    prefill: dict[str, list[float]] = {name: [] for name in tools}
    tokens: dict[str, list[int]] = {}
    for fn in tools.values():
        fn(new_tokens=4)  # warm-up
    for rep in range(args.reps):
        for name, fn in tools.items():
            rate, pre, tokens[name] = fn()
            runs[name].append(round(rate, 2))
            prefill[name].append(round(pre * 1000, 1))
            print(f"rep {rep + 1} {name:22s} {rate:6.1f} tokens/s (prefill {pre * 1000:.0f} ms)", flush=True)

    # Batched decoding, as evaluation runs it: prompts of different lengths, left-padded, stopping at eos.
    batch = [tokenizer.encode(load_prompt_style(checkpoint).apply(SCHEMA + q)) for q in QUESTIONS]
    batch_runs: dict[str, list[float]] = {"lit_sql": [], "lit_sql (unoptimized)": []}
    batch_tokens = {}
    for rep in range(args.reps):
        for name, model in (("lit_sql", fast), ("lit_sql (unoptimized)", plain)):
            start = time.perf_counter()
            batch_tokens[name] = generate_batch(model, batch, args.batch_new_tokens, pad_id=tokenizer.eos_id,
                                                stop_tokens=[[tokenizer.eos_id]])
            rate = sum(map(len, batch_tokens[name])) / (time.perf_counter() - start)
            batch_runs[name].append(round(rate, 2))
            print(f"rep {rep + 1} batch of 8, {name:22s} {rate:6.1f} tokens/s", flush=True)
    median = {k: statistics.median(v) for k, v in runs.items()}
    plain_tokens = tokens["lit_sql (unoptimized)"]
    eos = plain_tokens.index(tokenizer.eos_id) if tokenizer.eos_id in plain_tokens else None
    report = {
        "name": "generate_cpu", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": f"tokens/s (greedy, {args.new_tokens} new tokens after a {len(prompt)}-token prompt)",
        "higher_is_better": True, "lit_sql": median["lit_sql"], "peers": {"transformers": median["transformers"]},
        "ratio_vs_best_peer": round(median["lit_sql"] / median["transformers"], 2),
        "lit_sql_unoptimized": median["lit_sql (unoptimized)"],
        "prefill_ms": {k: statistics.median(v) for k, v in prefill.items()},
        "load_s": {k: round(v, 2) for k, v in load_s.items()},
        "agreement_tokens": {
            # transformers' min_new_tokens forbids the end-of-sequence token, so it may diverge after one
            "lit_sql vs unoptimized": common_prefix(tokens["lit_sql"], tokens["lit_sql (unoptimized)"]),
            "lit_sql vs transformers": common_prefix(tokens["lit_sql"], tokens["transformers"]),
            "first eos in the unoptimized output": eos,
        },
        "batch_8": {
            "metric": f"tokens/s over all rows (generate_batch, 8 left-padded prompts of {min(map(len, batch))}-"
                      f"{max(map(len, batch))} tokens, up to {args.batch_new_tokens} new tokens, eos stops a row)",
            "lit_sql": statistics.median(batch_runs["lit_sql"]),
            "lit_sql_unoptimized": statistics.median(batch_runs["lit_sql (unoptimized)"]),
            "same_tokens": batch_tokens["lit_sql"] == batch_tokens["lit_sql (unoptimized)"],
            "runs": batch_runs,
        },
        "settings": {"model": "SmolLM2-135M-Instruct", "precision": "32-true", "batch_size": 1,
                     "prompt_tokens": len(prompt), "new_tokens": args.new_tokens, "reps": args.reps,
                     "exact_kernels": exact_kernels() is not None, "threads": torch.get_num_threads(),
                     # Shared machines: with other jobs on the cores, OpenMP's default spin-waiting stalls every
                     # tool (~40x at a load of 8 on 2 cores); OMP_WAIT_POLICY=passive keeps the comparison fair.
                     "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                     "load_average_before_after": [load_before, [round(x, 1) for x in os.getloadavg()]],
                     "transformers": transformers.__version__, "torch": torch.__version__},
        "runs": runs, "rerun": RERUN,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("lit_sql", "peers", "ratio_vs_best_peer", "agreement_tokens")}))
    print(f"Wrote {args.out}. Rerun: {RERUN}")


if __name__ == "__main__":
    main()
