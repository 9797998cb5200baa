"""The peer of benchmarks/spider_split.py: LoRA fine-tuning with Hugging Face `transformers` + `peft` under the
same CPU-time budget as lit_sql, on the same prepared records, then merged and converted to a lit_sql checkpoint
so both models are evaluated by the same code.

What a careful transformers+peft user would write: the HF Llama model in bf16, a PEFT LoRA on every linear
layer of the blocks, the answer-only labels of the prepared data (the prompt is -100), AdamW, gradient
clipping, and the same batches, learning rate and warmup+cosine schedule (over the time budget) as lit_sql.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch

HF_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hf_dir", type=Path, required=True, help="the base model as a transformers folder")
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--cpu_minutes", type=float, required=True)
    p.add_argument("--lora_r", type=int, default=16)
    p.add_argument("--lora_alpha", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--min_lr_ratio", type=float, default=0.1)
    p.add_argument("--warmup_steps", type=int, default=10)
    p.add_argument("--micro_batch_size", type=int, default=8)
    p.add_argument("--global_batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args()

    import peft
    import transformers

    from lit_sql.training import collate, length_grouped_batches  # the same batches lit_sql trains on

    torch.manual_seed(args.seed)
    train = torch.load(args.data_dir / "train.pt", weights_only=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=torch.bfloat16)
    lora = peft.LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules=HF_TARGETS,
                           task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(0.9, 0.95), weight_decay=0.0)
    accumulation = args.global_batch_size // args.micro_batch_size
    lengths = [len(r["input_ids"]) for r in train]

    def micro_batches():
        epoch = 0
        while True:
            for batch in length_grouped_batches(lengths, args.micro_batch_size, args.seed, epoch):
                yield collate([train[i] for i in batch])
            epoch += 1

    budget = 60.0 * args.cpu_minutes
    stream = micro_batches()
    start = time.process_time()
    step, tokens, history = 0, 0, []
    while (spent := time.process_time() - start) < budget:
        if step < args.warmup_steps:
            lr = args.learning_rate * (step + 1) / args.warmup_steps
        else:
            floor = args.learning_rate * args.min_lr_ratio
            lr = floor + (args.learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, spent / budget)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for _ in range(accumulation):
            input_ids, labels = next(stream)
            tokens += int(input_ids.ne(0).sum())
            loss = model(input_ids=input_ids, labels=labels).loss / accumulation  # HF shifts the labels itself
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        history.append(step_loss)
        if step % 10 == 0:
            print(f"peer step {step}: loss {step_loss:.4f}, {spent / 60:.1f} CPU-min", flush=True)
    cpu_seconds = time.process_time() - start

    # Merge and save as a transformers folder with the base's tokenizer, then convert it for lit_sql's evaluation.
    merged = model.merge_and_unload().to(torch.float32)
    if args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    merged.save_pretrained(args.out_dir)
    for f in args.hf_dir.iterdir():
        if f.is_file() and not (args.out_dir / f.name).exists():
            shutil.copy2(f, args.out_dir / f.name)
    from lit_sql.checkpoint import convert_hf_checkpoint

    convert_hf_checkpoint(args.out_dir, model_name="SmolLM2-135M-Instruct")
    summary = {"steps": step, "cpu_seconds": round(cpu_seconds, 1), "tokens_per_cpu_s": round(tokens / cpu_seconds, 1),
               "first_train_loss": history[0] if history else None, "final_train_loss": history[-1] if history else None}
    (args.out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
