"""Frozen base weights stored in bitsandbytes formats (QLoRA), on CPU and CUDA alike.

Lightning Fabric's own bitsandbytes plugin refuses CPUs, and bitsandbytes' modules quantize only when moved
to a GPU, so lit_sql keeps its own small module: the weight is packed once with bitsandbytes' quantize
functions and dequantized on the fly, one layer at a time, in forward *and* backward. Backward recomputes the
dequantized weight instead of saving it, so activations never hold a full-precision copy of the model.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from lit_sql.errors import LitSQLError

QUANTIZE_MODES = ("bnb.nf4", "bnb.nf4-dq", "bnb.fp4", "bnb.fp4-dq", "bnb.int8-training")


def check_quantize_mode(mode: Optional[str]) -> None:
    if mode is not None and mode not in QUANTIZE_MODES:
        raise LitSQLError(f"--quantize {mode!r} is not one of {', '.join(QUANTIZE_MODES)}")


def _bnb_functional():
    try:
        import bitsandbytes.functional as bnbf
    except ImportError:
        raise LitSQLError("--quantize needs bitsandbytes: pip install 'lit_sql[quantize]'") from None
    return bnbf


class QuantizedLinear(nn.Module):
    """A frozen, bias-free linear layer whose weight lives in 4-bit (nf4/fp4) or 8-bit form."""

    def __init__(self, weight: torch.Tensor, mode: str, compute_dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        check_quantize_mode(mode)
        bnbf = _bnb_functional()
        self.mode, self.compute_dtype = mode, compute_dtype
        self.out_features, self.in_features = weight.shape
        weight = weight.detach()
        if mode == "bnb.int8-training":
            # Per-row absmax int8 (LLM.int8's vector-wise quantization, without the outlier split).
            packed, row_scale, _ = bnbf.int8_vectorwise_quant(weight.to(torch.float16))
            self.register_buffer("packed", packed)
            self.register_buffer("row_scale", row_scale)
            self.quant_state = None
        else:
            quant_type = mode.split(".")[1].removesuffix("-dq")
            packed, self.quant_state = bnbf.quantize_4bit(
                weight.to(compute_dtype), blocksize=64, quant_type=quant_type, compress_statistics=mode.endswith("-dq")
            )
            self.register_buffer("packed", packed)

    @torch.no_grad()
    def dequantize(self, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The weight (out_features, in_features) as a dense tensor."""
        bnbf = _bnb_functional()
        if self.quant_state is None:
            w = bnbf.int8_vectorwise_dequant(self.packed, self.row_scale)
        else:
            w = bnbf.dequantize_4bit(self.packed, self.quant_state)
        return w.to(dtype or self.compute_dtype)

    def _apply(self, fn, recurse=True):
        # Moving the module (e.g. .to("cuda")) must move the 4-bit quantization state with the packed data.
        super()._apply(fn, recurse)
        if self.quant_state is not None:
            self.quant_state.to(self.packed.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DequantizedMatmul.apply(x, self)

    @property
    def weight_bytes(self) -> int:
        extra = self.row_scale.numel() * self.row_scale.element_size() if self.quant_state is None else 0
        return self.packed.numel() * self.packed.element_size() + extra

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}"


class _DequantizedMatmul(torch.autograd.Function):
    """y = x @ W.T with W dequantized in forward and again in backward (nothing large saved)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: QuantizedLinear) -> torch.Tensor:
        ctx.layer, ctx.input_dtype = layer, x.dtype
        w = layer.dequantize()
        return (x.to(layer.compute_dtype) @ w.t()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layer = ctx.layer
        w = layer.dequantize()
        return (grad.to(layer.compute_dtype) @ w).to(ctx.input_dtype), None


def quantize_model(model: nn.Module, mode: str, compute_dtype: torch.dtype, device: torch.device,
                   skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Replace every frozen nn.Linear (except `skip`) by a QuantizedLinear on `device`, one layer at a time so
    that peak memory stays near the quantized size. Returns the number of layers replaced."""
    check_quantize_mode(mode)
    replaced = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not any(full.endswith(s) for s in skip):
                if child.bias is not None:
                    raise LitSQLError(f"{full} has a bias; quantized layers support bias-free Llama linears only")
                setattr(module, child_name, QuantizedLinear(child.weight.to(device), mode, compute_dtype))
                replaced += 1
    return replaced
