"""The data layer stays numpy-only, and model code does not import pseudo-labelling code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import liftgs

PACKAGE = Path(liftgs.__file__).parent
DATA_LAYER = sorted((PACKAGE / "data").rglob("*.py")) + [PACKAGE / "scene.py"]
ABOVE_THE_DATA_LAYER = (
    "torch",
    "liftgs.model",
    "liftgs.pseudo",
    "liftgs.train",
    "liftgs.nerfstudio",
    "liftgs.eval",
)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_importing_the_data_layer_loads_no_torch_and_no_model_or_labeller():
    code = (
        "import sys, liftgs.data, liftgs.data.synthetic.generate, liftgs.data.point_features, liftgs.scene; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('liftgs.model', 'liftgs.pseudo'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_no_data_layer_module_imports_model_training_or_pseudo_labelling_code():
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in _imports(path) if _is_under(n, ABOVE_THE_DATA_LAYER)
        )
        for path in DATA_LAYER
    }
    assert not {path: names for path, names in offending.items() if names}


def test_model_code_does_not_import_pseudo_labelling_code():
    offending = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if _is_under(n, ("liftgs.pseudo",)))
        for path in sorted((PACKAGE / "model").rglob("*.py"))
    }
    assert not {path: names for path, names in offending.items() if names}
