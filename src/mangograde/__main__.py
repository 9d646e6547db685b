"""``python -m mangograde``: the command line."""

from .cli import main

if __name__ == "__main__":  # worker processes (Dask, loky) import this module too
    main()
