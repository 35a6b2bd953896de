"""`python -m pushgate` runs the CLI."""

from pushgate.cli import main

main()
