"""A trained run as one record, and the one loader every consumer uses.

Fine-tuning writes `hyperparameters.yaml` beside the adapter (and into every step checkpoint): the base
checkpoint (its path and model name), the LoRA settings, the quantization and precision, the optimisation
settings, and the data's prompt recipe (`PromptRecipe`: prompt style, system prompt, schema format, sample rows,
max length, dialect, target format). `load_run(path)` reads it back and returns a `Run`, which builds the prompt
for a question exactly as training did and loads the model. Generation, evaluation, the app, retrieval, merge and
every export go through it, so none of them re-derives a setting; their `--checkpoint_dir` and prompt flags may
only repeat what the record says.

`base_run(checkpoint_dir)` is the same object for a model without an adapter: the prompt recipe then comes
from the flags (or from `prompt_recipe.yaml` in a merged checkpoint, which keeps its run's recipe).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import yaml

from lit_sql.checkpoint import DEFAULT_CHECKPOINT, ensure_checkpoint
from lit_sql.data.prompt import PromptRecipe
from lit_sql.errors import LitSQLError
from lit_sql.lora import ADAPTER_FILE, HYPERPARAMETERS_FILE, LoRAConfig

if TYPE_CHECKING:
    from lit_sql.config import Config
    from lit_sql.data.schema import Schema
    from lit_sql.prompts import PromptStyle
    from lit_sql.tokenizer import Tokenizer

RECORD_FILE = HYPERPARAMETERS_FILE
RECIPE_FILE = "prompt_recipe.yaml"  # in a merged checkpoint: the recipe of the run merged into it
RECORD_VERSION = 2  # 1: LoRA settings, base path and data folder only (prompt settings were not recorded)


@dataclass
class Run:
    """A base checkpoint, optionally with a fine-tuned adapter, and the prompt recipe it expects."""

    checkpoint_dir: Path
    recipe: PromptRecipe
    lora_path: Optional[Path] = None
    lora: Optional[LoRAConfig] = None
    quantize: Optional[str] = None  # how the base was stored in training: loaded the same way by default
    record: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.lora_path.name if self.lora_path is not None else self.checkpoint_dir.name

    @cached_property
    def config(self) -> "Config":
        from lit_sql.config import Config

        return Config.from_checkpoint(self.checkpoint_dir)

    @cached_property
    def style(self) -> "PromptStyle":
        from lit_sql.prompts import load_prompt_style

        return load_prompt_style(self.checkpoint_dir, self.recipe.prompt_style)

    @cached_property
    def tokenizer(self) -> "Tokenizer":
        from lit_sql.tokenizer import Tokenizer

        return Tokenizer(self.checkpoint_dir)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def prompt(self, question: str, schema: Union[str, "Schema", None] = None, db: Union[str, Path, None] = None,
               evidence: Optional[str] = None, examples: Optional[Sequence[tuple[str, str]]] = None,
               max_new_tokens: Optional[int] = None) -> str:
        """The prompt for `question` about a database (`db`, rendered by the recipe), a parsed `Schema`, or a
        schema given as text (used as it is). A rendered schema too long for the context less `max_new_tokens`
        is shortened as data preparation shortens it."""
        if (schema is None) == (db is None):
            raise LitSQLError("pass the database's schema with exactly one of a schema text or a database file")
        if db is not None:
            schema = self.read_schema(db, question)
        if isinstance(schema, str):
            return self.recipe.build(self.style, question, schema, evidence, examples)
        if examples:  # retrieval fits examples and schema together (`Retriever.prompt`)
            return self.recipe.build(self.style, question, self.recipe.render_schema(schema), evidence, examples)
        budget = self.prompt_budget(max_new_tokens)
        text, _, _ = self.recipe.fit(self.style, question, schema, budget, self.count_tokens, evidence)
        if text is None:
            raise LitSQLError(f"the schema is too long for {self.name}'s prompt budget of {budget} tokens, even "
                              f"with only the tables the question names")
        return text

    def prompt_budget(self, max_new_tokens: Optional[int] = None) -> int:
        """Tokens a prompt may take: the model's context less the answer's room."""
        return self.config.block_size - (max_new_tokens or 0)

    def read_schema(self, db: Union[str, Path], question: Optional[str] = None) -> "Schema":
        """The database's schema as the recipe shows it: with its sample rows, and with the value hints of
        `question` when the run was trained with them."""
        from lit_sql.data.schema import read_schema

        if not Path(db).is_file():
            raise LitSQLError(f"database {db}: no such file")
        schema = read_schema(db, self.recipe.sample_rows)
        return self.recipe.with_value_hints(schema, question, db) if question is not None else schema

    def load_model(self, precision: str = "32-true", device: str = "cpu", quantize: Optional[str] = None,
                   fast_decoding: bool = True):
        """The model ready to generate (see `lit_sql.generation.load_for_inference`); the base is quantized as in
        training unless `quantize` says otherwise."""
        from lit_sql.generation import load_for_inference

        return load_for_inference(self.checkpoint_dir, precision, device, quantize=quantize or self.quantize,
                                  lora_path=self.lora_path, fast_decoding=fast_decoding)


# ---- writing ----------------------------------------------------------------------------------------------
def run_record(checkpoint_dir: Path, recipe: PromptRecipe, lora: Optional[LoRAConfig], **settings: Any) -> dict:
    """What fine-tuning saves: everything needed to use the run, in plain YAML types. `lora` None: full
    fine-tuning (the run's folder then holds the whole model)."""
    from lit_sql.config import Config

    config = Config.from_checkpoint(Path(checkpoint_dir))
    return {
        "version": RECORD_VERSION,
        "base": {"checkpoint_dir": str(Path(checkpoint_dir).resolve()), "model_name": config.name},
        "lora": asdict(lora) if lora is not None else None,
        "prompt": recipe.to_dict(),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()},
        # Read by runs of version 1 only; kept so that older lit_sql versions can still load this run.
        "checkpoint_dir": str(Path(checkpoint_dir).resolve()),
    }


