"""The one fine-tuning loop every entry point shares (LoRA and QLoRA today).

Micro-batches grouped by length (little compute spent on padding; the longest batch runs first so an
out-of-memory error shows at once), gradient accumulation with a token-weighted loss, AdamW (plain, 8-bit
or paged), linear warmup then cosine decay, clipping, periodic validation, atomic checkpoints that resume
to the same result, CSV/TensorBoard logs and a loss-curve picture.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from lit_sql.checkpoint import remove_quietly, temporary_path, write_atomically
from lit_sql.data.prepare import IGNORE_INDEX
from lit_sql.errors import LitSQLError
from lit_sql.fast_training import TrainingGPT, cpu_has_amx

CHECKPOINT_DIR = "checkpoints"
STEP_CHECKPOINT = re.compile(r"step-(\d+)\.pth")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class TrainArgs:
    """Optimisation settings (one source of truth: saved in hyperparameters.yaml with the adapter).

    Args:
        activation_checkpointing: recompute blocks' activations in backward instead of keeping them (the same
            gradients, one more forward of each such block). Default (null): on the CPU, blocks keep theirs
            until a micro-batch's kept activations reach 1 GiB (`fast_training.ACTIVATION_BUDGET_GIB`), and the
            later blocks recompute; on a GPU none does. true: every block; false: none. Under FSDP, true
            checkpoints the blocks FSDP wraps.
    """

    micro_batch_size: int = 4
    global_batch_size: int = 16
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine decays to learning_rate * min_lr_ratio
    weight_decay: float = 0.0
    warmup_steps: int = 10
    epochs: int = 1
    max_steps: Optional[int] = None  # optimizer steps; overrides epochs
    # A time budget: stop after this many minutes, with the cosine schedule following the time spent instead
    # of the steps. `clock` is wall time, or this process's CPU time ("cpu"), which keeps budgets comparable
    # on a machine shared with other jobs.
    max_minutes: Optional[float] = None
    clock: str = "wall"  # wall | cpu
    max_norm: float = 1.0
    optimizer: str = "adamw"  # adamw | adamw8bit | paged_adamw
    log_interval: int = 1
    eval_interval: int = 50
    eval_batches: int = 10
    # Execution accuracy on a few validation questions: generate SQL greedily with the model being trained,
    # run it and the gold SQL, compare. Every `exec_eval_interval` steps and at the end (0: never).
    exec_eval_interval: int = 100
    exec_eval_examples: int = 8
    save_interval: int = 100
    keep_checkpoints: int = 3  # the newest step checkpoints kept; older ones are deleted as new ones are saved
    seed: int = 1337
    activation_checkpointing: Optional[bool] = None  # see the docstring: null = within a memory budget on the CPU

    def __post_init__(self) -> None:
        """Every setting is checked here, when the flags are parsed: a bad one is an error before any work (a
        zero interval would divide by zero after the first step, a negative step count save an untrained
        adapter)."""
        if self.micro_batch_size < 1 or self.global_batch_size < self.micro_batch_size:
            raise LitSQLError(f"--train.micro_batch_size ({self.micro_batch_size}) must be >= 1 and <= "
                              f"--train.global_batch_size ({self.global_batch_size})")
        if self.optimizer not in ("adamw", "adamw8bit", "paged_adamw"):
            raise LitSQLError(f"--train.optimizer {self.optimizer!r} is not one of adamw, adamw8bit, paged_adamw")
        if self.clock not in CLOCKS:
            raise LitSQLError(f"--train.clock {self.clock!r} is not one of {', '.join(CLOCKS)}")
        at_least = {"epochs": 1, "log_interval": 1, "eval_interval": 1, "eval_batches": 1, "save_interval": 1,
                    "keep_checkpoints": 1, "exec_eval_examples": 1, "exec_eval_interval": 0, "warmup_steps": 0,
                    "weight_decay": 0, "max_norm": 0, "min_lr_ratio": 0}
        for name, low in at_least.items():
            if not getattr(self, name) >= low:  # `not >=`: NaN fails too
                raise LitSQLError(f"--train.{name} must be >= {low}, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LitSQLError(f"--train.max_steps must be >= 1 (or null: --train.epochs decides), got {self.max_steps}")
        if not self.learning_rate > 0:
            raise LitSQLError(f"--train.learning_rate must be > 0, got {self.learning_rate}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise LitSQLError(f"--train.max_minutes must be > 0, got {self.max_minutes}")
        if self.min_lr_ratio > 1:
            raise LitSQLError(f"--train.min_lr_ratio must be <= 1 (the floor is a share of the learning rate), got "
                              f"{self.min_lr_ratio}")

    def accumulation_steps(self, world_size: int) -> int:
        per_rank = self.global_batch_size // world_size
        if per_rank % self.micro_batch_size:
            raise LitSQLError(f"--train.global_batch_size {self.global_batch_size} over {world_size} devices is not a "
                              f"multiple of --train.micro_batch_size {self.micro_batch_size}")
        return max(1, per_rank // self.micro_batch_size)


# -------------------------------------------------------------------------------------------------------
# Data: batches by length
# -------------------------------------------------------------------------------------------------------
def default_precision(use_cuda: bool, full: bool = False) -> str:
    """The training precision when none is asked for: bf16 where the hardware multiplies it much faster than
    float32 (a GPU, a CPU with AMX tiles), float32 elsewhere. Without AMX, bf16 training is slower: torch's
    bf16 GEMM runs at 1/2 (AVX512-BF16) to 1/7 (AVX2) of float32, and even with the matmuls done in float32
    (see `lit_sql.fast_training.Float32MatmulLinear`) a bf16 step was measured at 88% of the float32 speed
    (341 against 387 tokens/s, benchmarks/results/finetune_cpu*.json), while float32 keeps the adapter's small
    updates exact. `full` (full fine-tuning): bf16-mixed instead of bf16-true, since an update of a few 1e-5 to
    a weight of 0.05 is below bf16's resolution and would vanish; float32 weights keep it."""
    if use_cuda:
        return "bf16-mixed"
    if cpu_has_amx():
        return "bf16-mixed" if full else "bf16-true"
    return "32-true"


