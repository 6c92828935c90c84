"""Un-padded Whisper: padding in a batch does not leak into any cut's loss or decoding; off means plain
Whisper; a model trained un-padded is decoded un-padded by eval, transcribe and both exports."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from lhotse import CutSet, Recording, load_manifest
from transformers import WhisperForConditionalGeneration

from egrecho_inner.constants import IGNORE_INDEX, N_FRAMES
from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
from egrecho_inner.decode import (
    GenArgs,
    generate_batch,
    generate_kwargs,
    long_form,
    long_form_batch,
    transcribe_batch,
    transcribe_features,
)
from egrecho_inner.deploy.export_ct2 import export_ct2
from egrecho_inner.deploy.export_onnx import export_onnx
from egrecho_inner.deploy.onnx_decode import OnnxWhisper
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.errors import MissingInputError
from egrecho_inner.evaluate import evaluate
from egrecho_inner.features import make_fbank_extractor, pad_to_longest, pad_to_whisper_input
from egrecho_inner.model import load_whisper, save_processor
from egrecho_inner.unpadded import (
    UNPADDED_KEY,
    enable_unpadded_inputs,
    mark_trained_unpadded,
    resolve_unpadded,
    trained_unpadded,
)
from tests.conftest import espeak


def per_cut_loss(model, batch) -> torch.Tensor:
    """Mean cross-entropy of each row's labels."""
    kwargs = {"attention_mask": batch["attention_mask"]} if "attention_mask" in batch else {}
    with torch.inference_mode():
        logits = model(input_features=batch["input_features"], labels=batch["labels"], **kwargs).logits
    labels = batch["labels"]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    return losses.sum(1) / (labels != IGNORE_INDEX).sum(1)


