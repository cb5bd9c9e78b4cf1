"""`python -m ituna.restaurant`: the ituna-restaurant command (moved to ituna_restaurant)."""
import sys

from ituna_restaurant.launcher import main

if __name__ == "__main__":
    sys.exit(main())
