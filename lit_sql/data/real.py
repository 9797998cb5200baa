"""The real-question evaluation set shipped with the package: a slice of Spider (Yu et al., 2018; CC BY-SA 4.0).

The main job (`lit-sql demo`) trains on generated questions only; generated questions say how well a model learned
what it was shown, not how it does on questions people wrote about databases nobody generated. This slice says
the latter on a fresh machine, offline: 8 small SQLite databases of Spider's training split with all 208 of their
questions, in Spider's layout (`questions.json` with db_id / question / query, `database/<db_id>/<db_id>.sqlite`).
The databases are on the test side of the database split every Spider benchmark here trains on
(benchmarks/spider_split.py), so no benchmark trains on them either. What was taken and changed:
`real/ATTRIBUTION.md`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from lit_sql.checkpoint import DEFAULT_CHECKPOINT
from lit_sql.data.prompt import PromptRecipe
from lit_sql.errors import LitSQLError

QUESTIONS_FILE = "questions.json"


def real_dir() -> Path:
    """The folder of the shipped slice, found with importlib.resources (an installed wheel or a source checkout)."""
    folder = resources.files("lit_sql.data") / "real"
    # prepare() and the SQL sandbox open the databases by path: the package must be installed as files.
    if not isinstance(folder, Path) or not (folder / QUESTIONS_FILE).is_file():
        raise LitSQLError(f"the real-question set is missing from the installed package ({folder}/{QUESTIONS_FILE} "
                          f"not found): reinstall lit_sql from a checkout with `pip install -e .` (the files are "
                          f"package data, see pyproject.toml)")
    return folder


def real_questions() -> list[dict]:
    """The shipped questions, in Spider's records: {"db_id", "question", "query"}."""
    return json.loads((real_dir() / QUESTIONS_FILE).read_text(encoding="utf-8"))


def real_databases() -> dict[str, Path]:
    """{db_id: SQLite file} of the shipped databases."""
    ids = sorted({q["db_id"] for q in real_questions()})
    return {db_id: real_dir() / "database" / db_id / f"{db_id}.sqlite" for db_id in ids}


def describe() -> str:
    """How the main job's table names this set."""
    return f"real questions (Spider, {len(real_databases())} unseen databases)"


def prepare_real(recipe: PromptRecipe, out_dir: Path, checkpoint_dir: Path = DEFAULT_CHECKPOINT,
                 seed: int = 42) -> Path:
    """Prepare the shipped slice into `out_dir` with the normal `prepare()`, every question as test (nothing here
    is for training), and the prompts written by `recipe`: the recipe of the data the model was trained on, so a
    fine-tuned model is asked the real questions in the layout it learned."""
    from lit_sql.data.prepare import prepare

    return prepare(dataset="spider", data_path=real_dir(), files=[QUESTIONS_FILE], checkpoint_dir=checkpoint_dir,
                   out_dir=out_dir, test_split_fraction=1.0, split_by="database", seed=seed,
                   max_seq_length=recipe.max_seq_length or 1024, schema_format=recipe.schema_format,
                   sample_rows=recipe.sample_rows, value_hints=recipe.value_hints,
                   system_prompt=recipe.system_prompt, prompt_style=recipe.prompt_style,
                   target_format=recipe.target_format)

