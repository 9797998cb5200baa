"""One LoRA fine-tuning throughput run per process, for benchmarks/finetune.py.

Each runner imports only its own tool, so the peers can run from their own virtual environment
(benchmarks/.venv-peers) without lit_sql installed. Every runner gets the same micro-batches (token ids and
answer-only labels), the same LoRA settings (rank, alpha, targets), the same optimizer (AdamW) and
precision, and reports tokens/s counted without padding and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch


def batches_from(path: str):
    data = torch.load(path)
    return data["batches"], data["settings"]


def pad(batch: list[dict], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(s["input_ids"]) for s in batch)
    x = torch.full((len(batch), T), pad_id, dtype=torch.long)
    y = torch.full((len(batch), T), -100, dtype=torch.long)  # lit_sql's IGNORE_INDEX (not importable here)
    for i, s in enumerate(batch):
        x[i, : len(s["input_ids"])] = torch.tensor(s["input_ids"])
        y[i, : len(s["labels"])] = torch.tensor(s["labels"])
    return x, y


def time_steps(step, batches, warmup: int) -> float:
    for b in batches[:warmup]:
        step(*pad(b))
    tokens = sum(len(s["input_ids"]) for b in batches[warmup:] for s in b)
    start = time.perf_counter()
    for b in batches[warmup:]:
        step(*pad(b))
    return tokens / (time.perf_counter() - start)


def run_lit_sql(args, batches, settings):
    import lit_sql
    from lit_sql.checkpoint import load_model
    from lit_sql.lora import LoRAConfig, trainable_parameters
    from lit_sql.training import loss_sum

    lora = LoRAConfig(r=settings["r"], alpha=settings["alpha"], dropout=settings["dropout"],
                      targets=",".join(settings["lit_sql_targets"]))
    model = load_model(args.checkpoint_dir, lora=lora).to(args.dtype).train()
    checkpointing = {"auto": None, "true": True, "false": False}[args.checkpointing]
    if (Path(lit_sql.__file__).parent / "fast_training.py").is_file():
        from lit_sql.fast_training import optimize_for_training

        model = optimize_for_training(model, activation_checkpointing=checkpointing)  # as finetune/lora.py does
        if args.budget_gib is not None:  # another activation budget than the default (to choose the default)
            model.activation_budget = int(args.budget_gib * 2**30)
    else:  # a --baseline checkout from before lit_sql.fast_training (53ad6cf and older)
        model.activation_checkpointing = bool(checkpointing)
    optimizer = torch.optim.AdamW(list(trainable_parameters(model)), lr=1e-4)

    def step(x, y):
        loss, n = loss_sum(model, x, y)
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return time_steps(step, batches, args.warmup)


def run_transformers_peft(args, batches, settings):
    import peft
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=args.dtype)
    config = peft.LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                             target_modules=settings["hf_targets"], task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(x, y):
        model(input_ids=x, labels=y).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return time_steps(step, batches, args.warmup)


def run_litgpt(args, batches, settings):
    from litgpt.lora import GPT, Config, mark_only_lora_as_trainable
    from litgpt.utils import chunked_cross_entropy

    targets = set(settings["hf_targets"])
    config = Config.from_file(f"{args.litgpt_dir}/model_config.yaml", lora_r=settings["r"],
                              lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                              lora_query="q_proj" in targets, lora_key="k_proj" in targets,
                              lora_value="v_proj" in targets, lora_projection="o_proj" in targets,
                              lora_mlp="up_proj" in targets, lora_head=False)
    model = GPT(config)
    model.load_state_dict(torch.load(f"{args.litgpt_dir}/lit_model.pth", mmap=True), strict=False)
    model = model.to(args.dtype)
    mark_only_lora_as_trainable(model)
    model.max_seq_length = max(len(s["input_ids"]) for b in batches for s in b)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(x, y):
        logits = model(x)
        loss = chunked_cross_entropy(logits[..., :-1, :], y[..., 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return time_steps(step, batches, args.warmup)


RUNNERS = {"lit_sql": run_lit_sql, "transformers+peft": run_transformers_peft, "litgpt": run_litgpt}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runner", choices=RUNNERS, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--precision", default="bf16-true")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--checkpoint_dir")
    p.add_argument("--hf_dir")
    p.add_argument("--litgpt_dir")
    p.add_argument("--checkpointing", default="auto", choices=["auto", "true", "false"],
                   help="lit_sql's activation checkpointing: auto is finetune/lora.py's default")
    p.add_argument("--budget_gib", type=float, help="lit_sql's activation budget in GiB, instead of the default")
    args = p.parse_args()
    args.dtype = torch.bfloat16 if args.precision == "bf16-true" else torch.float32
    batches, settings = batches_from(args.data)
    torch.manual_seed(0)
    rate = RUNNERS[args.runner](args, batches, settings)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"tokens_per_s": rate, "peak_rss_gib": peak_gib}))
