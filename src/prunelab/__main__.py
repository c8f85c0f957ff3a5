"""`python -m prunelab` runs the command line."""

from .cli import main

main()
