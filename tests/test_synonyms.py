"""Words the shipped network never trained on ground what their category word grounds.

A scene of a seed no training used; for every object alone in its category, "the <category>." and "the
<held-out name>." ("the sofa." / "the settee.") are grounded by the shipped checkpoint. The held-out
names appear in no training sentence (``liftgs.data.synthetic.vocabulary``), so only the frozen text
encoder's sense of the word can carry the synonym to the object.
"""

from __future__ import annotations

import numpy as np
import pytest

from liftgs.data.synthetic.generate import generate_scene
from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS, MISSPELLINGS
from liftgs.eval.metrics import box_iou_3d
from liftgs.model.loading import DEFAULT_CHECKPOINT, load_liftgs

FRESH_SEED = 4242
"""A dataset seed no shipped model was trained or tuned on."""
SCENES = (8, 9, 18, 19)
"""Val and test scene indices of that seed."""


@pytest.fixture(scope="module")
def groundings():
    model, _ = load_liftgs(DEFAULT_CHECKPOINT, device="cpu")
    pairs = []  # (object box, category word's box, held-out name's box)
    for index in SCENES:
        scene = generate_scene(FRESH_SEED, index).scene
        names = [obj.name for obj in scene.objects.values()]
        alone = [obj for obj in scene.objects.values() if names.count(obj.name) == 1]
        features = model.encode_scene(scene.points, scene.colors)
        for obj in alone:
            held = [name for name in CATEGORY_WORDS[obj.name][1] if name not in MISSPELLINGS]
            texts = [f"the {obj.name}."] + [f"the {name}." for name in held]
            boxes = [p.box.cpu().numpy() for p in model.predict(features, texts)]
            pairs += [(np.asarray(obj.box), boxes[0], box) for box in boxes[1:]]
    return pairs


def test_an_unseen_name_grounds_the_object_its_category_word_grounds(groundings):
    assert len(groundings) >= 10
    agree = [box_iou_3d(word[None], synonym[None])[0] >= 0.5 for _, word, synonym in groundings]
    found_by_word = [box_iou_3d(obj[None], word[None])[0] >= 0.25 for obj, word, _ in groundings]
    found_by_synonym = [box_iou_3d(obj[None], synonym[None])[0] >= 0.25 for obj, _, synonym in groundings]
    assert np.mean(agree) >= 0.6
    assert np.mean(found_by_synonym) >= 0.8 * np.mean(found_by_word)
