"""Moved: the launcher is the application package ituna_restaurant. This alias keeps
`import ituna.restaurant` and `python -m ituna.restaurant` working."""
import sys

import ituna_restaurant as _app

sys.modules[__name__] = _app
