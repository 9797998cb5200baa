"""Model configuration: one dataclass, the named Llama-family configs, and how a checkpoint records its own.

A checkpoint folder carries its config as `model_config.yaml`; `Config.from_checkpoint` reads it from there
and never guesses it from the folder's name.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import yaml

from lit_sql.errors import LitSQLError

CONFIG_FILE = "model_config.yaml"


@dataclass
class Config:
    name: str = ""
    hf_org: str = ""  # where the weights live on the Hugging Face Hub, for `scripts/download.py`
    block_size: int = 4096  # context length the model was trained for
    vocab_size: int = 32000
    n_layer: int = 32
    n_head: int = 32
    n_query_groups: Optional[int] = None  # key/value heads (grouped-query attention); None = n_head
    n_embd: int = 4096
    head_size: Optional[int] = None  # None = n_embd // n_head
    intermediate_size: int = 11008
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    # Llama-3.1 style frequency scaling: {"factor", "low_freq_factor", "high_freq_factor", "original_max_seq_len"}
    rope_scaling: Optional[dict[str, float]] = None
    tie_embeddings: bool = False
    prompt_style: str = "alpaca"  # key into `lit_sql.prompts` registry

    def __post_init__(self) -> None:
        if self.n_query_groups is None:
            self.n_query_groups = self.n_head
        if self.head_size is None:
            if self.n_embd % self.n_head:
                raise LitSQLError(f"config {self.name!r}: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
            self.head_size = self.n_embd // self.n_head
        if self.n_head % self.n_query_groups:
            raise LitSQLError(
                f"config {self.name!r}: n_head={self.n_head} is not a multiple of n_query_groups={self.n_query_groups}"
            )

    # ---- named configs -------------------------------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "Config":
        if name not in NAMED_CONFIGS:
            close = difflib.get_close_matches(name, NAMED_CONFIGS, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise LitSQLError(
                f"unknown model config {name!r}.{hint} Known configs: see `lit_sql.config.NAMED_CONFIGS` "
                f"({len(NAMED_CONFIGS)} names, e.g. 'SmolLM2-135M-Instruct', 'Llama-2-7b-chat-hf')."
            )
        return replace(NAMED_CONFIGS[name], **overrides)

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], name: str = "") -> "Config":
        """Build a config from a Hugging Face `config.json` of a Llama-architecture model."""
        arch = hf.get("architectures") or ["LlamaForCausalLM"]
        if hf.get("model_type", "llama") != "llama" or "LlamaForCausalLM" not in arch:
            raise LitSQLError(
                f"config.json describes {arch} (model_type {hf.get('model_type')!r}); lit_sql converts Llama models only"
            )
        rope_scaling = None
        scaling = hf.get("rope_scaling") or (hf.get("rope_parameters") or {})
        if scaling and scaling.get("rope_type", scaling.get("type")) == "llama3":
            rope_scaling = {
                "factor": float(scaling["factor"]),
                "low_freq_factor": float(scaling["low_freq_factor"]),
                "high_freq_factor": float(scaling["high_freq_factor"]),
                "original_max_seq_len": float(scaling["original_max_position_embeddings"]),
            }
        elif scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
            raise LitSQLError(f"config.json: rope scaling {scaling} is not supported (only 'llama3' scaling is)")
        rope_base = hf.get("rope_theta", (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        base = NAMED_CONFIGS.get(name)
        return cls(
            name=name,
            hf_org=base.hf_org if base else "",
            block_size=hf.get("max_position_embeddings", 4096),
            vocab_size=hf["vocab_size"],
            n_layer=hf["num_hidden_layers"],
            n_head=hf["num_attention_heads"],
            n_query_groups=hf.get("num_key_value_heads", hf["num_attention_heads"]),
            n_embd=hf["hidden_size"],
            head_size=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            norm_eps=hf.get("rms_norm_eps", 1e-5),
            rope_base=float(rope_base),
            rope_scaling=rope_scaling,
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            prompt_style=base.prompt_style if base else "alpaca",
        )

    # ---- saved beside the weights ------------------------------------------------------------------------
    def save(self, checkpoint_dir: Path) -> None:
        Path(checkpoint_dir, CONFIG_FILE).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def from_file(cls, path: Path) -> "Config":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as e:
            raise LitSQLError(f"{path} is not valid YAML ({e}); re-run the checkpoint conversion") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or (unknown := set(data) - known):
            raise LitSQLError(f"{path}: unexpected content {sorted(unknown) if isinstance(data, dict) else data!r}")
        return cls(**data)

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: Path) -> "Config":
        checkpoint_dir = Path(checkpoint_dir)
        if not checkpoint_dir.is_dir():
            raise LitSQLError(
                f"checkpoint folder {checkpoint_dir} does not exist. Create it with "
                f"`python scripts/download.py --repo_id HuggingFaceTB/SmolLM2-135M-Instruct` "
                f"(or --repo_id <org>/<name> for another model), or pass --checkpoint_dir"
            )
        path = checkpoint_dir / CONFIG_FILE
        if not path.is_file():
            raise LitSQLError(
                f"{path} is missing: {checkpoint_dir} is not a converted lit_sql checkpoint. Convert it with "
                f"`python scripts/convert_hf_checkpoint.py --checkpoint_dir {checkpoint_dir}`"
            )
        return cls.from_file(path)


def _named(**kwargs: Any) -> Config:
    return Config(**kwargs)


def _family(variants: dict[str, str], **shared: Any) -> dict[str, Config]:
    """Configs that share a shape and differ only in name and prompt style."""
    return {name: _named(name=name, prompt_style=style, **shared) for name, style in variants.items()}


LLAMA3_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_seq_len": 8192.0}
LLAMA32_ROPE = {**LLAMA3_ROPE, "factor": 32.0}

NAMED_CONFIGS: dict[str, Config] = {
    # Llama 2
    **_family({"Llama-2-7b-hf": "alpaca", "Llama-2-7b-chat-hf": "llama2-chat"}, hf_org="meta-llama"),
    **_family(
        {"Llama-2-13b-hf": "alpaca", "Llama-2-13b-chat-hf": "llama2-chat"},
        hf_org="meta-llama", n_layer=40, n_head=40, n_embd=5120, intermediate_size=13824,
    ),
    # CodeLlama: larger vocabulary (infilling tokens), 16k context and a larger RoPE base
    **_family(
        {"CodeLlama-7b-hf": "alpaca", "CodeLlama-7b-Instruct-hf": "codellama"},
        hf_org="codellama", vocab_size=32016, block_size=16384, rope_base=1_000_000.0,
    ),
    "open_llama_7b_v2": _named(name="open_llama_7b_v2", hf_org="openlm-research", block_size=2048, norm_eps=1e-6),
    # Llama 3 / 3.1 / 3.2
    **_family(
        {"Llama-3-8B": "alpaca", "Llama-3-8B-Instruct": "llama3"},
        hf_org="meta-llama", block_size=8192, vocab_size=128256, n_query_groups=8, intermediate_size=14336,
        rope_base=500000.0,
    ),
    **_family(
        {"Llama-3.1-8B": "alpaca", "Llama-3.1-8B-Instruct": "llama3"},
        hf_org="meta-llama", block_size=131072, vocab_size=128256, n_query_groups=8, intermediate_size=14336,
        rope_base=500000.0, rope_scaling=LLAMA3_ROPE,
    ),
    **_family(
        {"Llama-3.2-1B": "alpaca", "Llama-3.2-1B-Instruct": "llama3"},
        hf_org="meta-llama", block_size=131072, vocab_size=128256, n_layer=16, n_head=32, n_query_groups=8,
        n_embd=2048, head_size=64, intermediate_size=8192, rope_base=500000.0, rope_scaling=LLAMA32_ROPE,
        tie_embeddings=True,
    ),
    **_family(
        {"Llama-3.2-3B": "alpaca", "Llama-3.2-3B-Instruct": "llama3"},
        hf_org="meta-llama", block_size=131072, vocab_size=128256, n_layer=28, n_head=24, n_query_groups=8,
        n_embd=3072, head_size=128, intermediate_size=8192, rope_base=500000.0, rope_scaling=LLAMA32_ROPE,
        tie_embeddings=True,
    ),
    # TinyLlama
    **_family(
        {"TinyLlama-1.1B-intermediate-step-1431k-3T": "alpaca", "TinyLlama-1.1B-Chat-v1.0": "zephyr"},
        hf_org="TinyLlama", block_size=2048, n_layer=22, n_head=32, n_query_groups=4, n_embd=2048,
        intermediate_size=5632,
    ),
    # SmolLM2
    **_family(
        {"SmolLM2-135M": "alpaca", "SmolLM2-135M-Instruct": "chatml"},
        hf_org="HuggingFaceTB", block_size=8192, vocab_size=49152, n_layer=30, n_head=9, n_query_groups=3,
        n_embd=576, intermediate_size=1536, rope_base=100000.0, tie_embeddings=True,
    ),
    **_family(
        {"SmolLM2-360M": "alpaca", "SmolLM2-360M-Instruct": "chatml"},
        hf_org="HuggingFaceTB", block_size=8192, vocab_size=49152, n_layer=32, n_head=15, n_query_groups=5,
        n_embd=960, intermediate_size=2560, rope_base=100000.0, tie_embeddings=True,
    ),
    **_family(
        {"SmolLM2-1.7B": "alpaca", "SmolLM2-1.7B-Instruct": "chatml"},
        hf_org="HuggingFaceTB", block_size=8192, vocab_size=49152, n_layer=24, n_head=32, n_query_groups=32,
        n_embd=2048, intermediate_size=8192, rope_base=130000.0, tie_embeddings=True,
    ),
}
