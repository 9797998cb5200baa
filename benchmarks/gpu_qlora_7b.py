"""QLoRA on a Llama-2-7B-shaped model on one GPU: peak GPU memory and tokens/s, lit_sql against litgpt 0.5.13.

    python benchmarks/gpu_qlora_7b.py --out benchmarks/results/finetune_gpu.json   # on a GPU (benchmarks/gpu.sh)
    .venv/bin/python benchmarks/gpu_qlora_7b.py --tiny --device cpu --out /tmp/qlora.json   # CPU dry run

No 7B weights exist offline, and memory and speed do not depend on the values: both tools get random weights of
Llama-2-7B's shapes, built straight on the GPU one block at a time and quantized as each block is made, so the build
never holds more than one block in bf16 (nor 28 GB of host memory). The same random token batches (512 tokens a
sequence, the last `--answer_tokens` of them labelled, as in a text-to-SQL example whose prompt is masked) go
through each tool's own training step: lit_sql's `loss_sum` + Fabric backward + AdamW (finetune/lora.py's step);
litgpt's as its finetune/lora.py takes it (a Fabric `BitsandbytesPrecision` plugin in bf16 -- litgpt refuses
quantization with mixed precision --, PagedAdamW, StableEmbedding, logits over every position in chunks of 128).
LoRA r=8, alpha=16, dropout 0.05 on the query and value projections (litgpt's defaults) for both.

Each tool runs in its own process (peak memory is a process's own). Peak memory is
`torch.cuda.max_memory_allocated` over building the model and the steps of that micro-batch size (reset between
micro-batch sizes); tokens/s counts every token of the batch, timed over `--reps` windows of `--steps` steps after
`--warmup` steps, median quoted. A build per repetition would not fit the GPU script's time, so repetitions are
windows within one process rather than alternated processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RERUN = "bash benchmarks/gpu.sh qlora7b   # on the GPU machine: see the top of benchmarks/gpu.sh"
# A config of the same kind, small enough for a CPU dry run of every code path.
TINY = dict(n_layer=2, n_head=4, n_query_groups=4, head_size=64, n_embd=256, intermediate_size=688, vocab_size=1000,
            block_size=1024)
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "lit_sql_targets": "query,value", "litgpt": "lora_query, lora_value"}


def device_name(device: str) -> str:
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)  # torch's version names its CUDA too (2.11.0+cu130)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    from _common import cpu_name

    return cpu_name()


def batches(vocab: int, micro_batch_size: int, seq_len: int, answer_tokens: int, n: int, seed: int = 0):
    """`n` micro-batches of random tokens, the last `answer_tokens` of each sequence labelled (the same for both
    tools: the same seed)."""
    g = torch.Generator().manual_seed(seed * 1000 + micro_batch_size)
    out = []
    for _ in range(n):
        idx = torch.randint(0, vocab, (micro_batch_size, seq_len), generator=g)
        labels = idx.clone()
        labels[:, :seq_len - answer_tokens] = -100
        out.append((idx, labels))
    return out


class Meter:
    """Peak memory and tokens/s of one micro-batch size."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, step, data, args) -> dict:
        for x, y in data[:args.warmup]:
            step(x, y)
        windows = []
        timed = data[args.warmup:]
        for rep in range(args.reps):
            chunk = timed[rep * args.steps:(rep + 1) * args.steps]
            self.sync()
            start = time.perf_counter()
            for x, y in chunk:
                step(x, y)
            self.sync()
            windows.append(sum(x.numel() for x, _ in chunk) / (time.perf_counter() - start))
        result = {"tokens_per_s": round(statistics.median(windows), 1), "windows": [round(w, 1) for w in windows]}
        if self.cuda:
            result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            result["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
            torch.cuda.reset_peak_memory_stats()
        else:
            import resource

            result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
        return result


# ---------------------------------------------------------------------------------------------------------------
# lit_sql
# ---------------------------------------------------------------------------------------------------------------
def build_lit_sql(config, device: torch.device, quantize: str | None, dtype: torch.dtype = torch.bfloat16):
    """A GPT of `config` with random weights, made on `device` one block at a time; each block's linears are
    quantized before the next block exists (what `load_model` does with a real checkpoint, layer by layer)."""
    import torch.nn as nn

    from lit_sql.model import GPT, Block, RMSNorm
    from lit_sql.quantize import quantize_model

    with torch.device("meta"):
        model = GPT(config)
    model.wte = nn.Embedding(config.vocab_size, config.n_embd, device=device, dtype=dtype)
    model.norm = RMSNorm(config.n_embd, eps=config.norm_eps).to(device=device, dtype=dtype)
    model.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False, device=device, dtype=dtype)
    nn.init.normal_(model.wte.weight, std=0.02)
    nn.init.normal_(model.lm_head.weight, std=0.02)
    if config.tie_embeddings:
        model.lm_head.weight = model.wte.weight
    default_dtype = torch.get_default_dtype()
    for i in range(config.n_layer):
        torch.set_default_dtype(dtype)  # made in bf16 directly: no float32 copy of a block, even for a moment
        try:
            with torch.device("meta"):
                block = Block(config)
        finally:
            torch.set_default_dtype(default_dtype)
        block = block.to_empty(device=device)
        for name, p in block.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=0.02)
        if quantize:
            quantize_model(block, quantize, torch.bfloat16, device)
        model.blocks[i] = block
    return model.requires_grad_(False)


