"""`scripts/merge_lora.py` and `scripts/export.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from lit_sql import export as _export
from lit_sql.errors import LitSQLError
from lit_sql.run import base_run, load_run


def merge_lora(lora_path: Path, out_dir: Path, checkpoint_dir: Optional[Path] = None, overwrite: bool = False) -> None:
    """Merge a fine-tuned adapter into its base and write a standalone lit_sql checkpoint.

    Args:
        lora_path: the output folder of finetune/lora.py (adapter.pth, hyperparameters.yaml).
        out_dir: the new checkpoint folder.
        checkpoint_dir: the base checkpoint; default: the one the run was trained on (its record says).
        overwrite: allow writing into a non-empty out_dir.
    """
    path = _export.merge(load_run(lora_path, checkpoint_dir), out_dir, overwrite)
    print(f"Merged checkpoint written to {path}")


def export(out_dir: Path, format: Literal["hf", "peft"] = "hf", checkpoint_dir: Optional[Path] = None,
           lora_path: Optional[Path] = None, base_model_name_or_path: Optional[str] = None,
           overwrite: bool = False) -> None:
    """Export for the Hugging Face stack.

    Args:
        out_dir: folder to write.
        format: hf = a transformers model folder (the adapter merged in, if --lora_path is given);
            peft = a PEFT adapter folder for the Hugging Face base model.
        checkpoint_dir: the base (or merged) lit_sql checkpoint; with --lora_path, default: the run's own base.
        lora_path: a finetune/lora.py output folder.
        base_model_name_or_path: for peft: the HF base recorded in adapter_config.json.
        overwrite: allow writing into a non-empty out_dir.
    """
    if format == "peft" and lora_path is None:
        raise LitSQLError("--format peft needs --lora_path (the finetune/lora.py output folder)")
    run = load_run(lora_path, checkpoint_dir) if lora_path is not None else base_run(checkpoint_dir)
    if format == "peft":
        path = _export.export_peft(run, out_dir, base_model_name_or_path, overwrite)
    else:
        path = _export.export_hf(run, out_dir, overwrite)
    print(f"Exported ({format}) to {path}")
