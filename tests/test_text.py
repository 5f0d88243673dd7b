"""Tests of the text encoders: real MiniLM (offline), tiny random HF BERT and tiny random open_clip CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from liftgs.model.text import (
    HFTextEncoder,
    MiniLMTextEncoder,
    OpenCLIPTextEncoder,
    build_text_encoder,
    minilm_model_dir,
)
from liftgs.model.types import is_special_token

WORDS = ["the", "red", "chair", "a", "lamp", "near", "table", "blue", "sofa", "window", "left", "of"]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT (32-d, 32 positions) with a word vocabulary, saved to disk."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_clip_name(tmp_path_factory) -> str:
    """Registers a tiny open_clip model config (32-d text tower, context 12) and returns its name."""
    import open_clip

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path_factory.mktemp("clip-config") / "liftgs-tiny-clip.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "liftgs-tiny-clip"


@pytest.fixture(scope="module")
def minilm() -> MiniLMTextEncoder:
    return MiniLMTextEncoder()


def test_minilm_tokens_mask_and_mean_pooling(minilm):
    assert (minilm_model_dir() / "config.json").is_file()
    out = minilm.encode(["the red chair next to the table", "a lamp"])
    assert out.tokens.shape == (2, 9, 384) and out.pooled.shape == (2, 384)
    assert out.mask.sum(1).tolist() == [9, 4]
    assert out.token_strings[1] == ["[CLS]", "a", "lamp", "[SEP]"]
    assert (out.tokens[1, 4:] == 0).all()
    assert torch.allclose(out.pooled[1], out.tokens[1, :4].mean(0), atol=1e-5)
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.model.parameters())
    assert not out.tokens.requires_grad


def test_minilm_embeddings_are_semantic(minilm):
    pooled = torch.nn.functional.normalize(
        minilm.encode(["a red chair", "a crimson seat", "the window"]).pooled
    )
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]


def test_cache_returns_the_same_features_without_recomputing(minilm, monkeypatch):
    first = minilm.encode(["the blue sofa"])
    calls = []
    original = minilm._encode_batch
    monkeypatch.setattr(minilm, "_encode_batch", lambda texts: calls.append(texts) or original(texts))
    again = minilm.encode(["a lamp near the sofa", "the blue sofa"])
    assert calls == [["a lamp near the sofa"]]
    assert torch.equal(again.tokens[1, : first.tokens.shape[1]], first.tokens[0])


def test_lru_cache_evicts_the_oldest(tiny_bert_dir):
    encoder = HFTextEncoder(tiny_bert_dir, cache_size=2)
    encoder.encode(["the red chair"])
    encoder.encode(["a lamp"])
    encoder.encode(["the red chair"])  # refreshes "the red chair"
    encoder.encode(["blue sofa"])
    assert list(encoder._cache) == ["the red chair", "blue sofa"]


def test_overlong_query_is_truncated_with_a_warning(minilm):
    with pytest.warns(UserWarning, match="truncated to the text encoder's maximum of 256"):
        out = minilm.encode(["chair " * 300])
    assert out.tokens.shape[1] == 256 and out.token_strings[0][-1] == "[SEP]"


@pytest.mark.parametrize("texts", [[""], ["   "], ["a lamp", "\n"], [], "a lamp", [3]])
def test_bad_queries_raise(minilm, texts):
    with pytest.raises(ValueError):
        minilm.encode(texts)


def test_tiny_hf_encoder_shapes_and_truncation(tiny_bert_dir):
    encoder = build_text_encoder(f"hf:{tiny_bert_dir}")
    assert isinstance(encoder, HFTextEncoder) and encoder.dim == 32 and encoder.max_length == 32
    out = encoder.encode(["the red chair", "a lamp near the blue sofa left of the window"])
    assert out.tokens.shape == (2, 12, 32) and out.mask.sum(1).tolist() == [5, 12]
    assert out.token_strings[0] == ["[CLS]", "the", "red", "chair", "[SEP]"]
    with pytest.warns(UserWarning, match="truncated"):
        assert encoder.encode(["the " * 40]).tokens.shape == (1, 32, 32)


def test_hf_encoder_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFTextEncoder(tmp_path / "nothing")


def test_tiny_open_clip_tokens_in_the_joint_space(tiny_clip_name):
    import open_clip

    torch.manual_seed(0)
    encoder = OpenCLIPTextEncoder(tiny_clip_name)
    assert encoder.dim == 16 and encoder.max_length == 12  # embed_dim (joint space), not the width 32
    out = encoder.encode(["a red chair", "the lamp near the window"])
    assert out.tokens.shape == (2, 7, 16) and out.mask.sum(1).tolist() == [5, 7]
    assert out.token_strings[0] == ["<start_of_text>", "a", "red", "chair", "<end_of_text>"]
    assert torch.allclose(out.pooled[0], out.tokens[0, 4])  # the end-of-text token
    with torch.no_grad():  # ... is CLIP's own text embedding, comparable with its image embeddings
        clip_text = encoder.model.encode_text(open_clip.get_tokenizer(tiny_clip_name)(["a red chair"]))
    assert torch.allclose(out.pooled[0], clip_text[0], atol=1e-5)
    # causal tower: a token's embedding depends only on the tokens before it
    assert torch.allclose(out.tokens[0, :2], encoder.encode(["a blue sofa"]).tokens[0, :2], atol=1e-6)
    assert not torch.allclose(out.tokens[0, 2], out.tokens[1, 2])
    with pytest.warns(UserWarning, match="truncated"):
        assert encoder.encode(["chair " * 20]).tokens.shape == (1, 12, 16)


def test_open_clip_local_checkpoint(tiny_clip_name, tmp_path):
    torch.manual_seed(1)
    source = OpenCLIPTextEncoder(tiny_clip_name)
    path = tmp_path / "tiny-clip.pt"
    torch.save(source.model.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_text_encoder(f"open_clip:{tiny_clip_name}:{path}")
    assert torch.allclose(loaded.encode(["a lamp"]).tokens, source.encode(["a lamp"]).tokens)
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint"):
        OpenCLIPTextEncoder(tiny_clip_name, checkpoint_path=tmp_path / "missing.pt")


def test_unknown_spec():
    with pytest.raises(ValueError, match="text encoder spec"):
        build_text_encoder("word2vec")


def test_special_tokens_are_the_bracketed_ones():
    special = ["[CLS]", "[SEP]", "<start_of_text>", "<end_of_text>", "<segment>"]
    assert all(is_special_token(token) for token in special)
    assert not any(is_special_token(token) for token in ["trash", "can", "##s", "lamp</w>"])
