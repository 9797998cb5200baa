"""Text generation: prefill the prompt once, then one token per step from the KV cache.

`generate` streams one sequence (greedy, temperature, top-k, top-p; multi-token stop sequences);
`generate_batch` decodes many left-padded prompts together, which is what evaluation and
`--num_samples` use.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import torch

from lit_sql.errors import LitSQLError
from lit_sql.model import GPT

if TYPE_CHECKING:
    from lit_sql.sql.grounding import GroundedDecoding

PRECISIONS = {"32-true": torch.float32, "bf16-true": torch.bfloat16, "16-true": torch.float16,
              "bf16-mixed": torch.float32, "16-mixed": torch.float32}


def parse_precision(precision: str) -> torch.dtype:
    """The dtype weights are stored in for a Lightning-style precision name."""
    if precision not in PRECISIONS:
        raise LitSQLError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def autocast_for(precision: str, device: torch.device):
    """Mixed precision keeps float32 weights and runs matmuls in half precision."""
    if precision.endswith("-mixed"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision.startswith("bf16") else torch.float16)
    return nullcontext()


@dataclass
class SamplingConfig:
    temperature: float = 0.0  # 0 = greedy
    top_k: Optional[int] = None
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise LitSQLError(f"--temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise LitSQLError(f"--top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise LitSQLError(f"--top_p must be in (0, 1], got {self.top_p}")


def sample(logits: torch.Tensor, cfg: SamplingConfig, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Next token for each row of `logits` (B, V) -> (B,)."""
    if cfg.temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays).
        drop = probs.cumsum(dim=-1) - probs > cfg.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(dim=-1)
    if generator is not None and generator.device != probs.device:
        # A CPU generator (evaluation seeds one) draws on the CPU, so a seed gives the same samples on every device.
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_fits(model: GPT, prompt_length: int, max_new_tokens: int) -> None:
    limit = model.config.block_size
    if prompt_length + max_new_tokens > limit:
        raise LitSQLError(
            f"the prompt is {prompt_length} tokens and --max_new_tokens is {max_new_tokens}: together more than "
            f"the model's context of {limit} tokens. Shorten --prompt (or the schema) or lower --max_new_tokens"
        )


@torch.inference_mode()
def generate(
    model: GPT,
    prompt: Sequence[int],
    max_new_tokens: int,
    sampling: SamplingConfig = SamplingConfig(),
    stop_tokens: Sequence[Sequence[int]] = (),
    generator: Optional[torch.Generator] = None,
    grounding: Optional["GroundedDecoding"] = None,
) -> Iterator[int]:
    """Yield new tokens one at a time; a stop sequence ends generation and is not yielded. `grounding` (one row,
    `lit_sql.sql.grounding`) keeps the names the model writes inside a database's schema."""
    check_fits(model, len(prompt), max_new_tokens)
    device = model.wte.weight.device
    total = len(prompt) + max_new_tokens
    if model.max_seq_length < total:
        model.max_seq_length = total
    model.set_kv_cache(1, total, device=device)
    idx = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    logits = model(idx, input_pos=0, last_only=True)
    pos = idx.shape[1]
    hold = max((len(s) for s in stop_tokens), default=1) - 1  # tokens that may still turn out to be a stop
    pending: list[int] = []
    try:
        for _ in range(max_new_tokens):
            token = sample(logits[:, -1], sampling, generator)
            if grounding is not None:
                token = grounding.choose([0], logits[:, -1], token, sampling.temperature == 0.0, generator)
            pending.append(int(token))
            if any(len(pending) >= len(s) and pending[-len(s):] == list(s) for s in stop_tokens):
                for stop in stop_tokens:
                    if pending[-len(stop):] == list(stop):
                        pending = pending[:-len(stop)]
                        break
                yield from pending
                return
            while len(pending) > hold:
                yield pending.pop(0)
            logits = model(token.view(1, 1), input_pos=pos)
            pos += 1
        yield from pending
    finally:
        model.clear_kv_cache()


# A shorter shared beginning is not worth the extra forward pass.
MIN_SHARED_PREFIX = 16


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all sequences have in common."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for other in sequences[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return n


