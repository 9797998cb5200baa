"""The text-to-SQL prompt: one definition shared by data preparation, generation and evaluation.

The user turn holds the schema first and the question last, each under its own heading, so that a model
fine-tuned on it sees exactly the same layout when it is asked a new question. Retrieval (`lit_sql.retrieval`)
may put solved examples (question and SQL) in front of the schema; without them the text is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from lit_sql.prompts import PromptStyle

DEFAULT_SQL_SYSTEM_PROMPT = ("You are a SQLite expert. Given a database schema and a question, write one SQLite "
                             "query that answers the question. Reply with only the SQL query.")

SCHEMA_HEADING = "Database schema:\n"
QUESTION_HEADING = "Question: "
EVIDENCE_HEADING = "Hint: "
EXAMPLES_HEADING = "Examples of questions and their SQL:\n"
SQL_HEADING = "SQL: "


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
