"""`finetune/lora.py` and `finetune/full.py`: LoRA, QLoRA and full fine-tuning on prepared text-to-SQL data,
with Lightning Fabric.

setup() (LoRA) and setup_full() (every weight) take the flags; launch() checks every flag and input, builds Fabric
and starts main(), which loads, quantizes, adds LoRA and hands over to the shared loop in `lit_sql.training`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Literal, Optional

import torch

from lit_sql.checkpoint import (DEFAULT_CHECKPOINT, WEIGHTS_FILE, atomic_torch_save, ensure_checkpoint, load_model,
                               load_state_dict, save_weights)
from lit_sql.config import Config
from lit_sql.errors import LitSQLError
from lit_sql.fast_training import optimize_for_training
from lit_sql.generation import parse_precision
from lit_sql.data.prompt import PromptRecipe
from lit_sql.lora import ADAPTER_FILE, HYPERPARAMETERS_FILE, LoRAConfig, lora_state_dict, trainable_parameters
from lit_sql.quantize import check_quantize_mode
from lit_sql.run import lora_settings, read_record, run_record, save_recipe, save_record
from lit_sql.tokenizer import Tokenizer
from lit_sql.training import (ExecutionCheck, TrainArgs, checkpoint_problem, default_precision, fit, make_optimizer,
                              plot_history, resumable_checkpoint, save_json)

PRECISION_HELP = """32-true: everything in float32 (slowest, most exact).
bf16-true: weights, activations, LoRA and optimizer state in bfloat16 (fastest on CPUs with AMX and on GPUs).
bf16-mixed: float32 weights, LoRA and optimizer state; matmuls autocast to bfloat16. With --quantize the frozen
  4-bit base computes in bfloat16 while LoRA weights and AdamW state stay float32 (the QLoRA recipe).
