"""WhisperDecoder (egrecho_inner/decoder.py): one loaded model whose batch, single-utterance and long-form
paths give the texts the plain functions of decode.py give, and the one place eval, pseudo-label and transcribe
load a model for decoding."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from egrecho_inner.decode import GenArgs, generate_kwargs, transcribe_batch
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
from egrecho_inner.errors import InputError
from egrecho_inner.features import pad_batch, pad_to_longest
from egrecho_inner.model import load_whisper
from egrecho_inner.unpadded import enable_unpadded_inputs
from tests.test_static_decoder import feats  # noqa: F401  (fixture: three utterances' fbank)

GEN = GenArgs(max_new_tokens=12)


@pytest.mark.parametrize("unpadded", [True, False])
def test_decoder_equals_the_plain_functions(tiny_model, feats, unpadded):  # noqa: F811
    decoder = WhisperDecoder.load(DecodeArgs(str(tiny_model), "cpu", unpadded=unpadded, gen_args=GEN))
    assert decoder.unpadded is unpadded and decoder.num_mel_bins == 80
    model, processor = load_whisper(str(tiny_model))
    model.eval()
    if unpadded:
        enable_unpadded_inputs(model)
    features, mask = pad_to_longest(feats) if unpadded else (pad_batch(feats), None)
    expected = transcribe_batch(model, processor, features, ["vi"] * 3, generate_kwargs(GEN, processor, "cpu"), mask,
                                unpadded)
    assert decoder.transcribe_batch(features, ["vi"] * 3, mask) == expected and all(expected[0])
    # one utterance alone decodes as in the batch (un-padded: each as if alone; padded: the same 30 s input)
    assert [decoder.transcribe_features(f, "vi") for f in feats] == expected[0]
    together = decoder.transcribe_long(list(feats), ["vi"] * 3)
    assert [r.segments for r in together] == [decoder.transcribe_long([f], ["vi"])[0].segments for f in feats]
    assert all(r.windows_well_formed for r in together)  # each clip is one window, decoded once
    assert decoder.seconds > 0


def test_half_precision_on_cpu_falls_back_and_bad_dtype_is_refused(tiny_model, caplog):
    with caplog.at_level(logging.WARNING):
        decoder = WhisperDecoder.load(DecodeArgs(str(tiny_model), "cpu", dtype="float16"))
    assert decoder.dtype == torch.float32 and "needs a GPU" in caplog.text
    with pytest.raises(InputError, match="dtype must be one of"):
        WhisperDecoder.load(DecodeArgs(str(tiny_model), "cpu", dtype="fp8"))


def test_pseudo_label_does_not_import_evaluate():
    """One command no longer depends on another: pseudo-label decodes through decoder.py, not evaluate.py."""
    code = "import sys, egrecho_inner.pseudo_label; print('egrecho_inner.evaluate' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == \
        "False"