def length_grouped_batches(lengths: list[int], micro_batch_size: int, seed: int, epoch: int,
                           group_size: int = 64) -> list[list[int]]:
    """Shuffle, sort within groups of `group_size` micro-batches by length, cut into micro-batches, shuffle
    those. Deterministic for (seed, epoch), which is what makes resuming exact."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = micro_batch_size * group_size
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: -lengths[i])
        batches += [chunk[i:i + micro_batch_size] for i in range(0, len(chunk), micro_batch_size)]
    rng.shuffle(batches)
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches.insert(0, batches.pop(longest))  # the largest batch first: an out-of-memory shows at step one
    return batches


def collate(samples: list[dict], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sample; padded labels are ignored."""
    T = max(len(s["input_ids"]) for s in samples)
    input_ids = torch.full((len(samples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), T), IGNORE_INDEX, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        input_ids[i, :n] = torch.as_tensor(s["input_ids"], dtype=torch.long)
        labels[i, :n] = torch.as_tensor(s["labels"], dtype=torch.long)
    return input_ids, labels


def loss_sum(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled positions, and how many there were.

    `model` has been through `lit_sql.fast_training.optimize_for_training`: only labelled positions go through
    the output head, and only the tokens they depend on through the blocks (`TrainingGPT.forward`).
    """
    targets = labels[:, 1:]
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = targets != IGNORE_INDEX
    logits = model(input_ids, output_positions=positions)  # (N, V)
    selected = targets[targets != IGNORE_INDEX]
    return cross_entropy_sum(logits, selected), int(selected.numel())


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum_i -log softmax(logits_i)[targets_i], computed in float32 whatever the logits' dtype."""
    if logits.dtype == torch.float32:
        return F.cross_entropy(logits, targets, reduction="sum")
    return _LowPrecisionCrossEntropySum.apply(logits, targets)


class _LowPrecisionCrossEntropySum(torch.autograd.Function):
    """Cross-entropy of half-precision (N, V) logits in float32, a few rows at a time.

    `F.cross_entropy(logits.float())` keeps a float32 copy of every logit, its log-softmax and its gradient:
    three (N, V) float32 tensors, 40 MB each for 200 answer tokens of a 49k vocabulary (and 3x that for
    Llama 3's). Here forward keeps one float32 number a row (its log-sum-exp), and backward writes the gradient
    straight into the logits' dtype. The arithmetic is the same (float32 exponentials and sums, one rounding
    of the gradient); on CPU a bf16 step's loss costs 20 ms instead of 60.
    """

    ROWS = 16  # float32 rows held at once: 3 MB for a 49k vocabulary

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows = _LowPrecisionCrossEntropySum.ROWS
        log_sum_exp = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], rows):
            log_sum_exp[start:start + rows] = torch.logsumexp(logits[start:start + rows].float(), dim=-1)
        target_logits = logits.gather(1, targets[:, None]).squeeze(1).float()
        ctx.save_for_backward(logits, targets, log_sum_exp)
        return (log_sum_exp - target_logits).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, log_sum_exp = ctx.saved_tensors
        rows = _LowPrecisionCrossEntropySum.ROWS
        grad_logits = torch.empty_like(logits)
        for start in range(0, logits.shape[0], rows):
            end = min(start + rows, logits.shape[0])
            probs = logits[start:end].float().sub_(log_sum_exp[start:end, None]).exp_()  # softmax
            probs[torch.arange(end - start, device=logits.device), targets[start:end]] -= 1
            grad_logits[start:end] = probs.mul_(grad)
        return grad_logits, None


