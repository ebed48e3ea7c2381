"""``python -m ahashdb`` runs the command line."""

from .cli import main

main()
