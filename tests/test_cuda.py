"""CUDA: LoRA and QLoRA training, decoding and resuming on a GPU, against the CPU result, on tiny configs.

Deselected by default (pyproject's addopts `-m 'not cuda'`); `pytest -m cuda` runs them on a machine with an NVIDIA
GPU and bitsandbytes (benchmarks/gpu.sh does). Without a GPU every test fails: a GPU check that passes where there
is none would prove nothing.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from lit_sql import training
from lit_sql.cli.finetune import setup
from lit_sql.fast_training import optimize_for_training
from lit_sql.lora import LoRAConfig, inject_lora, lora_state_dict
from lit_sql.quantize import QUANTIZE_MODES, QuantizedLinear, quantize_model
from lit_sql.training import TrainArgs, loss_sum
from tests.test_model import LLAMA3_STYLE, random_model

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("needs_cuda")]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


# ---------------------------------------------------------------------------------------------------------------
# One training step's loss and LoRA gradients, on each device
# ---------------------------------------------------------------------------------------------------------------
def batch(vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded rows of different lengths with answer-only labels (the training layout: the packed path)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, vocab, (3, 40), generator=g)
    labels = torch.full_like(idx, -100)
    for row, (prompt, length) in enumerate([(20, 40), (12, 31), (25, 33)]):
        labels[row, prompt:length] = idx[row, prompt:length]
        idx[row, length:] = 0
    return idx, labels


def with_lora(model, seed: int = 1):
    inject_lora(model, LoRAConfig(r=4, alpha=8, dropout=0.0, targets="all-linear"))
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # non-zero B, so that lora_A gets a gradient and the update shows in the output
            p.data.normal_(0, 0.05)
    return model


def step(model, device: torch.device, precision: str) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss of one batch and the LoRA gradients (float32, on the CPU), as Fabric's precision plugins compute them:
    bf16-true converts the model to bfloat16, bf16-mixed runs the forward under bfloat16 autocast."""
    model = optimize_for_training(copy.deepcopy(model).to(device))  # the training forward loss_sum needs
    if precision == "bf16-true":
        model = model.to(torch.bfloat16)
    model.train()
    idx, labels = (t.to(device) for t in batch(model.config.vocab_size))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
        loss, n = loss_sum(model, idx, labels)
    (loss / n).backward()
    grads = {name: p.grad.float().cpu() for name, p in model.named_parameters() if p.requires_grad}
    return loss.item() / n, grads


def assert_close_training(cpu: tuple, gpu: tuple, rel: float) -> None:
    (loss_cpu, grads_cpu), (loss_gpu, grads_gpu) = cpu, gpu
    assert loss_gpu == pytest.approx(loss_cpu, rel=rel)
    assert grads_cpu.keys() == grads_gpu.keys() and grads_cpu
    for name, g in grads_cpu.items():
        error = (grads_gpu[name] - g).norm() / g.norm().clamp_min(1e-12)
        assert error < rel * 5, f"{name}: relative gradient error {error:.2e}"


@pytest.mark.parametrize("precision, rel", [("32-true", 1e-4), ("bf16-mixed", 2e-2), ("bf16-true", 3e-2)])
def test_lora_forward_and_backward_match_the_cpu(precision, rel):
    model = with_lora(random_model(LLAMA3_STYLE))
    assert_close_training(step(model, CPU, precision), step(model, CUDA, precision), rel)


