"""`optimize_for_decoding` computes what the original model computes: logits, cache steps, padded batches, tokens."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import lit_sql.fast_inference as fast_inference
from lit_sql.config import Config
from lit_sql.fast_inference import (CompressedLinear, FastBlock, PackedLinear, exact_kernels, kernel_source,
                                    optimize_for_decoding)
from lit_sql.generation import generate, generate_batch
from lit_sql.model import GPT

REPO_ROOT = Path(__file__).resolve().parents[1]
needs_kernels = pytest.mark.skipif(exact_kernels() is None, reason="the exact kernels need AVX2 or AVX-512 and a C compiler")


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    # head size 32, so that the one-token attention kernel runs; 4 query heads share 2 key/value heads
    cfg = Config(name="tiny", n_layer=2, n_head=4, n_query_groups=2, n_embd=128, intermediate_size=96,
                 vocab_size=100, block_size=64, tie_embeddings=True)
    model = GPT(cfg)
    model.reset_parameters()
    for block in model.blocks:  # non-trivial norms, so that a misplaced norm weight would show
        block.attn_norm.weight.data.uniform_(0.5, 1.5)
        block.mlp_norm.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def on_gguf_grid(model: GPT) -> GPT:
    """Round every weight to what a GGUF file holds: Q4_1 blocks in the blocks, Q8_0 in the (tied) embedding."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 2:
                continue
            b = p.view(p.shape[0], -1, 32)
            if name == "wte.weight":
                d = (b.abs().amax(-1) / 127).half().float()[..., None]
                b.copy_(d * torch.round(b / d).clamp(-127, 127))
            else:
                m = b.amin(-1).half().float()[..., None]
                d = ((b.amax(-1, keepdim=True) - m) / 15).half().float()
                b.copy_(d * torch.round((b - m) / d).clamp(0, 15) + m)
    return model


def pair(model: GPT, **kwargs) -> tuple[GPT, GPT]:
    return model, optimize_for_decoding(copy.deepcopy(model), **kwargs)


def assert_same_logits(ref: GPT, fast: GPT, atol: float = 1e-5) -> None:
    torch.manual_seed(1)
    idx = torch.randint(0, 100, (2, 20))

    def same(*args, **kwargs) -> None:
        torch.testing.assert_close(fast(*args, **kwargs), ref(*args, **kwargs), atol=atol, rtol=0)

    with torch.inference_mode():
        same(idx)  # no cache, more rows than the kernels take: the BLAS path
        same(idx[:, :6])  # no cache, a few rows: the kernels
        for model in (ref, fast):
            model.set_kv_cache(2, 40)
        same(idx, input_pos=0)  # prefill
        for pos in (20, 21):  # one-token decode steps
            same(torch.randint(0, 100, (2, 1)), input_pos=pos)
        same(torch.randint(0, 100, (1, 1)), input_pos=22)  # one row: the kernels' single-row path
        same(torch.randint(0, 100, (2, 3)), input_pos=23, last_only=True)  # a few tokens after the cache
        # A left-padded batch with an attention mask: prefill, then decode steps that see the padding
        mask = torch.ones(2, 40, dtype=torch.bool)
        mask[0, :7] = False
        same(idx, input_pos=0, attention_mask=mask[:, :20])
        for pos in (20, 21):
            same(torch.randint(0, 100, (2, 1)), input_pos=pos, attention_mask=mask[:, :pos + 1])


def test_float32_path_matches_the_original():
    ref, fast = pair(tiny_model(), exact=False)
    assert all(isinstance(b, FastBlock) for b in fast.blocks)
    assert isinstance(fast.blocks[0].mlp.gate_up, PackedLinear)
    assert_same_logits(ref, fast)


def test_tied_head_keeps_one_table():
    _, fast = pair(tiny_model(), exact=False)
    assert fast.wte.weight.data_ptr() == fast.lm_head.weight_t.data_ptr()
    assert not any(isinstance(m, nn.Linear) for m in fast.modules())


