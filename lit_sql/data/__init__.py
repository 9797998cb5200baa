"""Text-to-SQL data: sources, SQLite schemas, the embedded generator, prompts, tokenization and masking."""

from lit_sql.data.prompt import DEFAULT_SQL_SYSTEM_PROMPT, build_prompt, build_user_message
from lit_sql.data.schema import render_schema
from lit_sql.data.sources import SQLExample

__all__ = ["DEFAULT_SQL_SYSTEM_PROMPT", "SQLExample", "build_prompt", "build_user_message", "render_schema"]
