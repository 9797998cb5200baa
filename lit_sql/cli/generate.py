"""`generate/base.py`: answer one prompt with a base or chat checkpoint."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import torch

from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint
from lit_sql.generation import SamplingConfig, TokenPrinter, generate, load_for_inference
from lit_sql.prompts import load_prompt_style
from lit_sql.tokenizer import Tokenizer

DEFAULT_CHECKPOINT = Path("checkpoints") / EMBEDDED_REPO_ID


def base(
    prompt: str,
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    system: Optional[str] = None,
    prompt_style: Optional[str] = None,
    raw: bool = False,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int = 1234,
    precision: str = "32-true",
    stream: bool = True,
) -> list[str]:
    """Generate an answer to --prompt; prints only the model's answer (timings go to stderr).

    Args:
        prompt: the user's message.
        checkpoint_dir: a converted checkpoint (the embedded SmolLM2 is converted on first use).
        system: system prompt; default: the prompt style's own.
        prompt_style: override the style saved with the checkpoint (alpaca, chatml, llama2-chat, llama3, ...).
        raw: feed --prompt to the model as is, without any prompt style.
        max_new_tokens: most tokens to generate per sample.
        temperature: 0 is greedy decoding; higher samples more freely.
        top_k: sample among the k most likely tokens only.
        top_p: nucleus sampling: the smallest set of tokens holding this much probability.
        num_samples: how many answers to generate.
        seed: random seed for sampling.
        precision: 32-true, bf16-true or 16-true.
        stream: print tokens as they are generated.
    """
    sampling = SamplingConfig(temperature, top_k, top_p)
    checkpoint_dir = ensure_checkpoint(checkpoint_dir)
    style = load_prompt_style(checkpoint_dir, prompt_style)
    tokenizer = Tokenizer(checkpoint_dir)
    model = load_for_inference(checkpoint_dir, precision)
    text = prompt if raw else style.apply(prompt, system=system)
    prompt_ids = tokenizer.encode(text)
    stops = style.stop_tokens(tokenizer)
    generator = torch.Generator().manual_seed(seed)
    answers = []
    for i in range(num_samples):
        if num_samples > 1:
            print(f"--- sample {i + 1}", file=sys.stderr)
        printer = TokenPrinter(tokenizer) if stream else None
        start = time.perf_counter()
        tokens = []
        for token in generate(model, prompt_ids, max_new_tokens, sampling, stops, generator):
            tokens.append(token)
            if printer:
                printer(token)
        seconds = time.perf_counter() - start
        answer = tokenizer.decode(tokens)
        if printer:
            sys.stdout.write(answer[len(printer.printed):] + "\n")
        else:
            print(answer)
        answers.append(answer)
        print(f"{len(tokens)} tokens in {seconds:.2f} s: {len(tokens) / seconds:.1f} tokens/s "
              f"(prompt {len(prompt_ids)} tokens)", file=sys.stderr)
    return answers
