"""Real speech from Debian's Asterisk prompt packages (local/make_real_data.py): prompt-text clean-up, splits
disjoint by text, and G.722 decoding checked against the same prompts' separately packaged 8 kHz recordings."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from scipy.signal import resample_poly, stft

from egrecho_inner.debian import fetch_packages
from egrecho_inner.scoring import normalize_text
from egrecho_inner.splits import split_by_text, words
from tests.test_demo_data import load_script

real = load_script("make_real_data")


@pytest.mark.parametrize("name, text, expected", [
    ("conf-getpin", "Prego inserire il numero pin della conferenza.", ("Prego inserire il numero pin della conferenza.", "")),
    ("confbridge-remove-last-out", "...to remove the participant who most recently joined.",
     ("to remove the participant who most recently joined.", "")),
    ("conf-enteringno", "Stai entrando nella conferenza numero…", ("Stai entrando nella conferenza numero", "")),
    ("confbridge-pin", 'Entrez votre code, suivi du dièse."', ("Entrez votre code, suivi du dièse.", "")),
    ("letters/dash", "trattino [-]", ("trattino", "")),
    ("conf-full", "La conferenza ? piena.", ("", "garbled text")),
    ("cannot-complete-as-dialed", "La chiamata non pu? essere completata cos? come composta.", ("", "garbled text")),
    ("vm-msgsaved", "Il [suo] messaggio è stato salvato.", ("", "uncertain words in brackets")),
    ("ascending-2tone", "[toni ascendenti]", ("", "non-speech")),
    ("beep", "un suono beep", ("", "non-speech")),
    ("silence/5", "(5 secondi di silenzio)", ("", "non-speech")),
    ("tt-monkeys", "[sound of monkeys screaming]", ("", "non-speech")),
    ("letters/b", "b", ("", "empty or a single letter")),
    ("dir-welcome", "", ("", "empty or a single letter")),
])
def test_prompt_text_clean_up(name, text, expected):
    assert real.clean_prompt(name, text) == expected


def test_a_real_question_mark_is_kept():
    assert real.clean_prompt("vm-isitok", "Va bene? Premere 1 per confermare.") == \
        ("Va bene? Premere 1 per confermare.", "")


def test_splits_never_share_a_text():
    items = [(f"u{i}", t) for i, t in enumerate(["Ciao.", "ciao", "Buongiorno a tutti.", "Premere 1.", "Premere 1!",
                                                 "Grazie.", "Arrivederci.", "Prego riprovare."])]
    splits = split_by_text(items, {"test": 2, "val": 1, "train": -1}, seed=3)
    assert sorted(u for rows in splits.values() for u, _ in rows) == sorted(u for u, _ in items)
    texts = {split: {tuple(words(t)) for _, t in rows} for split, rows in splits.items()}
    assert not (texts["test"] & texts["train"]) and not (texts["val"] & texts["train"]) and not (texts["test"] & texts["val"])


def test_numbers_score_as_spoken():
    assert normalize_text("Premere 1 o 28.", "it") == normalize_text("premere uno o ventotto", "it")
    assert normalize_text("Нажмите 4", "ru") == normalize_text("нажмите четыре", "ru")


def _pcm(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64), w.getframerate()


@pytest.fixture(scope="module")
def italian(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "real_it"
    cache = out.parent / "cache"
    stats = real.make_real_data(language="it", out_dir=str(out), num_train=30, num_val=5, num_test=10,
                                cache_dir=str(cache))
    return out, cache, stats


def test_kaldi_dirs_and_stats(italian):
    out, _, stats = italian
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["splits"] == stats["splits"] and stats["test_sentences_in_train"] == 0
    assert stats["voice"] == "it_IT_m_Carlo" and stats["dropped"]["garbled text"]["count"] >= 5
    assert "conf-full" in stats["dropped"]["garbled text"]["names"]
    for split, size in (("train", 30), ("val", 5), ("test", 10)):
        ids = [line.split()[0] for line in (out / split / "wav.scp").read_text().splitlines()]
        texts = dict(line.split(" ", 1) for line in (out / split / "text").read_text(encoding="utf-8").splitlines())
        assert size <= len(ids) <= size + 2 and set(ids) == set(texts)  # a shared text keeps its prompts together
        assert set((out / split / "utt2lang").read_text().split()[1::2]) == {"it"}


def _log_spectrogram(signal: np.ndarray) -> np.ndarray:
    _, _, spec = stft(signal, 8000, nperseg=256)
    return np.log(np.abs(spec) + 1e-3)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two recordings' log spectrograms (8 kHz), over their common length."""
    n = min(len(a), len(b))
    return float(np.corrcoef(_log_spectrogram(a[:n]).ravel(), _log_spectrogram(b[:n]).ravel())[0, 1])


def test_decoded_audio_matches_the_8khz_recordings(italian, tmp_path):
    """The -wav package holds the same prompts at 8 kHz from another codec chain (their waveforms differ in phase):
    ours, resampled to 8 kHz, has the same length and the same spectrogram, and is clearly unlike other prompts."""
    out, _, _ = italian
    fetch_packages(tmp_path, ("asterisk-core-sounds-it-wav",))
    eight_khz = tmp_path / "root/usr/share/asterisk/sounds/it_IT_m_Carlo"
    pairs = []
    for line in (out / "test/wav.scp").read_text().splitlines():
        utt, path = line.split()
        reference = eight_khz / f"{utt.removeprefix('it-')}.wav"
        if reference.is_file():
            (ours, rate), (theirs, ref_rate) = _pcm(path), _pcm(reference)
            assert rate == 16000 and ref_rate == 8000
            pairs.append((utt, resample_poly(ours, 1, 2), theirs))
    assert len(pairs) >= 4
    for i, (utt, ours, theirs) in enumerate(pairs[:4]):
        assert abs(len(ours) - len(theirs)) <= 2, utt
        own = _similarity(ours, theirs)
        other = _similarity(ours, pairs[(i + 1) % len(pairs)][2])
        assert own > 0.85 and own > other + 0.15, f"{utt}: {own:.2f} with its recording, {other:.2f} with another"


def test_unknown_language_is_one_clear_error(tmp_path):
    from egrecho_inner.errors import InputError

    with pytest.raises(InputError, match="language must be one of"):
        real.make_real_data(language="de", out_dir=str(tmp_path / "x"), cache_dir=str(tmp_path / "cache"))


def test_a_name_with_two_texts_is_ambiguous():
    # The Spanish list gives digits/0 as "cero" and as "diez"; a line repeated word for word is not ambiguous
    prompts = [("digits/0", "cero"), ("digits/0", "diez"), ("digits/1", "uno"), ("beep", "x"), ("beep", "x")]
    assert real.ambiguous_names(prompts) == {"digits/0"}


def test_spanish_list_repeats_a_name_and_it_is_left_out(tmp_path):
    """Debian's Spanish prompt list names digits/0 twice: both lines are left out and counted, not two utterances
    with one id (which prepare.sh would refuse)."""
    stats = real.make_real_data(language="es", out_dir=str(tmp_path / "real_es"), num_train=10, num_val=0, num_test=0,
                                cache_dir=str(tmp_path / "cache"))
    assert stats["dropped"][real.AMBIGUOUS] == {"count": 1, "names": ["digits/0"]}
    ids = [line.split()[0] for line in (tmp_path / "real_es/train/wav.scp").read_text().splitlines()]
    assert len(ids) == len(set(ids)) >= 10
