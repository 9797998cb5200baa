"""Greedy generation speed on CPU: lit_sql against transformers' `generate`, same weights, one run.

    .venv/bin/python benchmarks/generate.py          # writes benchmarks/results/generate_cpu.json

A ~100-token chat prompt (a schema and a question), 128 new tokens, greedy, float32, batch 1. Both tools are
loaded once and alternate, 3 repetitions each (plus a warm-up); the median is quoted. Prefill time is
reported separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = ("CREATE TABLE head (head_id INTEGER PRIMARY KEY, name TEXT, born_state TEXT, age REAL);\n"
          "CREATE TABLE department (department_id INTEGER PRIMARY KEY, name TEXT, creation TEXT, ranking INTEGER, "
          "budget_in_billions REAL, num_employees REAL);\n"
          "How many heads of the departments are older than 56? Explain the query step by step.")


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return f"{line.split(':', 1)[1].strip()}, {torch.get_num_threads()} cores"
    return "CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generate_cpu.json"))
    args = p.parse_args()

    import transformers

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, WEIGHTS_FILE, ensure_checkpoint, hf_config_dict, load_state_dict, to_hf_state_dict
    from lit_sql.generation import generate, load_for_inference
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    tokenizer = Tokenizer(checkpoint)
    prompt = tokenizer.encode(load_prompt_style(checkpoint).apply(PROMPT))
    model = load_for_inference(checkpoint, "32-true")
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config_dict(model.config)))
    hf.load_state_dict(to_hf_state_dict(load_state_dict(checkpoint / WEIGHTS_FILE), model.config), strict=False)
    hf.tie_weights()
    hf.eval()
    idx = torch.tensor([prompt])

    def lit_sql_run() -> tuple[float, float, list[int]]:
        start = time.perf_counter()
        stream = generate(model, prompt, args.new_tokens)  # no stop tokens: always 128 tokens
        first = next(stream)
        prefill = time.perf_counter() - start
        tokens = [first, *stream]
        return len(tokens) / (time.perf_counter() - start), prefill, tokens

    def hf_run() -> tuple[float, float, list[int]]:
        with torch.inference_mode():
            start = time.perf_counter()
            hf(idx)
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            out = hf.generate(idx, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                              attention_mask=torch.ones_like(idx), pad_token_id=tokenizer.eos_id)
            seconds = time.perf_counter() - start
        tokens = out[0, idx.shape[1]:].tolist()
        return len(tokens) / seconds, prefill, tokens

    runs = {"lit_sql": [], "transformers": []}
    prefill = {"lit_sql": [], "transformers": []}
    lit_sql_run(), hf_run()  # warm-up
    same = None
    for rep in range(args.reps):
        for name, fn in (("lit_sql", lit_sql_run), ("transformers", hf_run)):
            rate, pre, tokens = fn()
            runs[name].append(round(rate, 2))
            prefill[name].append(round(pre * 1000, 1))
            print(f"rep {rep + 1} {name:13s} {rate:6.1f} tokens/s (prefill {pre * 1000:.0f} ms)", flush=True)
            if name == "lit_sql":
                ours = tokens
            else:
                same = tokens == ours
    median = {k: statistics.median(v) for k, v in runs.items()}
    report = {
        "name": "generate_cpu", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": f"tokens/s (greedy, {args.new_tokens} new tokens after a {len(prompt)}-token prompt)",
        "higher_is_better": True, "lit_sql": median["lit_sql"], "peers": {"transformers": median["transformers"]},
        "ratio_vs_best_peer": round(median["lit_sql"] / median["transformers"], 2),
        "prefill_ms": {k: statistics.median(v) for k, v in prefill.items()},
        "same_tokens": same,
        "settings": {"model": "SmolLM2-135M-Instruct", "precision": "32-true", "batch_size": 1,
                     "prompt_tokens": len(prompt), "new_tokens": args.new_tokens,
                     "transformers": transformers.__version__, "torch": torch.__version__},
        "runs": runs, "rerun": "python benchmarks/generate.py",
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("lit_sql", "peers", "ratio_vs_best_peer", "same_tokens")}))
    print(f"Wrote {args.out}. Rerun: .venv/bin/python benchmarks/generate.py")


if __name__ == "__main__":
    main()