def save_record(out_dir: Path, record: dict) -> None:
    from lit_sql.checkpoint import write_atomically

    write_atomically(Path(out_dir, RECORD_FILE), lambda tmp: tmp.write_text(yaml.safe_dump(record, sort_keys=False)),
                     "Free some space and run it again")


def save_recipe(checkpoint_dir: Path, recipe: PromptRecipe) -> None:
    """Keep a run's recipe with a checkpoint it was merged into, so the merged model is asked the same way."""
    Path(checkpoint_dir, RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


# ---- reading ----------------------------------------------------------------------------------------------
def read_record(lora_path: Path) -> dict:
    path = Path(lora_path) / RECORD_FILE
    if not path.is_file():
        raise LitSQLError(f"{path} not found: --lora_path must be the output folder of finetune/lora.py "
                          f"(it holds {ADAPTER_FILE} and {RECORD_FILE})")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise LitSQLError(f"{path} is not a readable run record: {str(e).splitlines()[0]}") from None
    if isinstance(data, dict):
        _check_record(path, data)
    if not isinstance(data, dict) or not (isinstance(data.get("lora"), dict) or _is_full(data)):
        raise LitSQLError(f"{path} is not a run record of finetune/lora.py or finetune/full.py (no 'lora' settings "
                          f"in it)")
    return data


# The type of each setting a record may hold (None: not recorded). A value of another type means an edited or
# damaged file, which would otherwise fail far from it, in a traceback.
_RECORD_TYPES = {"version": int, "base": dict, "lora": dict, "prompt": dict, "quantize": str, "precision": str,
                 "train": dict, "data_dir": str, "checkpoint_dir": str}
_BASE_TYPES = {"checkpoint_dir": str, "model_name": str}


def _check_record(path: Path, data: dict) -> None:
    settings = [(key, data.get(key), kind) for key, kind in _RECORD_TYPES.items()]
    base = data.get("base") if isinstance(data.get("base"), dict) else {}
    settings += [(f"base.{key}", base.get(key), kind) for key, kind in _BASE_TYPES.items()]
    for key, value, kind in settings:
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise LitSQLError(f"{path} is damaged: its {key} is {value!r}, not {kind.__name__}. Restore the file or "
                              f"train the run again")
    from lit_sql.quantize import QUANTIZE_MODES

    if data.get("quantize") is not None and data["quantize"] not in QUANTIZE_MODES:
        raise LitSQLError(f"{path} is damaged: its quantize is {data['quantize']!r}, not one of "
                          f"{', '.join(QUANTIZE_MODES)}. Restore the file or train the run again")
    # Records since version 2 end with `checkpoint_dir` (see `run_record`): one without it was cut short, and the
    # settings before the cut may be cut too.
    if data.get("version", 1) >= 2 and "checkpoint_dir" not in data:
        raise LitSQLError(f"{path} is cut short (it ends before its last setting, checkpoint_dir). Restore the file "
                          f"or train the run again")


def _is_full(record: dict) -> bool:
    """A run of finetune/full.py: no LoRA, the whole model in the run's folder."""
    return record.get("version", 1) >= 2 and "lora" in record and record["lora"] is None


def lora_settings(record: dict, lora_path: Path) -> LoRAConfig:
    try:
        return LoRAConfig(**record["lora"])
    except (TypeError, ValueError, LitSQLError) as e:
        raise LitSQLError(f"{Path(lora_path) / RECORD_FILE}: its LoRA settings do not load: {e}") from None


def recorded_recipe(record: dict, lora_path: Path) -> PromptRecipe:
    """The record's prompt recipe; one that does not load (a wrong value, an unknown prompt style) is an error
    naming the record."""
    from lit_sql.prompts import PromptStyle

    try:
        recipe = PromptRecipe.from_dict(record["prompt"])
        if recipe.prompt_style:
            PromptStyle.from_name(recipe.prompt_style)  # known: else every prompt would fail, far from the file
        return recipe
    except (TypeError, ValueError, LitSQLError) as e:
        raise LitSQLError(f"{Path(lora_path) / RECORD_FILE}: its prompt recipe does not load: {e}") from None


def load_run(lora_path: Union[str, Path], checkpoint_dir: Optional[Path] = None, **prompt_flags: Any) -> Run:
    """The run in `lora_path` (a finetune/lora.py output folder).

    checkpoint_dir: optional; the recorded base is used without it. A folder holding the same model (by name) is
        accepted in its place (a moved copy); another model is an error that names both.
    prompt_flags: PromptRecipe settings given as flags (None: not given); each must equal the recorded one.
    """
    lora_path = Path(lora_path)
    data = read_record(lora_path)
    if _is_full(data):
        return _full_run(lora_path, data, checkpoint_dir, prompt_flags)
    lora = lora_settings(data, lora_path)
    base = data.get("base") or {}
    recorded = base.get("checkpoint_dir") or data.get("checkpoint_dir")
    checkpoint_dir = _base_checkpoint(lora_path, recorded, base.get("model_name"), checkpoint_dir)
    if isinstance(data.get("prompt"), dict):
        recipe = recorded_recipe(data, lora_path)
    else:
        recipe = _recipe_of_old_run(lora_path, data)
    recipe.check_flags(str(lora_path / RECORD_FILE), **prompt_flags)
    return Run(checkpoint_dir, recipe, lora_path, lora, data.get("quantize"), data)


def _full_run(path: Path, data: dict, checkpoint_dir: Optional[Path], prompt_flags: dict) -> Run:
    """A run of finetune/full.py: its folder is the model (the recorded base was only its starting point)."""
    from lit_sql.checkpoint import WEIGHTS_FILE

    if not (path / WEIGHTS_FILE).is_file():
        raise LitSQLError(f"{path} holds no {WEIGHTS_FILE}: the full fine-tuning run has not finished (resume it with "
                          f"finetune/full.py --resume auto --out_dir {path})")
    if checkpoint_dir is not None and Path(checkpoint_dir).resolve() != path.resolve():
        raise LitSQLError(f"--checkpoint_dir {checkpoint_dir}: {path} is a full fine-tune, a model of its own; leave "
                          f"--checkpoint_dir out")
    recipe = recorded_recipe(data, path)
    recipe.check_flags(str(path / RECORD_FILE), **prompt_flags)
    return Run(ensure_checkpoint(path), recipe, record=data)


def base_run(checkpoint_dir: Optional[Path] = None, default: Optional[PromptRecipe] = None, **prompt_flags: Any) -> Run:
    """A checkpoint without an adapter. Its recipe: a merged checkpoint's recorded one (flags may only repeat
    it), else `default` (e.g. the recipe of the data it is evaluated on) with the flags given (None: not given)
    applied over it."""
    checkpoint_dir = ensure_checkpoint(Path(checkpoint_dir or DEFAULT_CHECKPOINT))
    flags = {k: v for k, v in prompt_flags.items() if v is not None}
    recipe_file = checkpoint_dir / RECIPE_FILE
    if recipe_file.is_file():
        recipe = PromptRecipe.from_dict(yaml.safe_load(recipe_file.read_text()) or {})
        recipe.check_flags(str(recipe_file), **flags)
    else:
        recipe = PromptRecipe.from_dict({**(default or PromptRecipe()).to_dict(), **flags})
    return Run(checkpoint_dir, recipe)


def _base_checkpoint(lora_path: Path, recorded: Optional[str], model_name: Optional[str],
                     override: Optional[Path]) -> Path:
    from lit_sql.config import Config

    if override is None:
        if not recorded:
            raise LitSQLError(f"{lora_path / RECORD_FILE} does not name its base checkpoint: pass --checkpoint_dir")
        path = Path(recorded)
        try:
            return ensure_checkpoint(path)
        except LitSQLError as e:
            raise LitSQLError(f"{lora_path} was trained on {path}, which is not usable here ({e}); pass "
                              f"--checkpoint_dir with a copy of that model") from None
    override = ensure_checkpoint(Path(override))
    if recorded and override.resolve() != Path(recorded).resolve():
        name = Config.from_checkpoint(override).name
        if model_name and name != model_name:
            raise LitSQLError(f"--checkpoint_dir {override} holds {name}, but {lora_path} was trained on "
                              f"{model_name} ({recorded}): leave --checkpoint_dir out, or pass a copy of that model")
        if not model_name:
            print(f"note: {lora_path} was trained on {recorded}; using --checkpoint_dir {override}", file=sys.stderr)
    return override


def _recipe_of_old_run(lora_path: Path, data: dict) -> PromptRecipe:
    """A run recorded before prompt recipes: its data folder's meta.json says how the prompts were built, when
    that folder is still there; else the defaults."""
    import json

    meta = Path(str(data.get("data_dir", ""))) / "meta.json"
    if data.get("data_dir") and meta.is_file():
        print(f"note: {lora_path} has no prompt recipe in its record (trained by an older lit_sql); using {meta}",
              file=sys.stderr)
        return PromptRecipe.from_dict(json.loads(meta.read_text()))
    print(f"note: {lora_path} has no prompt recipe in its record and its data folder is gone; assuming the "
          f"default prompt (ddl schema, no sample rows)", file=sys.stderr)
    return PromptRecipe()