@pytest.fixture(scope="module")
def cuts(prepared_demo) -> CutSet:
    cutset = load_manifest(prepared_demo / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    cutset = cutset.with_features_path_prefix(str(prepared_demo)).sort_by_duration()
    picked = CutSet.from_cuts([cutset[0], cutset[len(cutset) // 2], cutset[len(cutset) - 1]])
    assert len({c.num_frames for c in picked}) == 3  # three different lengths
    return picked


def test_padding_does_not_leak(cuts, tiny_model, whisper_tokenizer):
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model).eval()
    enable_unpadded_inputs(model)
    dataset = WhisperDataset(WhisperLabeler(whisper_tokenizer), unpadded=True)
    batch = dataset[cuts]
    longest = max(c.num_frames for c in cuts)
    assert batch["input_features"].shape[-1] == longest + longest % 2 < 3000
    together = per_cut_loss(model, batch)
    alone = torch.cat([per_cut_loss(model, dataset[CutSet.from_cuts([cut])]) for cut in cuts])
    assert torch.allclose(together, alone, atol=1e-4), (together, alone)
    # without the masks the padding would change the shorter cuts' losses
    unmasked = {k: v for k, v in batch.items() if k != "attention_mask"}
    assert not torch.allclose(per_cut_loss(model, unmasked)[:2], alone[:2], atol=1e-4)


def test_off_is_plain_whisper(cuts, tiny_model, whisper_tokenizer):
    plain = WhisperForConditionalGeneration.from_pretrained(tiny_model).eval()
    adapted = copy.deepcopy(plain)
    enable_unpadded_inputs(adapted)
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer))[cuts]
    assert batch["input_features"].shape[-1] == 3000 and "attention_mask" not in batch
    assert torch.allclose(per_cut_loss(plain, batch), per_cut_loss(adapted, batch), atol=1e-6)


# --- decoding un-padded: the model says how it was trained, every engine honours it ---------------------


@pytest.fixture(scope="module")
def unpadded_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model saved as an un-padded fine-tune saves it (its generation config records it)."""
    model, processor = load_whisper(str(tiny_model))
    mark_trained_unpadded(model, True)
    out = tmp_path_factory.mktemp("unpadded") / "tiny-unpadded"
    model.save_pretrained(out)
    save_processor(processor, out)
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    """Three utterances of different lengths."""
    root = tmp_path_factory.mktemp("wavs")
    texts = ["xin chào", "xin chào các bạn", "hôm nay trời đẹp quá, chúng ta đi chơi nhé"]
    return [espeak(root / f"u{i}.wav", text, speed=130) for i, text in enumerate(texts)]


def fbank(wav: Path) -> torch.Tensor:
    audio = Recording.from_file(wav).resample(16000).load_audio()[0]
    return torch.as_tensor(make_fbank_extractor(80).extract(audio, 16000))  # (T, n_mels)


@pytest.mark.parametrize("num_beams,language", [(1, "vi"), (3, "vi"), (1, None)])
def test_mixed_batch_decodes_like_each_alone(unpadded_model, wavs, num_beams, language):
    model, processor = load_whisper(str(unpadded_model))
    model.eval()
    enable_unpadded_inputs(model)
    frames_seen = []
    model.get_encoder().register_forward_pre_hook(lambda module, args: frames_seen.append(args[0].shape[-1]))
    feats = [fbank(w) for w in wavs]
    batch, mask = pad_to_longest(feats)  # (B, n_mels, longest), (B, longest)
    longest = batch.shape[-1]
    kwargs = generate_kwargs(GenArgs(num_beams=num_beams, max_new_tokens=12), processor, "cpu")
    together, detected = transcribe_batch(model, processor, batch, [language] * 3, kwargs, mask, unpadded=True)
    assert frames_seen == [longest] and longest < N_FRAMES  # the encoder ran on the batch's length, not 3000
    alone = [transcribe_features(model, processor, f, language, kwargs, unpadded=True, device="cpu") for f in feats]
    assert together == alone and all(together)
    alone_detected = [transcribe_batch(model, processor, pad_to_longest([f])[0], [language], kwargs,
                                       pad_to_longest([f])[1], unpadded=True)[1][0] for f in feats]
    assert detected == alone_detected


def test_long_audio_unpadded_windows(unpadded_model, wavs):
    """40 s: decoded sequentially in windows (seeking.py); every window but the last is 30 s, the last one,
    shorter, runs un-padded at its own length."""
    model, processor = load_whisper(str(unpadded_model))
    model.eval()
    enable_unpadded_inputs(model)
    frames_seen = []
    model.get_encoder().register_forward_pre_hook(lambda module, args: frames_seen.append(args[0].shape[-1]))
    feats = fbank(wavs[2])
    feats = feats.repeat(int(np.ceil(4000 / feats.shape[0])), 1)[:4000]  # 40 s
    kwargs = generate_kwargs(GenArgs(max_new_tokens=12), processor, "cpu")
    text = transcribe_features(model, processor, feats, "vi", kwargs, unpadded=True, device="cpu")
    assert frames_seen[0] == N_FRAMES and set(frames_seen[:-1]) == {N_FRAMES} and frames_seen[-1] < N_FRAMES
    assert text


@pytest.mark.parametrize("unpadded", [True, False])
def test_long_form_batch_decodes_like_each_alone(unpadded_model, tiny_model, wavs, unpadded):
    """Recordings of 65, 40 and 12 s decoded in long form together (egrecho eval: the next window of each in
    one batch, finished ones leaving it) get the segments and windows each gets alone; un-padded and padded,
    with a given language and a detected one."""
    model, processor = load_whisper(str(unpadded_model if unpadded else tiny_model))
    model.eval()
    if unpadded:
        enable_unpadded_inputs(model)
    batch_sizes = []
    model.get_encoder().register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    speech = torch.cat([fbank(w) for w in wavs])
    feats = [speech.repeat(int(np.ceil(n / speech.shape[0])), 1)[:n] for n in (6500, 4000, 1200)]
    kwargs = generate_kwargs(GenArgs(max_new_tokens=12), processor, "cpu")
    languages = ["vi", None, "vi"]
    together = long_form_batch(model, processor, feats, languages, kwargs, unpadded, "cpu")
    rounds = list(batch_sizes)  # windows per generate call
    assert rounds[0] == 3 and rounds[-1] == 1 and rounds == sorted(rounds, reverse=True)
    assert sum(len(r.windows_well_formed) for r in together) == sum(rounds)  # each window decoded once
    alone = [long_form(model, processor, f, language, kwargs, unpadded, "cpu") for f, language in zip(feats, languages)]
    assert [r.segments for r in together] == [r.segments for r in alone]
    assert [r.windows_well_formed for r in together] == [r.windows_well_formed for r in alone]
    assert [r.text for r in together] == [r.text for r in alone] and all(r.text for r in together)


def test_exports_decode_unpadded_like_transformers(unpadded_model, wavs, tmp_path):
    export_onnx(str(unpadded_model), str(tmp_path / "onnx"))
    export_ct2(str(unpadded_model), str(tmp_path / "ct2"))
    assert trained_unpadded(json.loads((tmp_path / "ct2/generation_config.json").read_text()))
    model = WhisperForConditionalGeneration.from_pretrained(unpadded_model).eval()
    enable_unpadded_inputs(model)
    runtime = OnnxWhisper(str(tmp_path / "onnx"))
    ct2 = ctranslate2.models.Whisper(str(tmp_path / "ct2"), device="cpu", compute_type="float32")
    prompt = runtime.prompt("vi")
    for wav in wavs:  # each utterance at its own length: the exported encoders take any even frame count
        feats = fbank(wav)
        feats = pad_to_whisper_input(feats, feats.shape[0] + feats.shape[0] % 2)[None]  # (1, n_mels, T)
        with torch.inference_mode():
            hidden = model.get_encoder()(feats).last_hidden_state.numpy()
            expected, _ = generate_batch(model, feats, None, True, "vi", task="transcribe", max_new_tokens=30)
        expected = [t for t in expected[0].tolist() if t != runtime.generation["eos_token_id"]]
        ours = runtime.encode(feats.numpy())
        assert ours.shape == hidden.shape and ours.shape[1] < 1500 and np.abs(ours - hidden).max() < 1e-4
        assert runtime.greedy(ours, prompt, max_new_tokens=30)[0] == expected and len(expected) >= 5
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
        # CTranslate2 generates at most max_length / 2 tokens (OpenAI's sample_len = n_text_ctx // 2)
        assert ct2.generate(storage, [prompt], beam_size=1, max_length=60)[0].sequences_ids[0] == expected
    # transcribe: every engine reads the property from its dir and decodes un-padded (the random model's
    # outputs run to the 448-token limit, where float differences may tell them apart: compare their start)
    files = [str(w) for w in wavs]
    hf = transcribe(str(unpadded_model), files, language="vi")
    padded = transcribe(str(unpadded_model), files, language="vi", remove_whisper_encoder_input_length_restriction=False)
    assert padded != hf
    for engine, path in (("onnx", tmp_path / "onnx"), ("ct2", tmp_path / "ct2")):
        precision = {"compute_type": "float32"} if engine == "ct2" else {}  # onnx refuses an option it would ignore
        theirs = transcribe(str(path), files, engine=engine, language="vi", **precision)
        assert [(u, t.split()[:10]) for u, t in theirs] == [(u, t.split()[:10]) for u, t in hf], engine



def test_ct2_unpadded_names_a_missing_generation_config(unpadded_model, wavs, tmp_path):
    """CTranslate2 decoding of an un-padded model builds its prompts from generation_config.json: a dir without
    one is named, not a KeyError from inside."""
    export_ct2(str(unpadded_model), str(tmp_path / "ct2"))
    (tmp_path / "ct2/generation_config.json").unlink()
    with pytest.raises(MissingInputError, match="no generation_config.json"):
        transcribe(str(tmp_path / "ct2"), [str(wavs[0])], engine="ct2", compute_type="float32",
                   remove_whisper_encoder_input_length_restriction=True)

def test_decoded_as_trained_unless_forced(caplog):
    padded, unpadded = {}, {UNPADDED_KEY: True}
    assert resolve_unpadded(padded, None, "m") is False and resolve_unpadded(unpadded, None, "m") is True
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert resolve_unpadded(padded, True, "m-padded") is True
        assert resolve_unpadded(unpadded, False, "m-unpadded") is False
    messages = [r.getMessage() for r in caplog.records]
    assert "m-padded was trained on inputs padded to 30 s" in messages[0]
    assert "m-unpadded was trained on inputs un-padded" in messages[1]


def test_eval_reads_the_model(prepared_demo, tiny_model, unpadded_model, tmp_path, monkeypatch):
    monkeypatch.chdir(prepared_demo)
    common = dict(num_workers=0, max_cuts=2, gen_args=GenArgs(max_new_tokens=6))
    assert evaluate(model_path=str(tiny_model), outdir=str(tmp_path / "a"), **common)["unpadded"] is False
    assert evaluate(model_path=str(unpadded_model), outdir=str(tmp_path / "b"), **common)["unpadded"] is True
    forced = evaluate(model_path=str(tiny_model), outdir=str(tmp_path / "c"),
                      remove_whisper_encoder_input_length_restriction=True, **common)
    assert forced["unpadded"] is True
