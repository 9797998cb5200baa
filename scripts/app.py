"""The web demo: python scripts/app.py [--lora_path out/lora/sql] [--db_dir path/to/databases] [--port 7860]"""

from lit_sql.app import serve
from lit_sql.cli import run_cli

if __name__ == "__main__":
    run_cli(serve)