16-mixed / 16-true: the same with float16 (GPUs without bfloat16)."""


def load_prepared(data_dir: Path, tokenizer: Tokenizer, config: Config) -> tuple[list[dict], list[dict], dict]:
    """train.pt / test.pt / meta.json written by scripts/prepare_sql.py, checked against this model."""
    data_dir = Path(data_dir)
    for name in ("train.pt", "meta.json"):
        if not (data_dir / name).is_file():
            raise LitSQLError(f"{data_dir / name} not found: prepare the data first with "
                              f"`python scripts/prepare_sql.py --checkpoint_dir <checkpoint> --out_dir {data_dir}`")
    meta = json.loads((data_dir / "meta.json").read_text())
    if meta.get("tokenizer") and meta["tokenizer"] != tokenizer.name:
        raise LitSQLError(f"{data_dir} was prepared with tokenizer {meta['tokenizer']}, but {tokenizer.checkpoint_dir} "
                          f"uses {tokenizer.name}: prepare the data again with --checkpoint_dir {tokenizer.checkpoint_dir}")
    if meta.get("prompt_style") and meta["prompt_style"] != config.prompt_style:
        print(f"note: {data_dir} uses prompt style {meta['prompt_style']!r}, the checkpoint's is "
              f"{config.prompt_style!r}", file=sys.stderr)
    train = torch.load(data_dir / "train.pt", weights_only=False)
    test = torch.load(data_dir / "test.pt", weights_only=False) if (data_dir / "test.pt").is_file() else []
    longest = max((len(s["input_ids"]) for s in [*train, *test]), default=0)
    if longest > config.block_size:
        raise LitSQLError(f"{data_dir} holds samples of {longest} tokens, longer than the model's context "
                          f"({config.block_size}): prepare it again with --max_seq_length {config.block_size}")
    if not train:
        raise LitSQLError(f"{data_dir / 'train.pt'} holds no examples")
    return train, test, meta


def compute_dtype_for(precision: str) -> torch.dtype:
    """What a quantized base computes in: bf16 or fp16 under half precision, else float32."""
    if "bf16" in precision:
        return torch.bfloat16
    return torch.float16 if precision.startswith("16") else torch.float32


def setup(
    data_dir: Path = Path("data/generated"),
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    out_dir: Path = Path("out/lora/sql"),
    precision: Optional[str] = None,
    quantize: Optional[Literal["bnb.nf4", "bnb.nf4-dq", "bnb.fp4", "bnb.fp4-dq", "bnb.int8-training"]] = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto",
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = "auto",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    lora_targets: str = "all-linear",
    train: TrainArgs = TrainArgs(),
    resume: Optional[str] = None,
    logger: Literal["csv", "tensorboard"] = "csv",
) -> Path:
    """Fine-tune a checkpoint with LoRA (or QLoRA with --quantize) on data prepared by scripts/prepare_sql.py.

    Args:
        data_dir: folder with train.pt, test.pt and meta.json.
        checkpoint_dir: the base model (the embedded SmolLM2 is converted on first use).
        out_dir: where adapter.pth, hyperparameters.yaml, logs, checkpoints and loss.png go.
        precision: 32-true, bf16-true, bf16-mixed, 16-mixed or 16-true. Default: bf16-true on CPUs with AMX
            (else 32-true), bf16-mixed on GPU. See `PRECISION_HELP` in lit_sql/cli/finetune.py.
        quantize: store the frozen base in 4-bit (nf4/fp4, -dq = double quantization) or 8-bit (QLoRA).
        devices: devices per node.
        num_nodes: nodes.
        accelerator: cpu, cuda or auto.
        strategy: auto, ddp, fsdp or deepspeed (stage 2).
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (update scaled by alpha / r).
        lora_dropout: dropout on the LoRA input (0 by default, as in PEFT: on a CPU the random masks cost
            a fifth of a step with LoRA on every linear layer).
        lora_targets: comma-separated: query, key, value, projection, mlp, head, or all-linear.
        train: optimisation settings.
        resume: "auto" for the newest checkpoint in out_dir/checkpoints, or a checkpoint path.
        logger: csv or tensorboard (both write under out_dir/logs).
    """
    check_quantize_mode(quantize)
    lora = LoRAConfig(r=lora_r, alpha=lora_alpha, dropout=lora_dropout, targets=lora_targets)
    return launch(data_dir, checkpoint_dir, out_dir, precision, devices, num_nodes, accelerator, strategy, train,
                  resume, logger, lora=lora, quantize=quantize)


def setup_full(
    data_dir: Path = Path("data/generated"),
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    out_dir: Path = Path("out/full/sql"),
    precision: Optional[str] = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto",
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = "auto",
    train: TrainArgs = TrainArgs(learning_rate=5e-5),
    resume: Optional[str] = None,
    logger: Literal["csv", "tensorboard"] = "csv",
) -> Path:
    """Fine-tune every weight of a checkpoint on data prepared by scripts/prepare_sql.py (finetune/full.py).

    The output folder is a checkpoint of its own (lit_model.pth, model_config.yaml, the tokenizer and the prompt
    recipe), used like a LoRA run with `--lora_path <out_dir>` or like any model with `--checkpoint_dir <out_dir>`.

    Args:
        data_dir: folder with train.pt, test.pt and meta.json.
        checkpoint_dir: the base model (the embedded SmolLM2 is converted on first use).
        out_dir: where the weights, hyperparameters.yaml, logs, checkpoints and loss.png go.
        precision: as for finetune/lora.py, except that on the CPU the default is bf16-mixed where AMX makes
            bf16 fast (float32 weights and AdamW state: updates of a few 1e-5 vanish in bf16 weights), else 32-true.
        devices: devices per node.
        num_nodes: nodes.
        accelerator: cpu, cuda or auto.
        strategy: auto, ddp, fsdp or deepspeed (stage 2).
        train: optimisation settings (the learning rate defaults to 5e-5: every weight moves, not a small adapter).
        resume: "auto" for the newest checkpoint in out_dir/checkpoints, or a checkpoint path.
        logger: csv or tensorboard (both write under out_dir/logs).
    """
    return launch(data_dir, checkpoint_dir, out_dir, precision, devices, num_nodes, accelerator, strategy, train,
                  resume, logger, lora=None, quantize=None)


def launch(data_dir: Path, checkpoint_dir: Path, out_dir: Path, precision: Optional[str], devices: int,
           num_nodes: int, accelerator: str, strategy: str, train: TrainArgs, resume: Optional[str], logger: str,
           lora: Optional[LoRAConfig], quantize: Optional[str]) -> Path:
    """Check every input, build Fabric and train: LoRA with `lora`, every weight without."""
    import lightning as L

    # Every flag is checked before any heavy work starts (converting the default model, loading the data); the
    # training settings were checked when the flags were parsed (`TrainArgs`).
    if precision is not None:
        parse_precision(precision)
    if devices < 1 or num_nodes < 1:
        raise LitSQLError(f"--devices ({devices}) and --num_nodes ({num_nodes}) must be >= 1")
    train.accumulation_steps(devices * num_nodes)  # the global batch must split evenly over the devices
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise LitSQLError(f"--accelerator {accelerator}: no CUDA device is available here")
    out_dir = Path(out_dir)
    resume_path = resolve_resume(resume, out_dir, lora)
    checkpoint_dir = ensure_checkpoint(checkpoint_dir)
    use_cuda = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    precision = precision or default_precision(use_cuda, full=lora is None)
    done = out_dir / (ADAPTER_FILE if lora is not None else WEIGHTS_FILE)
    if resume_path is None and done.is_file():
        raise LitSQLError(f"{out_dir} already holds a finished run ({done.name}); choose another --out_dir "
                          f"instead of overwriting it")
    config = Config.from_checkpoint(checkpoint_dir)
    tokenizer = Tokenizer(checkpoint_dir)
    train_data, test_data, meta = load_prepared(data_dir, tokenizer, config)

    if strategy == "fsdp":
        from lightning.fabric.strategies import FSDPStrategy

        from lit_sql.model import Block

        strategy = FSDPStrategy(auto_wrap_policy={Block}, activation_checkpointing_policy=(
            {Block} if train.activation_checkpointing else None), state_dict_type="full", limit_all_gathers=True)
    elif strategy == "deepspeed":
        from lightning.fabric.strategies import DeepSpeedStrategy

        strategy = DeepSpeedStrategy(stage=2, offload_optimizer=True)
    loggers = make_logger(logger, out_dir)
    fabric = L.Fabric(devices=devices, num_nodes=num_nodes, accelerator=accelerator, strategy=strategy,
                      precision=precision, loggers=loggers)
    fabric.launch()
    return main(fabric, checkpoint_dir, out_dir, lora, train, quantize, precision, train_data, test_data, meta,
                tokenizer, resume_path, data_dir)


def resolve_resume(resume: Optional[str], out_dir: Path, lora: Optional[LoRAConfig]) -> Optional[Path]:
    if resume is None:
        return None
    if resume == "auto":
        path = resumable_checkpoint(out_dir)
        if path is None:
            print(f"--resume auto: no checkpoint in {out_dir}, starting fresh", file=sys.stderr)
            return None
    else:
        path = Path(resume)
        if not path.exists():
            raise LitSQLError(f"--resume {resume}: no such checkpoint")
        problem = checkpoint_problem(path)
        if problem is not None:
            raise LitSQLError(f"--resume {resume}: {problem}")
    if (out_dir / HYPERPARAMETERS_FILE).is_file():
        record = read_record(out_dir)
        if (record.get("lora") is None) != (lora is None):
            kind = "full fine-tuning (finetune/full.py)" if lora is not None else "LoRA (finetune/lora.py)"
            raise LitSQLError(f"--resume: {out_dir} holds a run of {kind}; resume it with the same script")
        saved = lora_settings(record, out_dir) if lora is not None else None
        if saved != lora:
            raise LitSQLError(f"--resume: {out_dir} was trained with LoRA settings {asdict(saved)}, not {asdict(lora)}; "
                              f"pass the same --lora_* flags")
    return path


def save_full_checkpoint(model: torch.nn.Module, base_dir: Path, out_dir: Path, recipe: PromptRecipe) -> None:
    """Make `out_dir` a checkpoint: the trained weights (in the base's dtype), and the base's config and tokenizer
    files and the run's prompt recipe beside them, so it loads as a model like any other."""
    import shutil

    dtype = next(iter(load_state_dict(base_dir / WEIGHTS_FILE).values())).dtype
    for f in Path(base_dir).iterdir():
        if f.is_file() and f.name not in (WEIGHTS_FILE, HYPERPARAMETERS_FILE):
            shutil.copy2(f, out_dir / f.name)
    save_recipe(out_dir, recipe)
    state = {k: v.detach().to("cpu", dtype) for k, v in getattr(model, "module", model).state_dict().items()}
    # Written last: a folder with the weights file holds a finished run.
    save_weights(state, out_dir / WEIGHTS_FILE, tied=Config.from_checkpoint(base_dir).tie_embeddings)


def make_logger(kind: str, out_dir: Path):
    if kind == "tensorboard":
        from lightning.fabric.loggers import TensorBoardLogger

        try:
            return TensorBoardLogger(root_dir=out_dir / "logs", name="tensorboard")
        except ModuleNotFoundError:
            raise LitSQLError("--logger tensorboard needs `pip install tensorboardX` (or tensorboard)") from None
    from lightning.fabric.loggers import CSVLogger

    return CSVLogger(root_dir=out_dir / "logs", name="csv", flush_logs_every_n_steps=10)


def make_exec_check(fabric, train: TrainArgs, test_data: list[dict], tokenizer: Tokenizer, checkpoint_dir: Path,
                    meta: dict) -> Optional[ExecutionCheck]:
    """The execution-accuracy check on a few test questions, or None (turned off, nothing to run SQL on, or a
    sharded model)."""
    if not train.exec_eval_interval or not test_data:
        return None
    from lightning.fabric.strategies import FSDPStrategy

    from lit_sql.prompts import load_prompt_style

    if isinstance(fabric.strategy, FSDPStrategy):
        fabric.print("note: no execution check during training under FSDP (a sharded model cannot generate on one "
                     "rank); evaluate the adapter afterwards with eval/sql.py")
        return None
    check = ExecutionCheck(test_data, tokenizer, load_prompt_style(checkpoint_dir, meta.get("prompt_style")),
                           train.exec_eval_examples, seed=train.seed)
    if not check:
        fabric.print("note: no execution check during training: the test examples carry no gold SQL with a database "
                     "or schema to run it on")
        return None
    return check


def main(fabric, checkpoint_dir: Path, out_dir: Path, lora: Optional[LoRAConfig], train: TrainArgs,
         quantize: Optional[str], precision: str, train_data: list[dict], test_data: list[dict], meta: dict,
         tokenizer: Tokenizer, resume: Optional[Path], data_dir: Path) -> Path:
    from lightning.fabric.strategies import FSDPStrategy

    fabric.seed_everything(train.seed)
    # The run record: everything needed to use this run later (base, LoRA, quantization, the data's prompt recipe).
    recipe = PromptRecipe.from_dict({"prompt_style": Config.from_checkpoint(checkpoint_dir).prompt_style,
                                     **{k: v for k, v in meta.items() if v is not None}})
    record = run_record(checkpoint_dir, recipe, lora, data_dir=Path(data_dir).resolve(), quantize=quantize,
                        precision=precision, train=asdict(train))
    if fabric.global_rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_record(out_dir, record)
    start = time.perf_counter()
    model = load_model(checkpoint_dir, fabric.device, quantize=quantize, compute_dtype=compute_dtype_for(precision),
                       lora=lora)
    if lora is None:
        model.requires_grad_(True)  # full fine-tuning
    # FSDP checkpoints the blocks it wraps itself (see setup()).
    fsdp = isinstance(fabric.strategy, FSDPStrategy)
    model = optimize_for_training(model, activation_checkpointing=False if fsdp else train.activation_checkpointing)
    n_trainable = sum(p.numel() for p in trainable_parameters(model))
    n_total = sum(p.numel() for p in model.parameters())
    what = f"LoRA r={lora.r} alpha={lora.alpha} on {', '.join(lora.module_suffixes())}" if lora else "Full fine-tuning"
    fabric.print(f"{what}: {n_trainable:,} trainable of {n_total:,} parameters; precision {precision}"
                 + (f"; base quantized {quantize}" if quantize else ""))
    model = fabric.setup_module(model)
    optimizer = fabric.setup_optimizers(make_optimizer(trainable_parameters(model), train))
    pad_id = tokenizer.eos_id  # any id works: padded positions are masked out of attention and loss
    exec_check = make_exec_check(fabric, train, test_data, tokenizer, checkpoint_dir, meta)
    history = fit(fabric, model, optimizer, train_data, test_data, train, out_dir, resume=resume,
                  exec_check=exec_check, pad_id=pad_id, run_record=record)
    for logger in fabric.loggers:
        logger.finalize("success")  # the CSV logger writes in batches: the last steps' figures too
    fabric.barrier()
    if fabric.global_rank == 0:
        if lora is not None:
            state = {k: v.detach().float().cpu() for k, v in lora_state_dict(model).items()}
            # The final adapter is saved in float32 whatever the training precision.
            atomic_torch_save(state, out_dir / ADAPTER_FILE, "The step checkpoints are intact: free some space, then "
                                                             "finish with --resume auto")
        else:
            save_full_checkpoint(model, checkpoint_dir, out_dir, recipe)
        plot = plot_history(history, out_dir / "loss.png")
        summary = {
            "method": "lora" if lora is not None else "full",
            "precision": precision,
            "steps": history.steps[-1] if history.steps else 0,
            "first_train_loss": history.train_loss[0] if history.train_loss else None,
            "final_train_loss": history.train_loss[-1] if history.train_loss else None,
            "val_loss": dict(zip(history.val_steps, history.val_loss)),
            "val_exec_acc": dict(zip(history.exec_steps, history.exec_acc)),
            "val_executes": dict(zip(history.exec_steps, history.executes)),
            "seconds": time.perf_counter() - start,
            # what the time budget (--train.max_minutes) counted: wall or this process's CPU time
            "clock": train.clock,
            "clock_seconds": round(history.seconds, 1),
        }
        save_json(out_dir / "train_summary.json", summary)
        saved = out_dir / (ADAPTER_FILE if lora is not None else WEIGHTS_FILE)
        fabric.print(f"Saved {saved}" + (f"; loss curve {plot}" if plot else ""))
    return out_dir