# -------------------------------------------------------------------------------------------------------
# Optimizer and schedule
# -------------------------------------------------------------------------------------------------------
def make_optimizer(params, args: TrainArgs) -> torch.optim.Optimizer:
    params = list(params)
    if args.optimizer == "adamw":
        fused = all(p.is_cuda for p in params)
        return torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay, betas=(0.9, 0.95),
                                 fused=fused or None)
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise LitSQLError(f"--optimizer {args.optimizer} needs bitsandbytes: pip install 'lit_sql[quantize]'") from None
    cls = bnb.optim.AdamW8bit if args.optimizer == "adamw8bit" else bnb.optim.PagedAdamW
    return cls(params, lr=args.learning_rate, weight_decay=args.weight_decay, betas=(0.9, 0.95))


def lr_at(step: int, args: TrainArgs, total_steps: int, time_used: Optional[float] = None) -> float:
    """Linear warmup to learning_rate, then cosine decay to learning_rate * min_lr_ratio: over the steps, or
    over the time budget when `time_used` (the fraction of --max_minutes spent) is given; with both, over
    whichever runs out first."""
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = 0.0 if math.isinf(total_steps) else (step - args.warmup_steps) / max(1, total_steps - args.warmup_steps)
    if time_used is not None:
        progress = max(progress, time_used)
    progress = min(1.0, progress)
    floor = args.learning_rate * args.min_lr_ratio
    return floor + (args.learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# -------------------------------------------------------------------------------------------------------
# Checkpoints
# -------------------------------------------------------------------------------------------------------
def step_checkpoints(out_dir: Path) -> list[Path]:
    """The step checkpoints in `out_dir`, oldest first (by step number: past step 999,999 the names widen)."""
    found = [(int(m.group(1)), p) for p in Path(out_dir, CHECKPOINT_DIR).glob("step-*.pth")
             if (m := STEP_CHECKPOINT.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: Path) -> Optional[Path]:
    found = step_checkpoints(out_dir)
    return found[-1] if found else None


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why a step checkpoint cannot be resumed from (empty, truncated or garbled: a copy cut short, a disk that
    failed), or None when it loads."""
    path = Path(path)
    if path.is_dir():
        return None  # a DeepSpeed checkpoint folder: its engine checks its parts as it loads them
    if path.stat().st_size == 0:
        return "the file is empty"
    try:
        # Memory-mapped, as resuming loads it (weights only): the tensors are not read, so checking even a full
        # fine-tune's checkpoint is quick.
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:  # a damaged file raises RuntimeError, UnpicklingError, EOFError, ValueError, ...
        return f"it does not load ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        return "it is not a training checkpoint (it holds no step and model)"
    return None


def resumable_checkpoint(out_dir: Path) -> Optional[Path]:
    """The newest step checkpoint in `out_dir` that loads (None when there is none), with a note on each newer one
    skipped and why. Checkpoints of which none loads are an error: starting afresh would write over them."""
    found = step_checkpoints(out_dir)
    for path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            if path != found[-1]:
                print(f"note: --resume auto: resuming from {path}, the newest checkpoint that loads", file=sys.stderr)
            return path
        print(f"note: --resume auto: skipping {path}: {problem}", file=sys.stderr)
    if found:
        raise LitSQLError(f"--resume auto: none of the {len(found)} checkpoints in {found[0].parent} loads; move them "
                          f"away to start afresh")
    return None


def save_checkpoint(fabric, path: Path, state: dict[str, Any], keep: int) -> None:
    """Only the LoRA tensors of a LoRA model are written (every weight under full fine-tuning), through
    `write_atomically`: a crash or a full disk mid-save leaves the checkpoints saved before intact, never a
    truncated one. Then only the newest `keep` step checkpoints stay."""
    from lit_sql.lora import lora_filter

    has_lora = any(lora_filter(name) for name, _ in state["model"].named_parameters())

    def write(tmp: Path) -> None:
        fabric.save(tmp, state, filter={"model": lora_filter} if has_lora else None)
        fabric.barrier()  # every rank has written its part (sharded strategies) before rank 0 renames

    if fabric.global_rank == 0:
        write_atomically(path, write, "The checkpoints saved before are intact: free some space, then continue "
                                      "with --resume auto")
        for old in step_checkpoints(path.parent.parent)[:-keep]:  # path: <out_dir>/checkpoints/step-N.pth
            remove_quietly(old)
    else:
        write(temporary_path(path))
    fabric.barrier()


# -------------------------------------------------------------------------------------------------------
# The loop
# -------------------------------------------------------------------------------------------------------
@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    exec_steps: list[int] = field(default_factory=list)
    exec_acc: list[float] = field(default_factory=list)  # fraction of the checked questions answered right
    executes: list[float] = field(default_factory=list)  # fraction whose SQL ran without error
    seconds: float = 0.0  # training time spent, on the budget's clock (TrainArgs.clock)


def fit(
    fabric,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: list[dict],
    val_data: list[dict],
    args: TrainArgs,
    out_dir: Path,
    resume: Optional[Path] = None,
    exec_check: Optional[Callable[[Any, torch.nn.Module], dict[str, float]]] = None,
    pad_id: int = 0,
    run_record: Optional[dict] = None,
) -> History:
    """Train until max_steps (or epochs); returns the loss and accuracy history. `exec_check(fabric, model)`
    (an `ExecutionCheck`) runs every `args.exec_eval_interval` steps and at the end. `run_record`
    (`lit_sql.run`) is saved in every checkpoint, so that a step checkpoint copied elsewhere can still be used."""
    if not isinstance(getattr(model, "module", model), TrainingGPT):  # the model itself, not its Fabric wrapper
        raise LitSQLError("fit() trains a model rewritten by lit_sql.fast_training.optimize_for_training(model): "
                          "call it after adding LoRA and before fabric.setup_module")
    world = fabric.world_size
    accumulation = args.accumulation_steps(world)
    lengths = [len(s["input_ids"]) for s in train_data]
    rank_share = len(lengths) // world
    batches_per_epoch = max(1, rank_share // args.micro_batch_size)
    steps_per_epoch = max(1, batches_per_epoch // accumulation)
    total_steps = args.max_steps or steps_per_epoch * args.epochs
    if args.max_minutes is not None and args.max_steps is None:
        total_steps = math.inf  # the time budget alone ends the run
    history = History()
    # "seconds": training time spent so far on the budget's clock, kept in checkpoints so a resumed run
    # continues the same time budget.
    state: dict[str, Any] = {"model": model, "optimizer": optimizer, "step": 0, "history": asdict(history),
                             "seconds": 0.0}

    if resume is not None:
        extra = fabric.load(resume, state, strict=False)
        torch.set_rng_state(extra.get("cpu_rng", torch.get_rng_state()))
        if "cuda_rng" in extra and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(extra["cuda_rng"])
        history = History(**state["history"])
        fabric.print(f"Resumed from {resume} at step {state['step']}")

    def batch_stream(start_step: int):
        """Micro-batches from `start_step` on, for this rank; epoch after epoch."""
        micro_index = start_step * accumulation
        epoch, offset = divmod(micro_index, batches_per_epoch)
        while True:
            batches = length_grouped_batches(lengths, args.micro_batch_size * world, args.seed, epoch)
            for b in batches[offset:batches_per_epoch]:
                yield [train_data[i] for i in b[fabric.global_rank::world]]
            epoch, offset = epoch + 1, 0

    stream = batch_stream(state["step"])
    progress = None
    if fabric.global_rank == 0:
        from tqdm import tqdm

        # tqdm's own estimate of the time left counts steps alone; the run may end on its time budget first, so
        # the bar shows `time_left`'s instead ("left").
        progress = tqdm(total=None if total_steps == math.inf else total_steps, initial=state["step"],
                        desc="fine-tuning", unit="step", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
    postfix: dict[str, str] = {}  # what the progress bar shows: the latest loss, speed, validation figures
    tokens_seen, window_start = 0, time.perf_counter()
    last_good = latest_checkpoint(out_dir)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if val_data and state["step"] == 0:
        # The starting point, so the history shows how far fine-tuning moved the validation loss (not counted
        # against the time budget).
        history.val_steps.append(0)
        history.val_loss.append(validate(fabric, model, val_data, args, pad_id))
        fabric.log_dict({"val_loss": history.val_loss[0]}, step=0)
        fabric.print(f"step 0: val_loss {history.val_loss[0]:.4f}")
    model.train()
    clock = CLOCKS[args.clock]
    budget = None if args.max_minutes is None else 60.0 * args.max_minutes
    clock_start, seconds_before = clock(), float(state.get("seconds", 0.0))
    wall_start, first_step = time.perf_counter(), state["step"]  # this session's pace, for the time left

    def seconds_spent() -> float:
        return seconds_before + clock() - clock_start

    def out_of_time() -> bool:
        if budget is None:
            return False
        # Rank 0 decides, so every rank stops at the same step.
        return bool(fabric.broadcast(seconds_spent() >= budget, src=0))

    try:
        while state["step"] < total_steps:
            step = state["step"]
            lr = lr_at(step, args, total_steps, None if budget is None else seconds_spent() / budget)
            for group in optimizer.param_groups:
                group["lr"] = lr
            samples = [next(stream) for _ in range(accumulation)]
            tokens_seen += sum(len(s["input_ids"]) for batch in samples for s in batch)  # padding not counted
            micro_batches = [collate(batch, pad_id) for batch in samples]
            # Every labelled token counts the same, whichever micro-batch it falls in.
            n_tokens = sum(int((labels[:, 1:] != IGNORE_INDEX).sum()) for _, labels in micro_batches)
            # Each rank divides by the mean count per rank; DDP then averages the gradients: sum over all / total.
            n_tokens = max(1.0, float(fabric.all_reduce(torch.tensor(float(n_tokens), device=fabric.device),
                                                        reduce_op="sum")) / world)
            step_loss = 0.0
            for i, (input_ids, labels) in enumerate(micro_batches):
                input_ids, labels = fabric.to_device((input_ids, labels))
                with fabric.no_backward_sync(model, enabled=i < accumulation - 1):
                    loss, _ = loss_sum(model, input_ids, labels)
                    fabric.backward(loss / n_tokens)
                step_loss += loss.item()
            step_loss /= n_tokens
            if not math.isfinite(step_loss):
                raise diverged(f"the training loss became {step_loss}", step + 1, last_good)
            if args.max_norm > 0:
                fabric.clip_gradients(model, optimizer, max_norm=args.max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # A finite loss can still give an overflowing update; such weights must never reach a checkpoint. Each
            # tensor's largest absolute value (NaN or inf if any value is) in one fused call, checked with one
            # synchronisation instead of one per tensor: a GPU step otherwise waits on hundreds of them.
            with torch.no_grad():
                finite = bool(torch.stack(torch._foreach_norm(trainable, ord=math.inf)).isfinite().all())
            if not finite:
                raise diverged("the weights overflowed", step + 1, last_good)
            state["step"] = step = step + 1
            state["seconds"] = history.seconds = seconds_spent()
            history.steps.append(step)
            history.train_loss.append(step_loss)

            if step % args.log_interval == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                rate = tokens_seen * world / max(elapsed, 1e-9)
                fabric.log_dict({"train_loss": step_loss, "lr": lr, "tokens_per_s": rate}, step=step)
                if progress is not None:
                    postfix.update(loss=f"{step_loss:.3f}", tok_s=f"{rate:.0f}", lr=f"{lr:.1e}")
                    progress.set_postfix(postfix)
                tokens_seen, window_start = 0, time.perf_counter()
            if progress is not None:
                left = time_left(step - first_step, total_steps - step, time.perf_counter() - wall_start,
                                 None if budget is None else budget - state["seconds"], clock() - clock_start)
                if left is not None:
                    postfix["left"] = format_duration(left)
                    progress.set_postfix(postfix, refresh=False)
                progress.update(1)

            last = step == total_steps or out_of_time()
            metrics: dict[str, float] = {}
            if val_data and (step % args.eval_interval == 0 or last):
                metrics["val_loss"] = validate(fabric, model, val_data, args, pad_id)
                history.val_steps.append(step)
                history.val_loss.append(metrics["val_loss"])
                postfix["val"] = f"{metrics['val_loss']:.3f}"
            if exec_check is not None and args.exec_eval_interval and (step % args.exec_eval_interval == 0 or last):
                metrics.update(exec_check(fabric, model))
                history.exec_steps.append(step)
                history.exec_acc.append(metrics["val_exec_acc"])
                history.executes.append(metrics["val_executes"])
                postfix["exec"] = f"{100 * metrics['val_exec_acc']:.0f}%"
            if metrics:
                fabric.log_dict(metrics, step=step)
                fabric.print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                if progress is not None:
                    progress.set_postfix(postfix)
                window_start = time.perf_counter()  # evaluation time is not training throughput

            if step % args.save_interval == 0 and not last:
                state["history"] = asdict(history)
                path = Path(out_dir, CHECKPOINT_DIR, f"step-{step:06d}.pth")
                path.parent.mkdir(parents=True, exist_ok=True)
                extra = {"cpu_rng": torch.get_rng_state(), **({"run": run_record} if run_record else {})}
                if torch.cuda.is_available():
                    extra["cuda_rng"] = torch.cuda.get_rng_state_all()
                save_checkpoint(fabric, path, {**state, **extra}, keep=args.keep_checkpoints)
                last_good = path
            if last:
                break
    finally:
        if progress is not None:
            progress.close()  # also when the run stops on an error: its message then starts a line of its own
    return history


def time_left(steps_done: int, steps_left: float, wall_seconds: float, budget_left: Optional[float],
              clock_seconds: float) -> Optional[float]:
    """Wall-clock seconds until the run ends, from the pace of the `steps_done` steps it took `wall_seconds` (and
    `clock_seconds` on the budget's clock) to make: the steps left at that pace, or the time budget left at the
    budget clock's pace, whichever runs out first. Under a CPU-time budget on a busy machine the process gets less
    CPU time per wall second, and the estimate grows accordingly. None before the first step."""
    if steps_done <= 0 or wall_seconds <= 0:
        return None
    estimates = []
    if math.isfinite(steps_left):
        estimates.append(max(0.0, steps_left) * wall_seconds / steps_done)
    if budget_left is not None and clock_seconds > 0:
        estimates.append(max(0.0, budget_left) * wall_seconds / clock_seconds)
    return min(estimates) if estimates else None


def format_duration(seconds: float) -> str:
    """7m05s, 1h02m, 45s."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def diverged(what: str, step: int, last_good: Optional[Path]) -> LitSQLError:
    return LitSQLError(
        f"{what} at step {step}. The last good checkpoint is {last_good or 'none (none was saved yet)'}; lower "
        f"--train.learning_rate (or use --precision 32-true) and resume with --resume auto"
    )


@torch.no_grad()
def validate(fabric, model: torch.nn.Module, val_data: list[dict], args: TrainArgs, pad_id: int = 0) -> float:
    """Mean token loss on the first `eval_batches` micro-batches of the validation set (the same every time)."""
    model.eval()
    total, count = 0.0, 0
    n = min(len(val_data), args.eval_batches * args.micro_batch_size)
    for start in range(0, n, args.micro_batch_size):
        input_ids, labels = fabric.to_device(collate(val_data[start:start + args.micro_batch_size], pad_id))
        loss, tokens = loss_sum(model, input_ids, labels)
        total, count = total + loss.item(), count + tokens
    model.train()
    stats = fabric.all_reduce(torch.tensor([total, count], dtype=torch.float64, device=fabric.device), reduce_op="sum")
    return float(stats[0] / max(1.0, float(stats[1])))


class ExecutionCheck:
    """Execution accuracy of the model being trained, on a fixed handful of validation questions.

    SQL comes from `lit_sql.evaluate.generate_sql` (greedy, KV cache, no autograd, dropout off) and is run and
    compared with the gold query by `evaluate_examples`, on the example's database or on databases built from
    its CREATE TABLE context. Under DDP each rank answers its share of the questions on its own copy of the
    model (no collective operations inside generation) and the counts are summed, so all ranks log the same
    figures. Not for FSDP, whose sharded model cannot generate on one rank alone.
    """

    def __init__(self, val_data: list[dict], tokenizer, style, n: int, seed: int = 0) -> None:
        usable = [ex for ex in val_data
                  if ex.get("sql") and (ex.get("db_path") or ex.get("db_paths") or ex.get("schema"))]
        self.examples = random.Random(seed).sample(usable, min(n, len(usable)))  # the same questions every time
        self.tokenizer, self.style = tokenizer, style
        from lit_sql.evaluate import schemas_of

        self.schemas = schemas_of(self.examples)  # read once: grounded decoding checks names against them
        answers = [int((torch.as_tensor(ex["labels"]) != IGNORE_INDEX).sum()) for ex in self.examples]
        self.longest_prompt = max((len(ex["input_ids"]) - a for ex, a in zip(self.examples, answers)), default=0)
        # Room for twice the longest gold answer: a model that rambles on costs little, and a right answer is
        # never cut short.
        self.max_new_tokens = 2 * max(answers, default=0) + 8

    def __bool__(self) -> bool:
        return bool(self.examples)

    def __call__(self, fabric, model: torch.nn.Module) -> dict[str, float]:
        from lit_sql.evaluate import EvalConfig, evaluate_examples, generate_sql, prompt_of

        module = getattr(model, "module", model)  # the model itself, not its Fabric/DDP wrapper
        mine = self.examples[fabric.global_rank::fabric.world_size]
        room = module.config.block_size - self.longest_prompt
        cfg = EvalConfig(max_new_tokens=max(1, min(self.max_new_tokens, room)), batch_size=len(self.examples),
                         workers=1)  # a handful of queries: run them in this process
        records = []
        if mine:
            was_training = module.training
            module.eval()
            try:
                with fabric.autocast():
                    prompts = [prompt_of(ex, self.style) for ex in mine]
                    candidates = generate_sql(module, self.tokenizer, self.style, prompts, cfg, desc="execution check",
                                              schemas=self.schemas[fabric.global_rank::fabric.world_size])
            finally:
                module.train(was_training)
            records = evaluate_examples(mine, candidates, cfg)
        counts = torch.tensor([sum(r["match"] for r in records), sum(r["executes"] for r in records), len(records)],
                              dtype=torch.float64, device=fabric.device)
        counts = fabric.all_reduce(counts, reduce_op="sum")
        n = max(1.0, float(counts[2]))
        return {"val_exec_acc": float(counts[0]) / n, "val_executes": float(counts[1]) / n}


def plot_history(history: History, path: Path) -> Optional[Path]:
    """Train and validation loss against step, and execution accuracy beside it when it was checked, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = 2 if history.exec_steps else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(history.steps, history.train_loss, label="train", alpha=0.7)
    if history.val_steps:
        ax.plot(history.val_steps, history.val_loss, "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if history.exec_steps:
        ax = axes[0, 1]
        ax.plot(history.exec_steps, [100 * a for a in history.exec_acc], "o-", label="execution accuracy")
        ax.plot(history.exec_steps, [100 * e for e in history.executes], "s--", alpha=0.6, label="SQL executes")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("% of the checked validation questions")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_json(path: Path, data: dict) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2)),
                     "Free some space and run it again")
