"""The static decoder (a static KV cache, the decoding step compiled on a GPU) gives today's tokens: padded and
un-padded, greedy and beam, short clips and long form; un-padded batches fall into few shapes, so a compiled
step compiles once per bucket, not once per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import Recording
from transformers.generation import CompileConfig

from egrecho_inner.decode import (
    STATIC_FRAME_BUCKET,
    GenArgs,
    generate_kwargs,
    long_form_batch,
    transcribe_batch,
)
from egrecho_inner.features import make_fbank_extractor, pad_batch, pad_to_longest
from egrecho_inner.model import load_whisper
from egrecho_inner.unpadded import enable_unpadded_inputs
from tests.conftest import espeak


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> list[torch.Tensor]:
    """Fbank ``(T, n_mels)`` of three utterances of different lengths."""
    root = tmp_path_factory.mktemp("static")
    texts = ["xin chào", "xin chào các bạn", "hôm nay trời đẹp quá, chúng ta đi chơi nhé"]
    out = []
    for i, text in enumerate(texts):
        audio = Recording.from_file(espeak(root / f"u{i}.wav", text, speed=130)).resample(16000).load_audio()[0]
        out.append(torch.as_tensor(make_fbank_extractor(80).extract(audio, 16000)))
    return out


def load(path: Path, unpadded: bool):
    model, processor = load_whisper(str(path))
    model.eval()
    if unpadded:
        enable_unpadded_inputs(model)
    return model, processor


def batch(feats: list[torch.Tensor], unpadded: bool):
    return pad_to_longest(feats) if unpadded else (pad_batch(feats), None)


@pytest.mark.parametrize("unpadded,num_beams,language", [(True, 1, "vi"), (True, 3, "vi"), (False, 1, None),
                                                         (False, 3, "vi")])
def test_static_decoder_gives_the_same_text(tiny_model, feats, unpadded, num_beams, language):
    model, processor = load(tiny_model, unpadded)
    features, mask = batch(feats, unpadded)
    out = {}
    for static in (False, True):
        kwargs = generate_kwargs(GenArgs(num_beams=num_beams, max_new_tokens=12, static_decoder=static), processor,
                                 "cpu")
        assert ("cache_implementation" in kwargs) == static
        out[static] = transcribe_batch(model, processor, features, [language] * 3, kwargs, mask, unpadded)
    assert out[True] == out[False] and all(out[True][0])


@pytest.mark.parametrize("unpadded", [True, False])
def test_static_decoder_long_form(tiny_model, feats, unpadded):
    model, processor = load(tiny_model, unpadded)
    speech = torch.cat(feats)
    long = [speech.repeat(int(np.ceil(n / speech.shape[0])), 1)[:n] for n in (4000, 1200)]
    results = {}
    for static in (False, True):
        kwargs = generate_kwargs(GenArgs(max_new_tokens=12, static_decoder=static), processor, "cpu")
        results[static] = long_form_batch(model, processor, long, ["vi", None], kwargs, unpadded, "cpu")
    assert [r.segments for r in results[True]] == [r.segments for r in results[False]]
    assert all(r.text for r in results[True])


def test_static_decoder_is_the_default_on_cuda_only(tiny_model):
    _, processor = load_whisper(str(tiny_model))
    assert generate_kwargs(GenArgs(), processor, "cuda")["cache_implementation"] == "static"
    assert "cache_implementation" not in generate_kwargs(GenArgs(), processor, "cpu")
    assert "cache_implementation" not in generate_kwargs(GenArgs(static_decoder=False), processor, "cuda")


def test_compiled_step_compiles_once_per_length_bucket(tiny_model, feats):
    """The decoding step compiled as on a GPU (here with the eager backend, whole graph required: no graph break
    in the un-padded masks): batches of other lengths in the same bucket reuse the graph, and the tokens match
    the uncompiled decoder's."""
    model, processor = load(tiny_model, True)
    config = CompileConfig(backend="eager", fullgraph=True)
    config._compile_all_devices = True  # transformers compiles the step on CUDA only by itself
    static = {**generate_kwargs(GenArgs(max_new_tokens=12, static_decoder=True), processor, "cpu"),
              "compile_config": config}
    plain = generate_kwargs(GenArgs(max_new_tokens=12, static_decoder=False), processor, "cpu")
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    lengths = set()
    for end in (-10, -30, -50):  # three batches whose longest cut differs, all under one bucket
        cut = [f if i != 2 else f[:end] for i, f in enumerate(feats)]
        lengths.add(max(f.shape[0] for f in cut))
        features, mask = pad_to_longest(cut)
        got = transcribe_batch(model, processor, features, ["vi"] * 3, static, mask, True)
        assert got == transcribe_batch(model, processor, features, ["vi"] * 3, plain, mask, True)
    assert len(lengths) == 3 and len({-(-n // STATIC_FRAME_BUCKET) for n in lengths}) == 1
    assert counters["stats"]["unique_graphs"] == 1