@torch.inference_mode()
def generate_batch(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    pad_id: int,
    sampling: SamplingConfig = SamplingConfig(),
    stop_tokens: Sequence[Sequence[int]] = (),
    generator: Optional[torch.Generator] = None,
    grounding: Optional["GroundedDecoding"] = None,
) -> list[list[int]]:
    """Decode several prompts at once; each row stops on its own stop sequence and then leaves the batch.
    `grounding` (`lit_sql.sql.grounding`, one state per prompt) keeps each row's names inside its database's schema.

    Rows are padded on the left, or, when all prompts begin alike (the same system prompt and schema, or one
    prompt sampled several times), laid out as [shared beginning][padding][rest]: the shared beginning is computed
    once and its keys and values copied to every row. Rotary positions count real tokens only, so either layout
    gives each row what it would get alone.
    """
    device = model.wte.weight.device
    longest = max(len(p) for p in prompts)
    check_fits(model, longest, max_new_tokens)
    B, total = len(prompts), longest + max_new_tokens
    # Every row keeps at least its last prompt token for the batched pass: that is where its first logits come from.
    shared = min(common_prefix_length(prompts), min(len(p) for p in prompts) - 1) if B > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        shared = 0
    if model.max_seq_length < total:
        model.max_seq_length = total
    idx = torch.full((B, longest), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(B, total, dtype=torch.bool, device=device)
    for row, p in enumerate(prompts):
        rest = longest - (len(p) - shared)  # where the row's tokens after the shared beginning start
        idx[row, :shared] = torch.tensor(list(p[:shared]), dtype=torch.long)
        idx[row, rest:] = torch.tensor(list(p[shared:]), dtype=torch.long)
        mask[row, :shared] = True
        mask[row, rest:] = True  # the generated positions are real tokens too
    model.set_kv_cache(B, total, device=device)
    outputs: list[list[int]] = [[] for _ in range(B)]
    live = list(range(B))  # the prompt of each row still in the batch: finished rows leave it
    try:
        if shared:
            model(idx[:1, :shared], input_pos=0, last_only=True)  # fills row 0 of every layer's cache
            for block in model.blocks:
                cache = block.attn.kv_cache
                cache.k[1:B, :, :shared] = cache.k[:1, :, :shared]
                cache.v[1:B, :, :shared] = cache.v[:1, :, :shared]
        logits = model(idx[:, shared:], input_pos=shared, attention_mask=mask[:, :longest], last_only=True)
        pos = longest
        for step in range(max_new_tokens):
            tokens = sample(logits[:, -1], sampling, generator)
            if grounding is not None:
                tokens = grounding.choose(live, logits[:, -1], tokens, sampling.temperature == 0.0, generator)
            values = tokens.tolist()  # one copy from the device, not one per row
            going = []
            for i, row in enumerate(live):
                out = outputs[row]
                out.append(values[i])
                stop = next((s for s in stop_tokens if out[-len(s):] == list(s)), None)
                if stop is None:
                    going.append(i)
                else:
                    del out[-len(stop):]
            if not going or step == max_new_tokens - 1:
                break
            if len(going) < len(live):  # drop finished rows: a step then costs only what the rest need
                keep = torch.tensor(going, device=device)
                live, tokens, mask = [live[i] for i in going], tokens[keep], mask[keep]
                model.keep_kv_cache_rows(keep, pos)
            logits = model(tokens.view(len(live), 1), input_pos=pos, attention_mask=mask[:, :pos + 1])
            pos += 1
    finally:
        model.clear_kv_cache()
    return outputs


class TokenPrinter:
    """Prints tokens as they arrive; decodes the whole answer each time so multi-byte characters split across
    tokens come out whole."""

    def __init__(self, tokenizer, stream=sys.stdout) -> None:
        self.tokenizer, self.stream = tokenizer, stream
        self.tokens: list[int] = []
        self.printed = ""

    def __call__(self, token: int) -> None:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return
        self.stream.write(text[len(self.printed):])
        self.stream.flush()
        self.printed = text


def load_for_inference(checkpoint_dir: Path, precision: str = "32-true", device: str = "cpu",
                       quantize: Optional[str] = None, lora_path: Optional[Path] = None,
                       fast_decoding: bool = True) -> GPT:
    """A model ready to generate: base weights, optionally quantized, optionally with a fine-tuned adapter.

    The adapter's LoRA settings (and, unless --quantize says otherwise, its quantization) come from the
    run record (`lit_sql.run`); which base to pass is the record's too (`Run.load_model`). On a full-precision base the adapter is merged into the weights, so
    generation costs no more than with the base model, except on the fast decoding path, which keeps it beside
    the compressed base weights (see `lit_sql.fast_inference`).
    fast_decoding: a float32 model on the CPU is rewritten by `lit_sql.fast_inference.optimize_for_decoding` (same
        greedy tokens, several times faster decoding); its parameters then no longer follow the checkpoint's
        layout, so pass False to save or train the result. Other precisions, devices and quantized layers
        (with their unmerged adapters) are left as they are.
    """
    from lit_sql.checkpoint import load_model
    from lit_sql.lora import adapter_path, load_lora_weights, merge_lora, read_adapter
    from lit_sql.quantize import check_quantize_mode
    from lit_sql.run import lora_settings, read_record

    dtype = parse_precision(precision)
    check_quantize_mode(quantize)
    lora = None
    if lora_path is not None:
        record = read_record(lora_path)
        lora = lora_settings(record, lora_path)
        quantize = quantize or record.get("quantize")
    compute = dtype if dtype != torch.float32 else torch.bfloat16
    model = load_model(checkpoint_dir, device=device, quantize=quantize, compute_dtype=compute, lora=lora)
    fast = fast_decoding and dtype == torch.float32 and torch.device(device).type == "cpu"
    if lora_path is not None:
        load_lora_weights(model, read_adapter(lora_path), source=adapter_path(lora_path))
        if not quantize and not fast:
            merge_lora(model)
    model = model.to(dtype=dtype).eval()
    if fast:
        from lit_sql.fast_inference import optimize_for_decoding

        model = optimize_for_decoding(model)
    return model


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
