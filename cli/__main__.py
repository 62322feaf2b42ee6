"""`python -m cli ...` (what torchrun launches with `-m cli`) is `rsd-sci ...`."""

from cli.app import main

main()
