from lit_sql.cli import main

main()