def run_lit_sql(args, config, data_by_size: dict) -> dict:
    import lightning as L

    from lit_sql.fast_training import optimize_for_training
    from lit_sql.lora import LoRAConfig, inject_lora, trainable_parameters
    from lit_sql.training import TrainArgs, loss_sum, make_optimizer

    fabric = L.Fabric(accelerator=args.device, devices=1, precision=args.precision)
    started = time.perf_counter()
    model = build_lit_sql(config, fabric.device, args.quantize)
    inject_lora(model, LoRAConfig(r=LORA["r"], alpha=LORA["alpha"], dropout=LORA["dropout"],
                                  targets=LORA["lit_sql_targets"]))
    optimize_for_training(model, activation_checkpointing=args.activation_checkpointing)
    build_s = time.perf_counter() - started
    model = fabric.setup_module(model)
    optimizer = fabric.setup_optimizers(make_optimizer(trainable_parameters(model), TrainArgs(learning_rate=2e-4)))

    def step(x, y):
        x, y = fabric.to_device((x, y))
        loss, n = loss_sum(model, x, y)
        fabric.backward(loss / n)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    meter = Meter(args.device)
    results = {str(mb): meter.run(step, data, args) for mb, data in data_by_size.items()}
    return {"build_s": round(build_s, 1), "by_micro_batch": results,
            "trainable_params": sum(p.numel() for p in trainable_parameters(model))}


