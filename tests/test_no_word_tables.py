"""No hand-written word -> category table on the model's path: the network, its losses, training, the
grounding step, evaluation and the viewer read words only through the text encoder.

The benchmark generator's dictionary (``liftgs.data.synthetic.vocabulary``) is the only place that knows
which words name which category; these tests fail if any module on the model's path spells out a
synonym, lists category names, or imports that dictionary.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS, COLOR_WORDS

ROOT = Path(__file__).resolve().parents[1]
MODEL_PATH = [
    *sorted((ROOT / "liftgs" / "model").glob("*.py")),
    *sorted((ROOT / "liftgs" / "losses").glob("*.py")),
    *sorted((ROOT / "liftgs" / "train").glob("*.py")),
    *sorted((ROOT / "liftgs" / "eval").glob("*.py")),
    *sorted((ROOT / "liftgs" / "nerfstudio").glob("*.py")),
    ROOT / "liftgs" / "ground.py",
    ROOT / "liftgs" / "ground_file.py",
    *sorted((ROOT / "app").glob("*.py")),
]
SYNONYMS = {
    w for table in (CATEGORY_WORDS, COLOR_WORDS) for seen, held in table.values() for w in (*seen[1:], *held)
}
CATEGORY_NAMES = set(CATEGORY_WORDS)


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value.lower() for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


LOOKUPS = ast.Dict | ast.Set | ast.List | ast.Tuple | ast.Compare | ast.Subscript | ast.match_case
"""Where a word table or a word test would live: literals, comparisons, indexing, match cases."""


def test_the_model_path_has_no_word_table_or_word_test():
    assert len(MODEL_PATH) > 40
    for path in MODEL_PATH:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, LOOKUPS):
                continue
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            words = set(_strings(node))
            assert not words & SYNONYMS, f"{where} tests or lists {sorted(words & SYNONYMS)}"
            assert len(words & CATEGORY_NAMES) < 2, (
                f"{where} lists categories {sorted(words & CATEGORY_NAMES)}"
            )


def test_the_network_losses_and_training_do_not_import_the_generators_dictionary():
    code = (
        "import sys, liftgs.model, liftgs.losses, liftgs.train.step, liftgs.train.batch, liftgs.ground;"
        "print(sorted(m for m in sys.modules if m.startswith('liftgs.data.synthetic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
