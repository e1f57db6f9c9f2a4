"""`python -m doorvoer.cli`: the same as `doorvoer`."""

from doorvoer.cli import main

main()
