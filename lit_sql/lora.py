"""LoRA: low-rank adapters on chosen linear layers, written from the paper (Hu et al., 2021).

y = W x + (alpha / r) * B A dropout(x), with W frozen (plain or quantized), A (r, in) random and B (out, r)
zero, so training starts from the base model exactly. The settings travel with the adapter in the run record
(`hyperparameters.yaml`, `lit_sql.run`); every later step (generate, merge, export, evaluate) reads them there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn as nn

from lit_sql.errors import LitSQLError

# Flag value -> the module names it selects inside each block (and the head).
TARGETS: dict[str, tuple[str, ...]] = {
    "query": ("attn.q_proj",),
    "key": ("attn.k_proj",),
    "value": ("attn.v_proj",),
    "projection": ("attn.o_proj",),
    "mlp": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    "head": ("lm_head",),
}
ALL_LINEAR = ("query", "key", "value", "projection", "mlp")  # every linear in the blocks; not the head
HYPERPARAMETERS_FILE = "hyperparameters.yaml"
ADAPTER_FILE = "adapter.pth"


@dataclass
class LoRAConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["all-linear"])

    def __post_init__(self) -> None:
        if self.r < 1:
            raise LitSQLError(f"--lora_r must be >= 1, got {self.r}")
        if not self.alpha > 0:  # a scale of 0 would train an adapter that changes nothing
            raise LitSQLError(f"--lora_alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise LitSQLError(f"--lora_dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str):
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        unknown = [t for t in self.targets if t != "all-linear" and t not in TARGETS]
        if unknown or not self.targets:
            raise LitSQLError(f"--lora_targets {unknown or self.targets} not understood: choose from "
                              f"{', '.join([*TARGETS, 'all-linear'])} (comma-separated)")

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def module_suffixes(self) -> tuple[str, ...]:
        names = [n for t in self.targets for n in (ALL_LINEAR if t == "all-linear" else (t,))]
        return tuple(dict.fromkeys(s for n in names for s in TARGETS[n]))


class LoRALinear(nn.Module):
    """Wraps a frozen linear layer (nn.Linear or QuantizedLinear) and adds a trainable low-rank update."""

    def __init__(self, base: nn.Module, r: int, alpha: int, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.r, self.scaling = r, alpha / r
        device = base.weight.device if isinstance(base, nn.Linear) else base.packed.device
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # same scale as nn.Linear's own init
        self.dropout = LoRADropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x A^T)(s B)^T: two thin matmuls, never the full (out, in) product; the scaling multiplies the small
        # B matrix rather than the (batch, time, out) result, and the second matmul adds onto the base output
        # in the same operation.
        scaling = self.scaling
        if isinstance(self.dropout, LoRADropout) and self.training and x.device.type == "cpu":
            # Dropped inputs are zeroed; inverted dropout's 1 / (1 - p) joins the scaling of B instead of
            # multiplying every kept input.
            h, scaling = self.dropout.zero_out(x), scaling / (1 - self.dropout.p)
        else:
            h = self.dropout(x)
        y = self.base(x)
        low_rank = h @ self.lora_A.t()  # (..., r)
        return torch.addmm(y.flatten(0, -2), low_rank.flatten(0, -2), (self.lora_B * scaling).t()).view(y.shape)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B.float() @ self.lora_A.float()) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """Base weight + update in float32; a quantized base is dequantized first, never merged into rounded
        4-bit values."""
        base = self.base.weight.float() if isinstance(self.base, nn.Linear) else self.base.dequantize(torch.float32)
        return base + self.delta_weight().to(base.device)


class LoRADropout(nn.Module):
    """Inverted dropout with independent Bernoulli masks, like nn.Dropout, but cheaper on CPU.

    On CPU, nn.Dropout spends most of its time drawing one random number per element; with LoRA on every
    linear layer that was a third of a training step. Here each 64-bit draw yields four 16-bit uniform
    integers, and an element is kept when its integer is above the p-quantile (p rounded to 1/65536).
    CUDA keeps nn.Dropout's own fast generator.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = -(2 ** 15) + round(p * 2 ** 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        return self.zero_out(x) * (1.0 / (1.0 - self.p))

    def zero_out(self, x: torch.Tensor) -> torch.Tensor:
        """x with the dropped elements zeroed and the kept ones not yet rescaled (on CPU)."""
        n = x.numel()
        draws = torch.randint(-(2 ** 63), 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        keep = draws.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return torch.where(keep, x, 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def inject_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Wrap the target layers of `model` in place; returns the wrapped module names."""
    suffixes = config.module_suffixes()
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if any(full == s or full.endswith("." + s) for s in suffixes) and not isinstance(child, LoRALinear):
                setattr(module, child_name, LoRALinear(child, config.r, config.alpha, config.dropout))
                wrapped.append(full)
    if not wrapped:
        raise LitSQLError(f"--lora_targets {config.targets} matched no layer of the model")
    mark_only_lora_trainable(model)
    return wrapped


def mark_only_lora_trainable(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name


def lora_filter(name: str, _value: object = None) -> bool:
    return "lora_" in name


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if lora_filter(k)}


def load_lora_weights(model: nn.Module, adapter: dict[str, torch.Tensor], source: Path | str) -> None:
    """Load adapter tensors, refusing an adapter made for another base model or other LoRA settings."""
    expected = lora_state_dict(model)
    missing = sorted(set(expected) - set(adapter))
    unexpected = sorted(set(adapter) - set(expected))
    if missing or unexpected:
        raise LitSQLError(f"{source} does not fit this model: {len(missing)} LoRA tensors missing (e.g. {missing[:2]}), "
                          f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}). Was it trained on another base "
                          f"checkpoint?")
    for k, v in adapter.items():
        if v.shape != expected[k].shape:
            raise LitSQLError(f"{source}: {k} has shape {tuple(v.shape)}, the model expects {tuple(expected[k].shape)}: "
                              f"the adapter was trained on another base model (check --checkpoint_dir)")
    model.load_state_dict(adapter, strict=False)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by a plain nn.Linear holding the merged float32 weight."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                merged = nn.Linear(child.in_features, child.out_features, bias=False, device=child.lora_A.device)
                merged.weight = nn.Parameter(child.merged_weight(), requires_grad=False)
                setattr(module, child_name, merged)
    return model


def trainable_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    return (p for p in model.parameters() if p.requires_grad)


def adapter_path(lora_path: Path) -> Path:
    """The adapter file of a run folder: the final adapter, else the newest step checkpoint."""
    lora_path = Path(lora_path)
    if (lora_path / ADAPTER_FILE).is_file():
        return lora_path / ADAPTER_FILE
    raise LitSQLError(f"{lora_path / ADAPTER_FILE} not found: the run did not finish. Resume it with "
                      f"`python finetune/lora.py ... --out_dir {lora_path} --resume auto`")


def read_adapter(lora_path: Path) -> dict[str, torch.Tensor]:
    """The adapter tensors of a run folder (on the CPU); a truncated or garbled adapter file is an error that names
    it, not a traceback from deep inside torch."""
    from lit_sql.checkpoint import load_state_dict

    path = adapter_path(lora_path)
    return load_state_dict(path, f"delete it and finish the run again from its last step checkpoint "
                                 f"(`python finetune/lora.py ... --out_dir {Path(lora_path)} --resume auto`)")
