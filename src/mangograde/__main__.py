"""``python -m mangograde``: the command line."""

from .cli import main

main()
