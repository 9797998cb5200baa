"""The text-to-SQL prompt: one definition shared by data preparation, generation and evaluation.

The user turn holds the schema first and the question last, each under its own heading, so that a model
fine-tuned on it sees exactly the same layout when it is asked a new question. Retrieval (`lit_sql.retrieval`)
may put solved examples (question and SQL) in front of the schema; without them the text is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

from lit_sql.errors import LitSQLError

if TYPE_CHECKING:
    from lit_sql.data.schema import Schema
    from lit_sql.prompts import PromptStyle

DEFAULT_SQL_SYSTEM_PROMPT = ("You are a SQLite expert. Given a database schema and a question, write one SQLite "
                             "query that answers the question. Reply with only the SQL query.")

SCHEMA_HEADING = "Database schema:\n"
QUESTION_HEADING = "Question: "
EVIDENCE_HEADING = "Hint: "
EXAMPLES_HEADING = "Examples of questions and their SQL:\n"
SQL_HEADING = "SQL: "
# What a training answer holds: the SQL alone, or the schema links the SQL uses (`lit_sql.sql.links`) on one
# line and then the SQL after SQL_HEADING.
TARGET_FORMATS = ("sql", "linked")


def build_user_message(question: str, schema: str, evidence: Optional[str] = None,
                       examples: Optional[Sequence[tuple[str, str]]] = None) -> str:
    """Solved (question, SQL) examples if any, the schema, then the question (and the external knowledge,
    when a source has it)."""
    text = ""
    if examples:
        solved = (f"{QUESTION_HEADING}{q.strip()}\n{SQL_HEADING}{sql.strip()}" for q, sql in examples)
        text = EXAMPLES_HEADING + "\n\n".join(solved) + "\n\n"
    text += f"{SCHEMA_HEADING}{schema.strip()}\n\n{QUESTION_HEADING}{question.strip()}"
    if evidence and evidence.strip():
        text += f"\n{EVIDENCE_HEADING}{evidence.strip()}"
    return text


def build_prompt(style: "PromptStyle", question: str, schema: str, evidence: Optional[str] = None,
                 system: Optional[str] = None, examples: Optional[Sequence[tuple[str, str]]] = None) -> str:
    """The full prompt text up to where the model's SQL begins."""
    return style.apply(build_user_message(question, schema, evidence, examples),
                       system=system or DEFAULT_SQL_SYSTEM_PROMPT)


@dataclass(frozen=True)
class PromptRecipe:
    """Every choice that decides the text of a text-to-SQL prompt, and of the answer a model is trained to write.

    Data preparation writes it into meta.json, fine-tuning copies it into the run record (`lit_sql.run`), and
    generation, evaluation, the app and retrieval build their prompts from it: a model is asked in exactly the
    layout it was trained on, and no consumer has to guess a setting again.
    """

    prompt_style: Optional[str] = None  # the chat format; None: the checkpoint's own
    system_prompt: str = DEFAULT_SQL_SYSTEM_PROMPT
    schema_format: str = "ddl"  # ddl (CREATE TABLE statements) or compact (one line per table)
    sample_rows: int = 0  # rows of each table shown with the schema
    value_hints: bool = False  # cells of the database the question mentions, beside their columns
    max_seq_length: Optional[int] = None  # prompt + answer + EOS in training; longer prompts got a shorter schema
    dialect: str = "sqlite"  # the SQL the answers are written in
    target_format: str = "sql"  # sql (the answer is the query) or linked (schema links, then the query)

    def __post_init__(self) -> None:
        from lit_sql.data.schema import SCHEMA_FORMATS

        if self.schema_format not in SCHEMA_FORMATS:
            raise LitSQLError(f"schema format {self.schema_format!r}: one of {', '.join(SCHEMA_FORMATS)}")
        if self.sample_rows < 0:
            raise LitSQLError(f"sample rows {self.sample_rows}: must be >= 0")
        if self.target_format not in TARGET_FORMATS:
            raise LitSQLError(f"target format {self.target_format!r}: one of {', '.join(TARGET_FORMATS)}")

    @classmethod
    def from_dict(cls, data: dict) -> "PromptRecipe":
        """From a record (meta.json or a run's); keys it does not know are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        if "sample_rows" in values:
            values["sample_rows"] = int(values["sample_rows"])
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def differences(self, other: "PromptRecipe") -> dict[str, tuple]:
        """{setting: (this value, the other's)} for every setting that differs."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}

    def check_flags(self, source: str, **flags) -> None:
        """Settings given as flags (None: not given) against this recorded recipe. A flag may only repeat the
        recorded value: a prompt built another way than in training costs accuracy silently, so a different
        value is an error that names both."""
        for name, value in flags.items():
            if value is not None and value != getattr(self, name):
                raise LitSQLError(f"--{name} {value!r} differs from {getattr(self, name)!r}, the value {source} "
                                  f"records: leave the flag out (the record sets it)")

    def answer(self, sql: str, schema: "Schema") -> str:
        """The answer a model is trained to write for `sql`: the query itself, or (linked) the tables and columns
        it uses in `schema` on one line, then the query after SQL_HEADING, which `extract_sql` reads. Raises
        LitSQLError when the links cannot be derived (the SQL does not parse)."""
        if self.target_format == "sql":
            return sql
        from lit_sql.sql.links import render_links, schema_links

        return f"{render_links(schema_links(sql, schema))}\n{SQL_HEADING}{sql}"

    def answer_tokens(self, sql_tokens: int) -> int:
        """Tokens to generate for an answer whose SQL may take `sql_tokens`: a linked answer writes its links line
        first."""
        if self.target_format == "sql":
            return sql_tokens
        from lit_sql.sql.links import LINKS_ROOM_TOKENS

        return sql_tokens + LINKS_ROOM_TOKENS

    def render_schema(self, schema: "Schema") -> str:
        return schema.render(self.schema_format, self.sample_rows)

    def with_value_hints(self, schema: "Schema", question: str, db_path: Union[str, Path, None]) -> "Schema":
        """`schema` with the value hints of `question` when this recipe shows them and the database is known
        (`lit_sql.data.values`); else `schema` itself. Training and inference both call it, so a model sees hints
        exactly as it learned them."""
        if not self.value_hints or db_path is None:
            return schema
        from lit_sql.data.values import add_value_hints

        return add_value_hints(schema, db_path, question)

    def build(self, style: "PromptStyle", question: str, schema_text: str, evidence: Optional[str] = None,
              examples: Optional[Sequence[tuple[str, str]]] = None) -> str:
        """The full prompt for a schema already rendered as text."""
        return build_prompt(style, question, schema_text, evidence, self.system_prompt, examples)

    def fit(self, style: "PromptStyle", question: str, schema: "Schema", budget: int,
            count_tokens: Callable[[str], int], evidence: Optional[str] = None
            ) -> tuple[Optional[str], Optional[str], list[str]]:
        """(prompt, schema text, shortening steps) for the largest version of `schema` whose prompt is at most
        `budget` tokens, shortened the way data preparation shortens it (`shorten_schema`); (None, None, steps)
        when even the tables the question names do not fit."""
        from lit_sql.data.schema import shorten_schema

        def text(s: "Schema") -> str:
            return self.build(style, question, self.render_schema(s), evidence)

        small, steps = shorten_schema(schema, question, lambda s: count_tokens(text(s)) <= budget)
        if small is None:
            return None, None, steps
        return text(small), self.render_schema(small), steps