@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_quantized_weights_are_the_same_on_both_devices(mode):
    torch.manual_seed(0)
    weight = torch.randn(96, 128) * 0.05
    cpu, gpu = QuantizedLinear(weight, mode, torch.float32), QuantizedLinear(weight.to(CUDA), mode, torch.float32)
    assert gpu.packed.device.type == CUDA.type and gpu.weight_bytes == cpu.weight_bytes
    dense_cpu, dense_gpu = cpu.dequantize(torch.float32), gpu.dequantize(torch.float32)
    # The same format: the two devices differ far less than either differs from the original weight (a rounding
    # tie, or a double-quantized block scale one code apart, here and there).
    differ = (dense_gpu.cpu() - dense_cpu).abs()
    assert differ.mean() <= 0.1 * (dense_cpu - weight).abs().mean() and differ.max() <= 0.25 * weight.abs().max()
    x = torch.randn(5, 128, device=CUDA, requires_grad=True)
    y = gpu(x)
    torch.testing.assert_close(y, x.detach() @ dense_gpu.t(), atol=1e-4, rtol=1e-4)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(5, 96, device=CUDA) @ dense_gpu, atol=1e-4, rtol=1e-4)
    # Moving a layer quantized on one device to the other keeps the weight (the quantization state moves too).
    torch.testing.assert_close(copy.deepcopy(cpu).to(CUDA).dequantize(torch.float32), dense_cpu.to(CUDA))


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_qlora_forward_and_backward_match_the_cpu(mode, precision):
    """The frozen base quantized on each device (as finetune/lora.py does: on the training device), the same LoRA
    weights on both: losses and LoRA gradients agree within bfloat16 rounding."""
    base = random_model(LLAMA3_STYLE)
    cpu, gpu = copy.deepcopy(base), copy.deepcopy(base).to(CUDA)
    layers = quantize_model(cpu, mode, torch.bfloat16, CPU)
    assert quantize_model(gpu, mode, torch.bfloat16, CUDA) == layers == 7 * LLAMA3_STYLE["n_layer"]
    with_lora(cpu)
    inject_lora(gpu, LoRAConfig(r=4, alpha=8, dropout=0.0, targets="all-linear"))
    gpu.load_state_dict(lora_state_dict(cpu), strict=False)
    assert all(m.packed.device.type == CUDA.type for m in gpu.modules() if isinstance(m, QuantizedLinear))
    assert_close_training(step(cpu, CPU, precision), step(gpu, CUDA, precision), rel=3e-2)


# ---------------------------------------------------------------------------------------------------------------
# finetune/lora.py on CUDA, in this process (one CUDA context for all runs)
# ---------------------------------------------------------------------------------------------------------------
def finetune(checkpoint: Path, data: Path, out: Path, **kwargs) -> Path:
    train = TrainArgs(**{"micro_batch_size": 4, "global_batch_size": 8, "warmup_steps": 2, "learning_rate": 3e-3,
                         "max_steps": 30, "eval_interval": 15, "exec_eval_interval": 30, "exec_eval_examples": 4,
                         **kwargs.pop("train", {})})
    return setup(data_dir=data, checkpoint_dir=checkpoint, out_dir=out, accelerator=CUDA.type, devices=1,
                 lora_dropout=0.1, train=train, **kwargs)


@pytest.mark.parametrize("quantize, precision", [(None, "bf16-mixed"), (None, "bf16-true"),
                                                 ("bnb.nf4", "bf16-mixed"), ("bnb.nf4-dq", "bf16-true"),
                                                 ("bnb.fp4", "bf16-mixed"), ("bnb.fp4-dq", "bf16-true"),
                                                 ("bnb.int8-training", "bf16-mixed")])
def test_finetune_on_cuda_learns_and_its_adapter_generates(tiny_training_run, quantize, precision):
    from lit_sql.cli.evaluate import run_model
    from lit_sql.evaluate import EvalConfig
    from lit_sql.run import load_run

    root, checkpoint, data = tiny_training_run
    out = finetune(checkpoint, data, root / f"run-{quantize}-{precision}", quantize=quantize, precision=precision)
    summary = json.loads((out / "train_summary.json").read_text())
    val = list(summary["val_loss"].values())
    assert val[-1] < val[0] and summary["final_train_loss"] < summary["first_train_loss"], summary
    assert list(summary["val_exec_acc"]) == ["30"]  # the execution check generated on the GPU
    adapter = torch.load(out / "adapter.pth")
    assert adapter and all(v.dtype == torch.float32 and v.device.type == "cpu" for v in adapter.values())
    # Evaluation on the GPU: the adapter (with its quantized base) loads there, decodes greedily and by voting
    # (sampling with the evaluation's CPU generator on a CUDA model).
    examples = torch.load(data / "test.pt", weights_only=False)[:4]
    for cfg in (EvalConfig(max_new_tokens=12, batch_size=4, workers=1),
                EvalConfig(max_new_tokens=12, batch_size=4, workers=1, num_samples=2)):
        records, result = run_model("tiny", load_run(out), examples, cfg, "bf16-true" if quantize else "32-true",
                                    device=CUDA.type)
        assert len(records) == 4 and 0 <= result["execution_accuracy"] <= 100


