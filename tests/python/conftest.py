"""Which ituna package the Python tests load: ITUNA_PYTHON_TREE (a directory holding an
ituna package, e.g. an ASan build), else the in-tree build (python setup.py build_ext
--inplace) when its extension is there, else the installed package (pip install .).
Runs before any test module imports ituna."""
import os
import sys

_TREE = os.environ.get("ITUNA_PYTHON_TREE") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "..", "..", "bindings", "python")
_PKG = os.path.join(_TREE, "ituna")
if os.path.isdir(_PKG) and any(f.startswith("_core.") and f.endswith(".so") for f in os.listdir(_PKG)):
    sys.path.insert(0, os.path.abspath(_TREE))
# the applications (ituna_report, ituna_restaurant) from the source tree when not installed
_APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
try:
    import ituna_report  # noqa: F401
except ImportError:
    sys.path.append(os.path.abspath(_APPS))
