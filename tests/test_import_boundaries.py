"""Import boundaries of the package (issue #14), checked on the source with ``ast``.

* ``model/`` is the bottom layer: it imports none of train/evaluate/tune/report/trading/
  serve/pipeline. ``train/`` imports neither evaluate/ nor tune/ nor report/ (nor the
  pipeline that runs them): what both need (collapse measures, SIGReg views) lives in
  ``model/``. ``evaluate/`` does not import tune/ (which builds on it) or report/.
* No module imports another module's private (``_name``) helpers.
* No module in ``train/``, ``evaluate/`` or ``model/`` imports inside a function, except
  the entries of :data:`ALLOWLIST` (optional heavy dependencies, each with its reason).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "marketjepa"

FORBIDDEN = {
    "model": ("evaluate", "train", "tune", "report", "trading", "serve", "pipeline"),
    "train": ("evaluate", "tune", "report", "pipeline"),
    "evaluate": ("tune", "report"),
}
NO_FUNCTION_IMPORTS = ("train", "evaluate", "model")
# (module path relative to src/marketjepa, function, imported module) -> why it is allowed.
ALLOWLIST: dict[tuple[str, str, str], str] = {}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (p.relative_to(SRC).as_posix(), ast.parse(p.read_text(), filename=str(p)))
        for p in sorted(SRC.rglob("*.py"))
    ]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute module names an import statement loads (relative imports are not used)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module or ""]


def _in_function_imports(tree: ast.Module) -> list[tuple[str, str, int]]:
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found += [(fn.name, name, node.lineno) for name in _imported(node)]
    return found


def _layer_violations(rel: str, tree: ast.Module) -> list[str]:
    layer = rel.split("/")[0]
    banned = tuple(f"marketjepa.{b}" for b in FORBIDDEN.get(layer, ()))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(node):
                if name in banned or name.startswith(tuple(b + "." for b in banned)):
                    out.append(f"{rel}:{node.lineno} imports {name}")
    return out


def test_layers_do_not_import_upwards():
    bad = [v for rel, tree in _modules() for v in _layer_violations(rel, tree)]
    assert not bad, "layer boundary crossed:\n" + "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    bad = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("marketjepa"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [n for n in private if not n.startswith("__")]
                bad += [f"{rel}:{node.lineno} imports {node.module}.{n}" for n in private]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_no_imports_inside_functions_in_train_evaluate_model():
    allowed = set(ALLOWLIST)
    bad, used = [], set()
    for rel, tree in _modules():
        if rel.split("/")[0] not in NO_FUNCTION_IMPORTS:
            continue
        for fn, name, line in _in_function_imports(tree):
            if (rel, fn, name) in allowed:
                used.add((rel, fn, name))
            else:
                bad.append(f"{rel}:{line} in {fn}() imports {name}")
    assert not bad, "imports inside functions (move them to the top):\n" + "\n".join(bad)
    stale = sorted(allowed - used)
    assert not stale, f"allow-list entries no longer needed, remove them: {stale}"


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("train/x.py", "from marketjepa.evaluate.probes import run_probes\n", 1),
        ("train/x.py", "import marketjepa.tune.sweep\n", 1),
        ("train/x.py", "from marketjepa.model.collapse import verdict\n", 0),
        ("model/x.py", "from marketjepa.train.checkpoint import load_model\n", 1),
        ("evaluate/x.py", "from marketjepa.train.checkpoint import load_model\n", 0),
    ],
)
def test_layer_check_catches_a_forbidden_import(rel, source, expected):
    assert len(_layer_violations(rel, ast.parse(source))) == expected


def test_in_function_import_check_sees_nested_imports():
    tree = ast.parse("def f():\n    if True:\n        from marketjepa.data import windows\n")
    assert _in_function_imports(tree) == [("f", "marketjepa.data", 3)]
