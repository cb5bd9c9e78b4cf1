"""`python -m ituna_report` runs the ituna-report command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
