"""prepare.sh end to end on the espeak-ng demo corpus, with MUSAN, speed perturbation and reruns."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from tests.conftest import RECIPE_DIR, run_script

pytestmark = pytest.mark.slow


def make_musan(root):
    """A tiny corpus in MUSAN's layout: 12 s of music, noise and speech-like noise at 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(12 * 16000) / 16000
    files = {
        "music/fma/music-fma-0000.wav": 0.2 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.5 * t),
        "noise/free-sound/noise-free-sound-0000.wav": 0.05 * rng.standard_normal(t.size),
        "speech/librivox/speech-librivox-0000.wav": 0.1 * np.sin(2 * np.pi * 150 * t) * (rng.random(t.size) > 0.5),
    }
    for name, signal in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, signal, 16000)
    (root / "music/fma/ANNOTATIONS").write_text("music-fma-0000 pop N artist\n")
    return root


def first_cut(path):
    with gzip.open(path, "rt") as f:
        return json.loads(f.readline())


@pytest.fixture(scope="module")
def prepared(demo_corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("recipe")
    shutil.copytree(demo_corpus, work / "data/kaldi/demo", symlinks=True)
    make_musan(work / "musan")
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "data/kaldi/demo", "--prefix", "demo_vi",
                      "--perturb_speed", "true", "--musandir", "musan", "--nj", "2", cwd=work)
    return work, proc


def test_outputs_named_as_the_original_recipe(prepared, demo_corpus):
    work, proc = prepared
    for part in ("train", "val", "test"):
        for kind in ("recordings", "supervisions"):
            assert (work / f"data/manifests/demo_vi_{kind}_{part}.jsonl").is_file()
        assert (work / f"data/fbank_whisper80/demo_vi_cuts_{part}.jsonl.gz").is_file()
        assert (work / f"data/fbank_whisper80/demo_vi_feats_{part}/feats-0.lca").is_file()
    for part in ("music", "noise", "speech"):
        assert (work / f"data/manifests/musan_recordings_{part}.jsonl.gz").is_file()
    assert (work / "data/manifests/musan_supervisions_music.jsonl.gz").is_file()
    musan = load_manifest(work / "data/fbank_whisper80/musan_cuts.jsonl.gz")
    assert len(musan) == 3 and all(c.duration == 10.0 and c.has_features for c in musan)
    assert "Cuts count:" in proc.stdout and "Without speed perturbation" in proc.stdout


def test_cut_line_format(prepared, demo_corpus):
    work, _ = prepared
    cut = first_cut(work / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    assert cut["type"] == "MonoCut"
    features = cut["features"]
    assert features["type"] == "whisper-fbank" and features["frame_shift"] == 0.01
    assert features["storage_type"] == "lilcom_chunky" and features["num_features"] == 80
    assert features["storage_path"].startswith("data/fbank_whisper80/demo_vi_feats_train/feats-")
    sup = cut["supervisions"][0]
    texts = dict(line.split(" ", 1) for line in (demo_corpus / "train/text").read_text().splitlines())
    langs = dict(line.split() for line in (demo_corpus / "train/utt2lang").read_text().splitlines())
    assert sup["text"] == texts[sup["id"]] and sup["language"] == langs[sup["id"]]


def test_speed_perturbation_triples_train_only(prepared):
    work, _ = prepared
    train = load_manifest(work / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    ids = [c.id for c in train]
    base = [i for i in ids if "_sp" not in i]
    assert len(base) == 12 and len(ids) == 36
    assert sum(i.endswith("_sp0.9") for i in ids) == 12 and sum(i.endswith("_sp1.1") for i in ids) == 12
    slow = next(c for c in train if c.id.endswith("_sp0.9"))
    original = next(c for c in train if c.id == slow.id[: -len("_sp0.9")])
    assert slow.duration == pytest.approx(original.duration / 0.9, rel=1e-3)
    assert all("_sp" not in c.id for c in load_manifest(work / "data/fbank_whisper80/demo_vi_cuts_val.jsonl.gz"))


def test_rerun_skips_what_is_up_to_date(prepared):
    work, _ = prepared
    fbank = work / "data/fbank_whisper80"
    before = {p.name: p.stat().st_mtime_ns for p in fbank.glob("*_cuts_*.jsonl.gz")}
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "data/kaldi/demo", "--prefix", "demo_vi",
                      "--perturb_speed", "true", "--musandir", "musan", cwd=work)
    log = proc.stdout + proc.stderr
    assert all(f"{part}: manifests up to date" in log and f"{part}: cuts up to date" in log
               for part in ("train", "val", "test"))
    assert "MUSAN" in log and "musan_cuts.jsonl.gz up to date" in log
    assert {p.name: p.stat().st_mtime_ns for p in fbank.glob("*_cuts_*.jsonl.gz")} == before


def test_128_mel_on_the_fly(prepared):
    work, _ = prepared
    run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "data/kaldi/demo", "--prefix", "demo_vi",
               "--stage", "3", "--stop_stage", "4", "--num_mel_bins", "128", "--on_the_fly_feats", "true", cwd=work)
    cuts = load_manifest(work / "data/fbank_whisper128/demo_vi_cuts_test.jsonl.gz")
    assert len(cuts) == 3 and not any(c.has_features for c in cuts)
    assert not (work / "data/fbank_whisper128/demo_vi_feats_test").exists()


def test_bad_options_fail_clearly(prepared):
    work, _ = prepared
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--no_such_option", "1", cwd=work, check=False)
    assert proc.returncode != 0 and "unknown option --no_such_option" in proc.stderr
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "missing", "--prefix", "other", cwd=work, check=False)
    assert proc.returncode != 0 and "Kaldi data dir not found: missing/train" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_audio_16k_stores_what_the_cuts_read(prepared, tmp_path, monkeypatch):
    """--audio_16k: the cuts (speed-perturbed copies included) read 16 kHz files of their own, holding exactly
    the audio the 22.05 kHz originals give after lhotse's resampling (overshoots of full scale included), in
    the same order, with features that match those computed from the originals."""
    import sys

    sys.path.insert(0, str(RECIPE_DIR / "local"))
    from compute_fbank_subset import compute_fbank_subset

    work, _ = prepared
    monkeypatch.chdir(work)  # the prepared manifests name their feature files relative to it
    compute_fbank_subset(manifest_dir=str(work / "data/manifests"), prefix="demo_vi", parts="train",
                         output_dir=str(tmp_path), perturb_speed=True, audio_16k=True, nj=2)
    ours = load_manifest(tmp_path / "demo_vi_cuts_train.jsonl.gz")
    original = load_manifest(work / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    assert [c.id for c in ours] == [c.id for c in original] and any(c.id.endswith("_sp0.9") for c in ours)
    for cut, reference in zip(ours, original):
        assert cut.recording.sampling_rate == 16000 and not cut.recording.transforms
        assert str(tmp_path / "demo_vi_audio16k_train") in cut.recording.sources[0].source
        assert reference.recording.transforms  # espeak-ng's 22.05 kHz: resampled as it is read
        audio, expected = cut.load_audio(), reference.load_audio()
        assert audio.shape == expected.shape and np.array_equal(audio, expected)
        assert [s.text for s in cut.supervisions] == [s.text for s in reference.supervisions]
        difference = np.abs(cut.load_features() - reference.load_features())
        assert difference.max() < 1e-4
