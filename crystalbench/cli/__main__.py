"""`python -m crystalbench.cli` is `bench`."""

from .main import main

main()
