"""Moved: ituna-report is the application package ituna_report. This alias keeps
`import ituna.report` and its submodules working; the command is `ituna-report` or
`python -m ituna_report`."""
import sys

import ituna_report as _app

sys.modules[__name__] = _app
