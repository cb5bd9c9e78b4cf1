"""`python -m ituna_restaurant` runs the ituna-restaurant command."""

import sys

from .launcher import main

if __name__ == "__main__":
    sys.exit(main())
