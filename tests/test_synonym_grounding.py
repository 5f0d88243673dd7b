"""An unseen synonym reaches the same object as its category word: a toy network with the real MiniLM text
encoder, trained only on the benchmark's seen names of four look-alike grey boxes' categories, grounds the
held-out names ("settee", "carton", ...) on the object their category word grounds. The object can only be
told apart through the text, so the held-out word has to land through its meaning in the encoder's space;
the network has no word table (``test_no_word_tables``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS
from liftgs.model import LiftGS
from liftgs.model.text import MiniLMTextEncoder
from tests.support.network import tiny_config
from tests.support.scenes import voxel_fraction

CATEGORIES = ("sofa", "box", "bed", "plant")
CENTRES = ((1.0, 1.0), (3.0, 1.0), (1.0, 3.0), (3.0, 3.0))
"""Floor positions (metres) of the four objects, one per category: identical grey cubes of 0.5 m."""
TRAIN_FRAMES = ("the {}", "find the {}.", "the {} in the room")
TEST_FRAMES = ("the {}", "show me the {}")
"""Query shapes at test time; "show me ..." is never trained on."""


def toy_room(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 4 m x 4 m floor and one grey cube per category: points [P, 3] metres, colors [P, 3], object index
    per point [P] (-1 = floor)."""
    g = torch.Generator().manual_seed(seed)
    floor = torch.rand(1500, 3, generator=g) * torch.tensor([4.0, 4.0, 0.0])
    cubes = [torch.tensor([x, y, 0.25]) + (torch.rand(300, 3, generator=g) - 0.5) * 0.5 for x, y in CENTRES]
    points = torch.cat([floor, *cubes])
    labels = torch.cat([torch.full((len(floor),), -1), *[torch.full((300,), i) for i in range(len(cubes))]])
    return points, torch.full_like(points, 0.5), labels


def voxel_objects(source_to_voxel: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[K, V] bool: voxels whose points are mostly object k's."""
    return torch.stack(
        [voxel_fraction(source_to_voxel, (labels == k).numpy()) > 0.5 for k in range(len(CATEGORIES))]
    )


def train_toy(steps: int = 150) -> LiftGS:
    """The tiny network (token noise on) trained with per-voxel BCE on every decoder layer and query, on
    sentences that name each object by its category's seen words only."""
    torch.manual_seed(0)
    config = tiny_config()
    config.decoder.token_noise = 0.5
    model = LiftGS(config, text_encoder=MiniLMTextEncoder()).train()
    points, colors, labels = toy_room()
    sentences = [
        (frame.format(word), k)
        for k, category in enumerate(CATEGORIES)
        for word in CATEGORY_WORDS[category][0]
        for frame in TRAIN_FRAMES
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = [sentences[i] for i in torch.randint(len(sentences), (8,), generator=g).tolist()]
        scene = model.encode_scene(points, colors)
        objects = voxel_objects(scene.source_to_voxel, labels).float()
        targets = objects[[k for _, k in batch]].unsqueeze(1)  # [B, 1, V]
        out = model.ground(scene, model.encode_text([text for text, _ in batch]))
        loss = sum(
            F.binary_cross_entropy_with_logits(layer["mask_logits"], targets.expand_as(layer["mask_logits"]))
            for layer in out.aux
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_held_out_names_ground_the_object_their_category_word_grounds():
    model = train_toy()
    points, colors, labels = toy_room()
    scene = model.encode_scene(points, colors)
    objects = voxel_objects(scene.source_to_voxel, labels)

    def grounded_object(text: str) -> int:
        mask = model.predict(scene, [text])[0].mask
        return int(((objects & mask).sum(1) / objects.sum(1)).argmax())

    agree = []
    for k, category in enumerate(CATEGORIES):
        for frame in TEST_FRAMES:
            assert grounded_object(frame.format(category)) == k, frame.format(category)
            for word in CATEGORY_WORDS[category][1]:
                agree.append(grounded_object(frame.format(word)) == k)
    assert sum(agree) >= len(agree) - 1, f"{sum(agree)} of {len(agree)} held-out names agree"
