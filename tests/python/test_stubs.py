"""The type stubs (ituna/_core.pyi) match the extension at runtime.

1. mypy.stubtest ituna._core: names, kinds, and every signature (the C functions and
   types carry text signatures, `name(...)\\n--\\n\\n` docstrings, so inspect and
   stubtest can read them). Needs mypy (tools/requirements-test.txt): without it
   the test is skipped with the reason, and FAILS when CI=true.
2. Without mypy too: every public runtime name is in the stub and the other way
   round, and each stub signature has the runtime's parameter names and kinds."""
import ast
import inspect
import os
import subprocess
import sys
import types

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)
from ituna import _core

STUB = os.path.join(os.path.dirname(ituna.__file__), "_core.pyi")
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(ituna.__file__)))


def test_stubtest_finds_no_mismatch(tmp_path):
    try:
        import mypy.stubtest  # noqa: F401
    except ImportError:
        why = "mypy is not installed (pip install -r tools/requirements-test.txt)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but " + why)
        pytest.skip(why)
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    env.pop("MYPYPATH", None)
    # cwd: mypy's cache goes to the temporary directory, not the tree
    p = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--concise", "ituna._core"],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert p.returncode == 0, "stubtest:\n" + p.stdout[-6000:] + p.stderr[-2000:]


def _stub_tree():
    with open(STUB, encoding="utf-8") as f:
        tree = ast.parse(f.read(), STUB)
    funcs, classes = {}, {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.setdefault(item.name, []).append(item)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.setdefault(item.target.id, [])
            classes[node.name] = members
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            funcs.setdefault(node.target.id, [])
    return funcs, classes


def _stub_params(fn):
    """[(name, kind)] of a stub def, without self/cls."""
    a = fn.args
    out = [(x.arg, inspect.Parameter.POSITIONAL_ONLY) for x in a.posonlyargs]
    out += [(x.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for x in a.args]
    if a.vararg:
        out.append((a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    out += [(x.arg, inspect.Parameter.KEYWORD_ONLY) for x in a.kwonlyargs]
    if a.kwarg:
        out.append((a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    is_decorated_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if out and not is_decorated_static and out[0][0] in ("self", "cls"):
        out = out[1:]
    return out


def _runtime_params(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind) for p in sig.parameters.values() if p.name not in ("self", "cls", "$self")]


def test_stub_names_match_the_runtime():
    funcs, classes = _stub_tree()
    stub_names = set(funcs) | set(classes)
    runtime_names = {n for n in dir(_core) if not n.startswith("_")}
    assert sorted(runtime_names - stub_names) == [], "public runtime names missing from the stub"
    assert sorted(stub_names - runtime_names - {n for n in stub_names if n.startswith("_")}) == [], \
        "stub names the runtime does not have"
    for cname, members in classes.items():
        cls = getattr(_core, cname)
        own = {n for n in vars(cls) if not n.startswith("_") or n in ("__enter__", "__exit__")}
        if issubclass(cls, BaseException):
            continue  # plain exception classes: nothing of their own to stub
        missing = sorted(own - set(members) - {"n_fields", "n_sequence_fields", "n_unnamed_fields"})
        assert missing == [], "%s: runtime members missing from the stub: %s" % (cname, missing)
        extra = sorted(n for n in members if not hasattr(cls, n))
        assert extra == [], "%s: stub members the runtime does not have: %s" % (cname, extra)


def test_stub_signatures_match_the_runtime():
    funcs, classes = _stub_tree()
    checked, problems = 0, []

    def compare(label, stub_defs, runtime_obj):
        nonlocal checked
        rt = _runtime_params(runtime_obj)
        if not stub_defs or len(stub_defs) > 1:  # overloads: stubtest checks those
            return
        if rt is None:
            problems.append("%s: no runtime signature (give the C docstring a text signature)" % label)
            return
        st = _stub_params(stub_defs[0])
        checked += 1
        if st != rt:
            problems.append("%s: stub %s != runtime %s" % (label, st, rt))

    for name, defs in funcs.items():
        if defs and not name.startswith("_"):
            compare(name, defs, getattr(_core, name))
    for cname, members in classes.items():
        cls = getattr(_core, cname)
        if "__new__" in members:
            compare(cname + "()", members["__new__"], cls)
        for mname, defs in members.items():
            if mname in ("__new__", "__init__") or not defs:
                continue
            if any(isinstance(d, ast.Name) and d.id == "property" for d in defs[0].decorator_list):
                assert isinstance(inspect.getattr_static(cls, mname),
                                  (property, types.GetSetDescriptorType, types.MemberDescriptorType)), \
                    "%s.%s is a property in the stub only" % (cname, mname)
                continue
            rt = inspect.getattr_static(cls, mname)
            if mname in ("__iter__", "__next__") or isinstance(rt, type(object.__init__)):
                continue  # slot wrappers: fixed by the protocol
            compare("%s.%s" % (cname, mname), defs, getattr(cls, mname))
    assert problems == [], "\n".join(problems)
    assert checked >= 40, "only %d signatures compared" % checked
