"""Generation for evaluation: questions per minute of lit_sql's batched evaluation path against `transformers`
answering one question at a time, on the same model and Spider test prompts.

    .venv/bin/python benchmarks/eval_generate.py          # writes benchmarks/results/eval_generate.json

lit_sql: `lit_sql.evaluate.generate_sql` exactly as `eval/sql.py` runs it on `--questions` test questions (questions
on the same database batched together so their shared system prompt and schema are computed once, batches of
`--batch_size`, KV cache, each row stopping at its own end token). transformers: `generate` greedy per question,
with the same stop token and `--max_new_tokens`, on a seeded sample of `--peer_questions` of the same questions.
Same weights (the fine-tuned adapter, so answers are SQL of realistic length: lit_sql keeps it beside the
compressed base weights, transformers gets it merged), float32, greedy; the tools alternate, `--reps` each, the
median counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from _common import cpu_name

from lit_sql.evaluate import EvalConfig

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/eval_generate.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", type=Path, default=ROOT / "data" / "spider")
    p.add_argument("--lora_path", type=Path, default=ROOT / "out" / "spider_split" / "lit_sql",
                   help="an adapter to merge first (answers of realistic length); missing: the base model")
    p.add_argument("--questions", type=int, default=200,
                   help="the evaluation set, as eval/sql.py --limit picks it (questions share databases as in use)")
    p.add_argument("--peer_questions", type=int, default=48,
                   help="transformers answers this seeded sample of them: one at a time, its cost per question "
                        "does not depend on the others, and all 200 would take ~7 minutes a repetition")
    p.add_argument("--batch_size", type=int, default=EvalConfig.batch_size)
    p.add_argument("--max_new_tokens", type=int, default=160)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tools", default="lit_sql,lit_sql constrained,transformers",
                   help="comma-separated subset of: lit_sql, lit_sql constrained, transformers")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_generate.json")
    args = p.parse_args()

    import transformers

    from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint, hf_config_dict, to_hf_state_dict
    from lit_sql.cli.evaluate import load_split
    from lit_sql.evaluate import generate_sql, prompt_of, schemas_of
    from lit_sql.generation import load_for_inference
    from lit_sql.prompts import load_prompt_style
    from lit_sql.sql.extract import extract_sql
    from lit_sql.tokenizer import Tokenizer

    checkpoint = ensure_checkpoint(ROOT / "checkpoints" / EMBEDDED_REPO_ID)
    lora = args.lora_path if (args.lora_path / "adapter.pth").is_file() else None
    tokenizer, style = Tokenizer(checkpoint), load_prompt_style(checkpoint)
    examples = load_split(args.data_dir, "test", args.questions, seed=1234)
    prompts = [prompt_of(ex, style) for ex in examples]
    schemas = schemas_of(examples)
    peer_sample = sorted(random.Random(0).sample(range(len(prompts)), min(args.peer_questions, len(prompts))))
    cfg = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    model = load_for_inference(checkpoint, "32-true", lora_path=lora)
    merged = load_for_inference(checkpoint, "32-true", lora_path=lora, fast_decoding=False)  # plain layout for export
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config_dict(merged.config)))
    hf.load_state_dict(to_hf_state_dict(merged.state_dict(), merged.config), strict=False)
    hf.tie_weights()
    hf.eval()
    del merged
    stop_ids = [s[0] for s in style.stop_tokens(tokenizer) if len(s) == 1]

    def lit_sql_run() -> list[str]:
        return [c[0] for c in generate_sql(model, tokenizer, style, prompts, cfg, desc="lit_sql")]

    def lit_sql_constrained_run() -> list[str]:
        """The default of eval/sql.py: schema-grounded decoding (lit_sql/sql/grounding.py)."""
        return [c[0] for c in generate_sql(model, tokenizer, style, prompts, cfg, desc="lit_sql constrained",
                                           schemas=schemas)]

    def hf_run() -> list[str]:
        answers = []
        with torch.inference_mode():
            for text in (prompts[i] for i in peer_sample):
                idx = torch.tensor([tokenizer.encode(text)])
                out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=args.max_new_tokens,
                                  do_sample=False, eos_token_id=stop_ids, pad_token_id=tokenizer.eos_id)
                answers.append(extract_sql(tokenizer.decode([t for t in out[0, idx.shape[1]:].tolist() if t not in stop_ids])))
        return answers

    tools = {"lit_sql": lit_sql_run, "lit_sql constrained": lit_sql_constrained_run, "transformers": hf_run}
    tools = {name: fn for name, fn in tools.items() if name in args.tools.split(",")}
    runs: dict[str, list[float]] = {name: [] for name in tools}
    answers: dict[str, list[str]] = {}
    for rep in range(args.reps):
        for name, fn in tools.items():
            start = time.perf_counter()
            answers[name] = fn()
            rate = 60 * len(answers[name]) / (time.perf_counter() - start)
            runs[name].append(round(rate, 1))
            print(f"rep {rep + 1} {name:14s} {rate:7.1f} questions/minute", flush=True)
    median = {k: statistics.median(v) for k, v in runs.items()}
    same = sum(answers["lit_sql"][i] == b for i, b in zip(peer_sample, answers.get("transformers", [])))
    changed = sum(a != b for a, b in zip(answers["lit_sql"], answers.get("lit_sql constrained", [])))
    report = {
        "name": "eval_generate", "date": date.today().isoformat(), "device": cpu_name(),
        "metric": "questions/minute (greedy SQL generation for evaluation)", "higher_is_better": True,
        "lit_sql": median["lit_sql"], "peers": {"transformers (one question at a time)": median.get("transformers")},
        "ratio_vs_best_peer": round(median["lit_sql"] / median["transformers"], 2) if "transformers" in median else None,
        "same_sql": f"{same}/{len(peer_sample)}",
        # Schema-grounded decoding (the default of eval/sql.py), measured in the same run, alternating.
        "constrained": {"questions_per_minute": median["lit_sql constrained"],
                        "cost_vs_unconstrained": round(1 - median["lit_sql constrained"] / median["lit_sql"], 3),
                        "answers_changed": f"{changed}/{len(prompts)}"} if "lit_sql constrained" in median else None,
        "settings": {"model": "SmolLM2-135M-Instruct" + (f" + {lora.name} adapter" if lora else ""),
                     "data": f"{args.data_dir.name} test split", "questions": len(prompts),
                     "peer_questions": len(peer_sample),
                     "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "precision": "32-true",
                     "threads": torch.get_num_threads(), "transformers": transformers.__version__,
                     "torch": torch.__version__},
        "runs": runs, "rerun": RERUN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("lit_sql", "peers", "ratio_vs_best_peer", "same_sql")}))
    print(f"Wrote {args.out}. Rerun: {RERUN}")


if __name__ == "__main__":
    main()
