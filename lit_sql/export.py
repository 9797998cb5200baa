"""After training: merge an adapter into a standalone checkpoint, or export for the Hugging Face stack.

Each takes a `Run` (`lit_sql.run.load_run`): the base is the one the adapter was trained on, never a default.

- `merge`: base (a 4-bit base dequantized first) + LoRA update, written as a new lit_sql checkpoint with the run's
  prompt recipe.
- `export_hf`: a `transformers` folder (config.json, model.safetensors, tokenizer with chat template).
- `export_peft`: a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) for the HF base.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from lit_sql.checkpoint import (WEIGHTS_FILE, check_checkpoint_dir, hf_config_dict, lit_to_hf_name, save_weights,
                                to_hf_state_dict)
from lit_sql.errors import LitSQLError
from lit_sql.lora import read_adapter
from lit_sql.run import Run

# Everything in a checkpoint folder besides the weights that a standalone copy needs.
SIDE_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json",
              "special_tokens_map.json")


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise LitSQLError(f"{out_dir} is not empty; choose another --out_dir (nothing was overwritten)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def merge(run: Run, out_dir: Path, overwrite: bool = False) -> Path:
    """Write a run's base + adapter as a standalone checkpoint (float32 weights where LoRA touched them), with the
    run's prompt recipe, so that the merged model is asked as the run was trained."""
    from lit_sql.lora import merge_lora
    from lit_sql.run import save_recipe

    _require_adapter(run)
    check_checkpoint_dir(run.checkpoint_dir)
    out_dir = _prepare_out_dir(out_dir, overwrite)
    model = run.load_model("32-true", fast_decoding=False)
    merge_lora(model)  # a quantized base stays unmerged in load_for_inference: merge from its dequantized weights
    save_weights(model, out_dir / WEIGHTS_FILE, tied=model.config.tie_embeddings)
    _copy_side_files(run.checkpoint_dir, out_dir)
    model.config.save(out_dir)
    save_recipe(out_dir, run.recipe)
    return out_dir


def export_hf(run: Run, out_dir: Path, overwrite: bool = False) -> Path:
    """A folder `transformers.AutoModelForCausalLM.from_pretrained` loads: the run's base, its adapter merged in
    when it has one."""
    from safetensors.torch import save_file

    from lit_sql.checkpoint import load_model

    config = check_checkpoint_dir(run.checkpoint_dir)
    out_dir = _prepare_out_dir(out_dir, overwrite)
    if run.lora_path is not None:
        from lit_sql.lora import merge_lora

        state = merge_lora(run.load_model("32-true", fast_decoding=False)).state_dict()
    else:
        state = load_model(run.checkpoint_dir).state_dict()
    tensors = {k: v.contiguous() for k, v in to_hf_state_dict(state, config).items()}
    save_file(tensors, out_dir / "model.safetensors", metadata={"format": "pt"})
    hf = hf_config_dict(config)
    hf["torch_dtype"] = str(next(iter(tensors.values())).dtype).removeprefix("torch.")
    generation = _read(run.checkpoint_dir / "generation_config.json")
    hf.update({k: generation[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in generation})
    (out_dir / "config.json").write_text(json.dumps(hf, indent=2))
    _copy_side_files(run.checkpoint_dir, out_dir)
    return out_dir


def export_peft(run: Run, out_dir: Path, base_model_name_or_path: Optional[str] = None,
                overwrite: bool = False) -> Path:
    """A PEFT LoRA folder for the Hugging Face version of the run's base model."""
    from safetensors.torch import save_file

    _require_adapter(run)
    lora = run.lora
    out_dir = _prepare_out_dir(out_dir, overwrite)
    adapter = read_adapter(run.lora_path)
    tensors = {}
    for name, value in adapter.items():
        module, kind = name.rsplit(".", 1)  # e.g. "blocks.0.attn.q_proj", "lora_A"
        hf_module = lit_to_hf_name(f"{module}.weight").removesuffix(".weight")
        tensors[f"base_model.model.{hf_module}.{kind}.weight"] = value.contiguous()
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path or str(run.checkpoint_dir),
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": sorted({s.rsplit(".", 1)[-1] for s in lora.module_suffixes()}),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, out_dir / "adapter_model.safetensors", metadata={"format": "pt"})
    return out_dir


def _require_adapter(run: Run) -> None:
    if run.lora_path is None:
        raise LitSQLError("this needs a fine-tuned run: pass --lora_path (the finetune/lora.py output folder)")


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