@needs_kernels
def test_random_weights_are_not_taken_for_compressed_ones():
    _, fast = pair(tiny_model())
    assert not any(isinstance(m, CompressedLinear) for m in fast.modules())
    # One weight off the grid by one bit is enough to keep a matrix in float32.
    w = on_gguf_grid(tiny_model()).blocks[0].mlp.down_proj.weight.detach().clone()
    on_grid = CompressedLinear.try_from(w)
    assert on_grid.kind == "q4"
    torch.testing.assert_close(on_grid.dequantize(), w, atol=0, rtol=0)  # kept bit for bit
    w[3, 5] = torch.nextafter(w[3, 5], torch.tensor(1.0))
    assert CompressedLinear.try_from(w) is None


@needs_kernels
def test_exact_compressed_path_matches_the_original():
    ref, fast = pair(on_gguf_grid(tiny_model()))
    compressed = [m for m in fast.modules() if isinstance(m, CompressedLinear)]
    assert len(compressed) == 2 * 4 + 1  # qkv, o, gate_up, down per block; the head
    assert fast.lm_head.kind == "q8" and fast.blocks[0].mlp.gate_up.kind == "q4"
    assert_same_logits(ref, fast)
    # The stored form rebuilds the float32 weights bit for bit
    torch.testing.assert_close(fast.lm_head.dequantize(), ref.lm_head.weight, atol=0, rtol=0)
    torch.testing.assert_close(fast.blocks[1].attn.o_proj.dequantize(), ref.blocks[1].attn.o_proj.weight,
                               atol=0, rtol=0)


@pytest.mark.parametrize("exact", [False, pytest.param(True, marks=needs_kernels)])
def test_greedy_generation_gives_the_same_tokens(exact):
    ref, fast = pair(on_gguf_grid(tiny_model()), exact=exact)
    prompt = [5, 17, 3, 42, 8]
    assert list(generate(fast, prompt, 20)) == list(generate(ref, prompt, 20))
    prompts = [[5, 17, 3, 42, 8], [9, 1], [7, 7, 7]]
    assert generate_batch(fast, prompts, 10, pad_id=0) == generate_batch(ref, prompts, 10, pad_id=0)
    shared = list(range(3, 23))  # a beginning all rows share: prefilled once, then copied in the cache
    prompts = [shared + [5, 17], shared + [9], shared + [7, 7, 7, 4]]
    assert generate_batch(fast, prompts, 10, pad_id=0) == [list(generate(ref, p, 10)) for p in prompts]


