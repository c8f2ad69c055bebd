"""Allows ``python -m diffcli``."""

from diffcli.cli import main

if __name__ == "__main__":
    main()