# ---------------------------------------------------------------------------------------------------------------
# litgpt, as its finetune/lora.py sets it up
# ---------------------------------------------------------------------------------------------------------------
def run_litgpt(args, config, data_by_size: dict) -> dict:
    import lightning as L
    from litgpt.lora import GPT, Config, mark_only_lora_as_trainable
    from litgpt.utils import chunked_cross_entropy

    quantized = args.quantize and args.device == "cuda"  # Lightning's bitsandbytes layers quantize on CUDA only
    plugins = None
    if quantized:
        from lightning.fabric.plugins import BitsandbytesPrecision

        plugins = BitsandbytesPrecision(args.quantize.removeprefix("bnb."), torch.bfloat16)
    fabric = L.Fabric(accelerator=args.device, devices=1, precision=None if plugins else "bf16-true", plugins=plugins)
    lit_config = Config.from_name("Llama-2-7b-hf", lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                                  lora_dropout=LORA["dropout"], lora_query=True, lora_key=False, lora_value=True,
                                  lora_projection=False, lora_mlp=False, lora_head=False,
                                  **({} if not args.tiny else {
                                      "n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd,
                                      "n_query_groups": config.n_query_groups,
                                      "intermediate_size": config.intermediate_size,
                                      "vocab_size": config.vocab_size, "padded_vocab_size": config.vocab_size,
                                      "block_size": config.block_size}))
    started = time.perf_counter()
    with fabric.init_module(empty_init=False):  # on the GPU: each linear is quantized as it is made
        model = GPT(lit_config)
    mark_only_lora_as_trainable(model)
    build_s = time.perf_counter() - started
    model = fabric.setup_module(model)
    if quantized:
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW(model.parameters(), lr=2e-4)
        # litgpt replaces the embedding by bitsandbytes' StableEmbedding when it quantizes
        old = model.transformer.wte
        model.transformer.wte = bnb.nn.StableEmbedding(old.num_embeddings, old.embedding_dim)
        with torch.no_grad():
            model.transformer.wte.weight.copy_(old.weight)
        model.transformer.wte = model.transformer.wte.to(device=old.weight.device, dtype=old.weight.dtype)
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    optimizer = fabric.setup_optimizers(optimizer)
    model.max_seq_length = args.seq_len
    model.train()

    def step(x, y):
        x, y = fabric.to_device((x, y))
        logits = model(x, lm_head_chunk_size=128)
        logits[-1] = logits[-1][..., :-1, :]
        loss = chunked_cross_entropy(logits, y[..., 1:])
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    meter = Meter(args.device)
    results = {str(mb): meter.run(step, data, args) for mb, data in data_by_size.items()}
    return {"build_s": round(build_s, 1), "by_micro_batch": results, "quantized": bool(quantized),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


RUNNERS = {"lit_sql": run_lit_sql, "litgpt": run_litgpt}


def runner_main(args) -> None:
    from lit_sql.config import Config

    torch.manual_seed(0)
    config = Config.from_name("Llama-2-7b-hf", **(TINY if args.tiny else {}))
    n = args.warmup + args.reps * args.steps
    data = {mb: batches(config.vocab_size, mb, args.seq_len, args.answer_tokens, n)
            for mb in args.micro_batch_sizes}
    result = RUNNERS[args.runner](args, config, data)
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Both tools, one process each, within a time budget
# ---------------------------------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="a small config of the same kind (for a CPU dry run)")
    p.add_argument("--tools", default="lit_sql,litgpt")
    p.add_argument("--micro_batch_sizes", default="1,4")
    p.add_argument("--seq_len", type=int, default=512)
    p.add_argument("--answer_tokens", type=int, default=128)
    p.add_argument("--quantize", default="bnb.nf4")
    p.add_argument("--precision", default="bf16-mixed", help="lit_sql's; litgpt quantizes in bf16-true only")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--activation_checkpointing", action="store_true", help="lit_sql: recompute blocks in backward")
    p.add_argument("--variants", default="activation_checkpointing",
                   help="extra lit_sql runs after the comparison, budget permitting ('' for none)")
    p.add_argument("--budget_s", type=float, default=150.0, help="the whole benchmark's time; each run gets a share")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_gpu.json")
    p.add_argument("--runner", choices=RUNNERS, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.micro_batch_sizes = [int(m) for m in str(args.micro_batch_sizes).split(",")]
    if args.runner:
        return runner_main(args)

    deadline = time.perf_counter() + args.budget_s
    tools = args.tools.split(",")
    runs: dict[str, dict] = {}
    errors: dict[str, str] = {}
    plan = [(tool, []) for tool in tools]
    plan += [(f"lit_sql+{v}", [f"--{v}"]) for v in filter(None, args.variants.split(","))]
    for i, (name, extra) in enumerate(plan):
        left = deadline - time.perf_counter()
        # The comparison runs first and gets an equal share of what is left; variants only what remains.
        share = left / (len(tools) - i) if i < len(tools) else left
        if share < 15:
            errors[name] = f"not run: {left:.0f} s of the budget left"
            continue
        tool = name.split("+")[0]
        cmd = [sys.executable, __file__, "--runner", tool, "--device", args.device, "--micro_batch_sizes",
               ",".join(map(str, args.micro_batch_sizes)), "--seq_len", str(args.seq_len), "--answer_tokens",
               str(args.answer_tokens), "--quantize", args.quantize, "--precision", args.precision,
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--reps", str(args.reps), *extra,
               *(["--tiny"] if args.tiny else [])]
        print(f"[qlora7b] {name}: up to {share:.0f} s", flush=True)
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=share,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except subprocess.TimeoutExpired as e:
            errors[name] = f"timed out after {share:.0f} s; last output: {str(e.stderr or '')[-1500:]}"
            print(f"[qlora7b] {name}: {errors[name]}", flush=True)
            continue
        if out.returncode != 0:
            errors[name] = f"exit {out.returncode}: {out.stderr[-3000:]}"
            print(f"[qlora7b] {name} failed:\n{out.stderr[-3000:]}", flush=True)
            continue
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"[qlora7b] {name}: {json.dumps(runs[name])}", flush=True)
        write(args, runs, errors)
    write(args, runs, errors)


def write(args, runs: dict, errors: dict) -> None:
    """finetune_gpu.json in the BENCHMARKS.md layout: tokens/s at micro-batch 1 as the headline, every size under
    `by_micro_batch`, the peak memory beside it. Written after every run, so a later failure keeps what was measured."""
    sizes = [str(m) for m in args.micro_batch_sizes]
    first = sizes[0]

    def at(tool: str, key: str, size: str = first):
        return runs.get(tool, {}).get("by_micro_batch", {}).get(size, {}).get(key)

    lit, peer = at("lit_sql", "tokens_per_s"), at("litgpt", "tokens_per_s")
    memory_key = "peak_gib" if args.device == "cuda" else "peak_rss_gib"
    report = {
        "name": args.out.stem,
        "date": date.today().isoformat(),
        "device": device_name(args.device),
        "metric": f"tokens/s (all tokens of the batch), micro-batch {first}",
        "higher_is_better": True,
        "lit_sql": lit,
        "peers": {"litgpt": peer} if peer is not None else {},
        "ratio_vs_best_peer": round(lit / peer, 2) if lit and peer else None,
        "peak_memory_gib": {tool: {size: at(tool, memory_key, size) for size in sizes} for tool in runs},
        "memory_metric": ("torch.cuda.max_memory_allocated over the model build and the steps of each micro-batch "
                          "size" if args.device == "cuda" else "peak RSS of the process (CPU dry run)"),
        "by_micro_batch": {tool: {size: at(tool, "tokens_per_s", size) for size in sizes} for tool in runs},
        "goal": "peak memory under 10 GB at litgpt's tokens/s or better (issue #21)",
        "settings": {"model": "Llama-2-7b-hf shapes, random weights" if not args.tiny else f"tiny: {TINY}",
                     "quantize": args.quantize, "lit_sql_precision": args.precision,
                     "litgpt_precision": "bf16-true (BitsandbytesPrecision; litgpt refuses --quantize with mixed)",
                     "seq_len": args.seq_len, "answer_tokens_labelled": args.answer_tokens,
                     "micro_batch_sizes": args.micro_batch_sizes, "lora": LORA,
                     "optimizer": {"lit_sql": "torch AdamW (fused)",
                                   "litgpt": "bitsandbytes PagedAdamW (its QLoRA default)"},
                     "warmup_steps": args.warmup, "timed": f"{args.reps} windows of {args.steps} steps, median"},
        "runs": runs,
        "errors": errors,
        "rerun": RERUN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