def lora_model(grid: bool) -> GPT:
    from lit_sql.lora import LoRAConfig, inject_lora

    model = tiny_model()
    if grid:
        on_gguf_grid(model)
    # q and v (k without: a fused group where some parts have an update and some do not) and the MLP
    inject_lora(model, LoRAConfig(r=2, alpha=4, targets=["query", "value", "mlp"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # a non-zero update, so that dropping it would show
    return model.eval()


@pytest.mark.parametrize("grid", [False, True])
def test_lora_blocks_compute_the_adapted_model(grid):
    """An unmerged adapter: merged into float32 weights, or beside compressed ones (kept exact)."""
    ref, fast = pair(lora_model(grid))
    assert all(isinstance(b, FastBlock) for b in fast.blocks)
    kept_beside = [m for m in fast.modules() if isinstance(m, CompressedLinear) and m.lora_a is not None]
    assert len(kept_beside) == (3 * len(fast.blocks) if grid and exact_kernels() else 0)  # qkv, gate|up, down
    assert_same_logits(ref, fast, atol=1e-4)


def test_bf16_blocks_are_left_alone():
    _, fast = pair(tiny_model().to(torch.bfloat16))
    assert not any(isinstance(b, FastBlock) for b in fast.blocks) and isinstance(fast.lm_head, nn.Linear)


def test_without_the_kernels_everything_stays_float32(monkeypatch, tmp_path, capsys):
    """No C compiler, or a cache folder that cannot be created: a note, then the float32 path."""
    (tmp_path / "file").write_text("")
    for cc, cache in (("/nonexistent/cc", tmp_path / "cache"), (None, tmp_path / "file" / "cache")):
        monkeypatch.setattr(fast_inference, "_kernels", None)
        monkeypatch.setattr(fast_inference, "_kernels_error", None)
        if cc:
            monkeypatch.setenv("CC", cc)
        else:
            monkeypatch.delenv("CC", raising=False)
        monkeypatch.setenv("LIT_SQL_CACHE", str(cache))
        assert exact_kernels() is None
        assert "decoding kernels are not available" in capsys.readouterr().err
        ref, fast = pair(on_gguf_grid(tiny_model()))
        assert not any(isinstance(m, CompressedLinear) for m in fast.modules())
        assert_same_logits(ref, fast)


@needs_kernels
def test_concurrent_first_compiles_do_not_collide(tmp_path):
    code = "from lit_sql.fast_inference import exact_kernels; assert exact_kernels() is not None"
    env = {"LIT_SQL_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert [f.suffix for f in (tmp_path / "kernels").iterdir()] == [".so"]  # one library, no leftovers


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_kernel_file_is_c_that_compiles_for_avx2_and_avx512(tmp_path):
    """The kernels' .c file, checked as C with every warning an error, for each instruction set they are built for
    (syntax only: this CPU need not run AVX-512)."""
    kernel = tmp_path / "decode.c"
    kernel.write_text(kernel_source())  # the text the package reads, wherever it is installed
    assert kernel_source() == (REPO_ROOT / "lit_sql" / "kernels" / "decode.c").read_text()
    for isa_flags in {tuple(flags) for flags in fast_inference._ISA_FLAGS.values()}:
        cmd = [os.environ.get("CC", "cc"), *fast_inference._CFLAGS, *isa_flags, "-std=gnu11", "-Wall", "-Wextra",
               "-Werror", "-fsyntax-only", str(kernel)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"


def test_a_changed_kernel_source_compiles_into_a_new_library(monkeypatch, tmp_path, capsys):
    """The cached library is named after the source's hash: an edited decode.c never loads a stale build."""
    names = []

    def compile_only_the_name(source: str, lib_path: Path, isa_flags: list[str]) -> None:
        names.append(lib_path.name)
        raise OSError("not compiled in this test")

    monkeypatch.setattr(fast_inference, "_compile", compile_only_the_name)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setenv("LIT_SQL_CACHE", str(tmp_path))
    for source in (kernel_source(), kernel_source() + "\n/* edited */\n"):
        monkeypatch.setattr(fast_inference, "kernel_source", lambda: source)
        monkeypatch.setattr(fast_inference, "_kernels", None)
        monkeypatch.setattr(fast_inference, "_kernels_error", None)
        assert exact_kernels() is None and "not compiled in this test" in capsys.readouterr().err
    assert len(names) == 2 and names[0] != names[1] and all(n.endswith("-avx2.so") for n in names)


def test_wheel_carries_the_kernel_source(tmp_path):
    """A non-editable install has no repository beside it: the .c file must travel in the wheel."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "lit_sql", project / "lit_sql", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, cwd=project)
    (wheel,) = (tmp_path / "dist").glob("lit_sql-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("lit_sql/kernels/decode.c").decode() == kernel_source()


def test_real_checkpoint_greedy_tokens_are_identical():
    from lit_sql.checkpoint import ensure_checkpoint
    from lit_sql.generation import load_for_inference
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    checkpoint = ensure_checkpoint(REPO_ROOT / "checkpoints" / "HuggingFaceTB" / "SmolLM2-135M-Instruct")
    tokenizer, style = Tokenizer(checkpoint), load_prompt_style(checkpoint)
    prompts = [tokenizer.encode(style.apply(q)) for q in (
        "CREATE TABLE head (age INTEGER); How many heads of the departments are older than 56?",
        "What is the capital of France?")]
    ref = load_for_inference(checkpoint, fast_decoding=False)
    expected = [list(generate(ref, p, 16)) for p in prompts]
    expected_batch = generate_batch(ref, prompts, 16, pad_id=tokenizer.eos_id)
    fast = load_for_inference(checkpoint)
    assert all(isinstance(b, FastBlock) for b in fast.blocks)
    if exact_kernels() is not None:  # the embedded checkpoint is GGUF-converted: every linear is stored exactly
        assert all(isinstance(m, CompressedLinear) for b in fast.blocks for m in (b.attn.qkv, b.mlp.gate_up))
        assert fast.lm_head.kind == "q8"
    assert [list(generate(fast, p, 16)) for p in prompts] == expected
    assert generate_batch(fast, prompts, 16, pad_id=tokenizer.eos_id) == expected_batch
