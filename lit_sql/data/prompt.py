"""The text-to-SQL prompt: one definition shared by data preparation, generation and evaluation.

The user turn holds the schema first and the question last, each under its own heading, so that a model
fine-tuned on it sees exactly the same layout when it is asked a new question.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from lit_sql.prompts import PromptStyle

DEFAULT_SQL_SYSTEM_PROMPT = ("You are a SQLite expert. Given a database schema and a question, write one SQLite "
                             "query that answers the question. Reply with only the SQL query.")

SCHEMA_HEADING = "Database schema:\n"
QUESTION_HEADING = "Question: "
EVIDENCE_HEADING = "Hint: "


def build_user_message(question: str, schema: str, evidence: Optional[str] = None) -> str:
    """Schema, then the question (and the external knowledge, when a source has it)."""
    text = f"{SCHEMA_HEADING}{schema.strip()}\n\n{QUESTION_HEADING}{question.strip()}"
    if evidence and evidence.strip():
        text += f"\n{EVIDENCE_HEADING}{evidence.strip()}"
    return text


def build_prompt(style: "PromptStyle", question: str, schema: str, evidence: Optional[str] = None,
                 system: Optional[str] = None) -> str:
    """The full prompt text up to where the model's SQL begins."""
    return style.apply(build_user_message(question, schema, evidence), system=system or DEFAULT_SQL_SYSTEM_PROMPT)