def test_resume_on_cuda_reaches_the_same_result(tiny_training_run, monkeypatch, capsys):
    """A run that dies after its step-4 checkpoint and is resumed ends where an uninterrupted run ends (dropout on:
    the CUDA random state is restored too)."""
    root, checkpoint, data = tiny_training_run
    args = dict(precision="bf16-mixed", train={"max_steps": 8, "save_interval": 2, "eval_interval": 100,
                                               "exec_eval_interval": 0})
    straight = finetune(checkpoint, data, root / "straight", **args)

    class Crash(Exception):
        pass

    save = training.save_checkpoint

    def save_then_crash(fabric, path, state):
        save(fabric, path, state)
        if state["step"] == 4:
            raise Crash

    monkeypatch.setattr(training, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        finetune(checkpoint, data, root / "crashed", **args)
    monkeypatch.setattr(training, "save_checkpoint", save)
    assert not (root / "crashed" / "adapter.pth").exists()
    capsys.readouterr()
    resumed = finetune(checkpoint, data, root / "crashed", resume="auto", **args)
    assert "Resumed from" in capsys.readouterr().out
    a, b = torch.load(straight / "adapter.pth"), torch.load(resumed / "adapter.pth")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# Decoding: the CPU rewrite (lit_sql.fast_inference) is for CPUs only; CUDA models decode as they are
# ---------------------------------------------------------------------------------------------------------------
def test_cuda_models_decode_without_the_cpu_rewrite(tiny_training_run):
    from lit_sql.fast_inference import FastBlock, optimize_for_decoding
    from lit_sql.generation import generate_batch, load_for_inference
    from lit_sql.model import Block

    _, checkpoint, _ = tiny_training_run
    fast_cpu = load_for_inference(checkpoint, "32-true", device="cpu")  # fast decoding is on by default
    assert all(isinstance(b, FastBlock) for b in fast_cpu.blocks)
    gpu = load_for_inference(checkpoint, "32-true", device=CUDA.type)
    assert all(type(b) is Block for b in gpu.blocks) and gpu.lm_head.weight.device.type == CUDA.type
    head = gpu.lm_head
    assert optimize_for_decoding(gpu) is gpu and all(type(b) is Block for b in gpu.blocks) and gpu.lm_head is head

    prompts = [[1, 5, 9, 13, 17, 21], [1, 7, 3], [1, 5, 9, 13, 40, 41, 42, 43]]
    with torch.no_grad():
        idx = torch.tensor([prompts[0]])
        torch.testing.assert_close(gpu(idx.to(CUDA)).cpu(), fast_cpu(idx), atol=1e-4, rtol=1e-4)
    tokens = generate_batch(gpu, prompts, max_new_tokens=10, pad_id=0)
    assert [len(t) for t in tokens] == [10, 10, 10]
    # Each token CUDA chose is the CPU's greedy choice, or ties with it within float32 rounding.
    for prompt, new in zip(prompts, tokens):
        with torch.no_grad():
            logits = fast_cpu(torch.tensor([prompt + new]))[0, len(prompt) - 1:-1]
        chosen = logits.gather(1, torch.tensor(new)[:, None]).squeeze(1)
        assert (logits.max(-1).values - chosen).max() < 1e-4
    # bfloat16 on CUDA decodes too.
    assert len(generate_batch(load_for_inference(checkpoint, "bf16-true", device=CUDA.type), prompts, 4, 0)[0]) == 4
