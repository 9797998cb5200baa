"""SQL execution in a sandbox, result comparison, extraction from model output, text metrics, and databases
built from CREATE TABLE contexts. Importing it imports sqlglot (metrics); nothing imports torch."""

from lit_sql.sql.build_db import ContextDatabases, build_databases, prepare_databases
from lit_sql.sql.compare import MODES, ComparisonMode, Verdict, compare_results, has_top_level_order_by, results_match
from lit_sql.sql.execute import ExecutionResult, close_connections, execute_many, execute_sql
from lit_sql.sql.extract import extract_sql
from lit_sql.sql.metrics import DIFFICULTY_LEVELS, bleu, exact_match, normalize, parses, rouge_l, sql_difficulty

__all__ = [
    "DIFFICULTY_LEVELS", "MODES", "ComparisonMode", "ContextDatabases", "ExecutionResult", "Verdict", "bleu", "build_databases",
    "close_connections", "compare_results", "exact_match", "execute_many", "execute_sql", "extract_sql",
    "has_top_level_order_by", "normalize", "parses", "prepare_databases", "results_match", "rouge_l",
    "sql_difficulty",
]
