"""Label layout and training-time filtering, checked against OpenAI's tiktoken encoding."""

from __future__ import annotations

import logging

import pytest
import tiktoken
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.testing.dummies import dummy_cut
from tiktoken.load import load_tiktoken_bpe

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.dataset import TrainingCutFilter, WhisperDataset, WhisperLabeler
from egrecho_inner.tokenizer import WHISPER_SPLIT_PATTERN, openai_tiktoken_file

# OpenAI's ids for the multilingual tokenizer (whisper/tokenizer.py ordering).
SOT, EOT, TRANSCRIBE, NO_TIMESTAMPS = 50258, 50257, 50359, 50363
LANG_ID = {"en": 50259, "vi": 50278, "zh": 50260}


@pytest.fixture(scope="module")
def tiktoken_encoding():
    ranks = load_tiktoken_bpe(str(openai_tiktoken_file()))
    return tiktoken.Encoding("whisper-ref", pat_str=WHISPER_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})


def text_cut(cut_id: str, text: str, language: str | None, duration: float = 2.0):
    cut = dummy_cut(0, duration=duration)
    cut.id = cut_id
    cut.supervisions = [SupervisionSegment(cut_id, cut.recording_id, 0.0, duration, text=text, language=language)]
    return cut


def test_labels_two_languages_token_by_token(whisper_tokenizer, tiktoken_encoding, demo_corpus, tmp_path):
    from egrecho_inner.kaldi import load_kaldi_dir

    recordings, supervisions, _ = load_kaldi_dir(demo_corpus / "train")
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(16000)
    batch_cuts = CutSet.from_cuts([next(c for c in cuts if c.supervisions[0].language == lang) for lang in ("vi", "en")])
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer), on_the_fly_feats=True)[batch_cuts]
    assert batch["input_features"].shape == (2, 80, 3000)
    labels = batch["labels"]
    for row, cut in zip(labels, batch_cuts):
        sup = cut.supervisions[0]
        expected = [SOT, LANG_ID[sup.language], TRANSCRIBE, NO_TIMESTAMPS, *tiktoken_encoding.encode(sup.text), EOT]
        got = row[row != IGNORE_INDEX].tolist()
        assert got == expected[1:], f"{cut.id}: {got} != {expected[1:]}"  # the model prepends SOT itself
        assert torch.all(row[len(got):] == IGNORE_INDEX)
    assert whisper_tokenizer.decode(labels[0][labels[0] != IGNORE_INDEX], skip_special_tokens=True) == batch_cuts[0].supervisions[0].text


def test_default_language_and_errors(whisper_tokenizer):
    labeler = WhisperLabeler(whisper_tokenizer, default_language="zh")
    assert labeler(text_cut("a", "你好", None))[:2] == [SOT, LANG_ID["zh"]]
    with pytest.raises(ValueError, match="cut b has no language"):
        WhisperLabeler(whisper_tokenizer)(text_cut("b", "hi", None))
    with pytest.raises(ValueError, match=r"cut c: the tokenizer has no token for <\|xx\|>"):
        labeler(text_cut("c", "hi", "xx"))


def test_training_filter_drops_and_counts(whisper_tokenizer, caplog):
    keep = text_cut("keep", "xin chào", "vi")
    too_long = text_cut("long-audio", "xin chào", "vi", duration=31.0)
    too_many_tokens = text_cut("long-text", "xin chào " * 300, "vi")
    just_fits = text_cut("fits", " a" * 444, "en")  # lang, task, notimestamps + 444 + EOT = 448 labels
    one_over = text_cut("one-over", " a" * 445, "en")
    cut_filter = TrainingCutFilter(WhisperLabeler(whisper_tokenizer))
    with caplog.at_level(logging.WARNING):
        kept = [c.id for c in CutSet.from_cuts([keep, too_long, too_many_tokens, just_fits, one_over]).filter(cut_filter)]
    assert kept == ["keep", "fits"]
    assert cut_filter.dropped == {"over 30 s": 1, "over 448 tokens": 2}
    assert "dropping cut long-audio" in caplog.text and "dropping cut long-text" in caplog.text
    caplog.clear()  # a filter that only counts (ranks other than 0, batch counting) logs nothing
    quiet = TrainingCutFilter(WhisperLabeler(whisper_tokenizer), log_drops=False)
    with caplog.at_level(logging.WARNING):
        assert [c.id for c in CutSet.from_cuts([keep, too_long]).filter(quiet)] == ["keep"]
    assert quiet.dropped["over 30 s"] == 1 and "dropping cut" not in caplog.text


def test_musan_mixing_and_spec_augment_change_features(whisper_tokenizer, demo_corpus, tmp_path):
    """Mixed cuts get features from their mixed audio; SpecAugment masks; cut ids stay the same."""
    import numpy as np
    import soundfile as sf
    from lhotse import RecordingSet
    from lhotse.dataset import CutMix, SpecAugment

    from egrecho_inner.kaldi import load_kaldi_dir

    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.1 * np.random.default_rng(0).standard_normal(16000 * 10), 16000)
    musan = CutSet.from_manifests(recordings=RecordingSet.from_recordings([Recording.from_file(noise)]))
    recordings, supervisions, _ = load_kaldi_dir(demo_corpus / "val")
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(16000).subset(first=2)
    labeler = WhisperLabeler(whisper_tokenizer)
    clean = WhisperDataset(labeler, on_the_fly_feats=True)[cuts]
    noisy = WhisperDataset(labeler, on_the_fly_feats=True, cut_transforms=[
        CutMix(musan, p=1.0, snr=(0, 0), pad_to_longest=False, preserve_id=True)])[cuts]
    assert noisy["cut_ids"] == clean["cut_ids"] and torch.equal(noisy["labels"], clean["labels"])
    frames = cuts[0].num_samples // 160
    assert (noisy["input_features"][0, :, :frames] - clean["input_features"][0, :, :frames]).abs().mean() > 0.05
    masked = WhisperDataset(labeler, on_the_fly_feats=True, spec_augment=SpecAugment(p=1.0, num_frame_masks=2))[cuts]
    assert not torch.equal(masked["input_features"], clean["input_features"])


def test_replay_and_nonspeech_mix(tmp_path, whisper_tokenizer):
    """Extra manifests join training at their shares; every training cut comes once; a replayed cut keeps its
    own transcript and language; a non-speech cut's target is the empty transcript."""
    from egrecho_inner.data_module import DataArgs, training_cuts

    def manifest(name: str, ids: range, text: str, language: str) -> str:
        cuts = []
        for i in ids:
            cut = dummy_cut(i).with_id(f"{name}-{dummy_cut(i).id}")
            cut.supervisions = [SupervisionSegment(f"{cut.id}-s", cut.recording_id, 0.0, cut.duration, text=text,
                                                   language=language)]
            cuts.append(cut)
        cuts = CutSet.from_cuts(cuts)
        path = tmp_path / f"{name}_cuts_train.jsonl.gz"
        cuts.to_file(path)
        return str(path)

    manifest("main", range(400), "xin chào", "vi")
    replay = manifest("replay", range(30), "good morning", "en")
    nonspeech = manifest("noise", range(10), "", "vi")
    args = DataArgs(manifest_dir=str(tmp_path), prefix_name="main", replay=[replay], replay_prob=0.2,
                    nospeech_cuts=nonspeech, nospeech_prob=0.1)
    mixed = list(training_cuts(args))
    kinds = [c.id.split("-")[0] for c in mixed]
    assert sorted(c.id for c in mixed if c.id.startswith("main")) == sorted(f"main-{c}" for c in
                                                                            [dummy_cut(i).id for i in range(400)])
    total = len(mixed)  # about 400 / 0.7
    assert abs(kinds.count("replay") / total - 0.2) < 0.06 and abs(kinds.count("noise") / total - 0.1) < 0.05
    labeler = WhisperLabeler(whisper_tokenizer)
    ids = whisper_tokenizer.convert_tokens_to_ids
    noise = next(c for c in mixed if c.id.startswith("noise"))
    assert labeler(noise) == ids(["<|startoftranscript|>", "<|vi|>", "<|transcribe|>", "<|notimestamps|>",
                                  "<|endoftext|>"])
    english = next(c for c in mixed if c.id.startswith("replay"))
    assert labeler(english)[:2] == ids(["<|startoftranscript|>", "<|en|>"])
    assert whisper_tokenizer.decode(labeler(english)[4:-1]) == "good morning"
    other = manifest("other", range(30), "good night", "en")  # one share per manifest
    two = list(training_cuts(DataArgs(manifest_dir=str(tmp_path), prefix_name="main", replay=[replay, other],
                                      replay_prob=[0.25, 0.05])))
    kinds = [c.id.split("-")[0] for c in two]
    assert abs(kinds.count("replay") / len(two) - 0.25) < 0.06 and abs(kinds.count("other") / len(two) - 0.05) < 0.03
    with pytest.raises(ValueError, match="2 replay manifests"):
        training_cuts(DataArgs(manifest_dir=str(tmp_path), prefix_name="main", replay=[replay, other], replay_prob=[0.2]))
    with pytest.raises(ValueError, match="add up to less than 1"):
        training_cuts(DataArgs(manifest_dir=str(tmp_path), prefix_name="main", replay=[replay], replay_prob=0.95,
                               nospeech_cuts=nonspeech, nospeech_prob=0.1))
    with pytest.raises(FileNotFoundError, match="replay cut manifest"):
        training_cuts(DataArgs(manifest_dir=str(tmp_path), prefix_name="main", replay=[str(tmp_path / "none.jsonl.gz")]))


def test_timestamp_labels_of_a_two_segment_window(whisper_tokenizer, tiktoken_encoding):
    """Each segment between its start and end timestamp tokens (OpenAI's ids: <|0.00|> is 50364, one per
    0.02 s), times relative to the cut, rounded to 0.02 s; the share of such cuts follows the probability."""
    cut = dummy_cut(0, duration=6.0)
    cut.supervisions = [
        SupervisionSegment("s2", cut.recording_id, 3.111, 2.5, text="thứ hai", language="vi"),
        SupervisionSegment("s1", cut.recording_id, 0.4, 2.0, text="thứ nhất", language="vi"),
    ]
    ts = lambda seconds: 50364 + round(seconds / 0.02)  # noqa: E731
    expected = [SOT, LANG_ID["vi"], TRANSCRIBE, ts(0.40), *tiktoken_encoding.encode("thứ nhất"), ts(2.40),
                ts(3.12), *tiktoken_encoding.encode(" thứ hai"), ts(5.62), EOT]
    assert WhisperLabeler(whisper_tokenizer).label_ids(cut, timestamps=True) == expected
    assert ts(3.12) == whisper_tokenizer.convert_tokens_to_ids("<|3.12|>")
    assert WhisperLabeler(whisper_tokenizer, timestamp_probability=1.0)(cut) == expected
    assert WhisperLabeler(whisper_tokenizer)(cut)[3] == NO_TIMESTAMPS
    labeler = WhisperLabeler(whisper_tokenizer, timestamp_probability=0.3)
    cuts = [text_cut(f"c{i}", "a", "en") for i in range(1000)]
    share = sum(labeler.with_timestamps(c) for c in cuts) / len(cuts)
    assert 0.25 < share < 0.35 and [labeler.with_timestamps(c) for c in cuts] == [labeler.with_timestamps(c) for c in cuts]
    # the filter counts the labels training will use: this cut fits without timestamps, not with them
    near = text_cut("near", " a" * 444, "en")  # 448 labels without timestamps, 449 with
    kept = CutSet.from_cuts([near]).filter(TrainingCutFilter(WhisperLabeler(whisper_tokenizer, timestamp_probability=1.0)))
    assert len(kept.to_eager()) == 0 and len(WhisperLabeler(whisper_tokenizer).label_ids(near, False)) - 1 == 448


def test_shar_training_reads_the_same_cuts_and_features(prepared_demo, whisper_tokenizer, monkeypatch):
    """prepare.sh --shar true wrote the train part as shards of 5 cuts; training with ``shar: true`` delivers
    every cut once per epoch with the features stored in the lilcom dir (to lilcom's precision), in as many batches as it counts
    (counted from the cuts alone)."""
    from egrecho_inner.data_module import DataArgs, train_loader

    monkeypatch.chdir(prepared_demo)  # the lilcom manifests name their feature files relative to it
    fbank = prepared_demo / "data/fbank_whisper80"
    assert len(list((fbank / "demo_vi_shar_train").glob("features.*.tar"))) == 3  # 12 cuts, 5 per shard
    common = dict(manifest_dir=str(fbank), prefix_name="demo_vi", max_cuts=3, num_workers=0, num_mel_bins=80,
                  remove_whisper_encoder_input_length_restriction=True)
    batches = {}
    for shar in (False, True):
        loader = train_loader(DataArgs(shar=shar, **common), WhisperLabeler(whisper_tokenizer))
        loader.set_epoch(1)
        batches[shar] = list(loader)
        assert len(loader) == len(batches[shar])
    features = {}
    for shar, found in batches.items():
        for batch in found:
            for i, cut_id in enumerate(batch["cut_ids"]):
                features.setdefault(cut_id, {})[shar] = batch["input_features"][i, :, : int(batch["attention_mask"][i].sum())]
    assert len(features) == 12 and all(len(v) == 2 for v in features.values())
    # Shar holds the stored features re-encoded by lilcom: one more quantisation, at most a step of 1/64
    assert all(float((v[False] - v[True]).abs().max()) <= 1 / 64 + 1e-6 for v in features.values())
    with pytest.raises(FileNotFoundError, match="prepare.sh --shar true"):
        train_loader(DataArgs(shar=True, **{**common, "prefix_name": "none"}), WhisperLabeler(whisper_tokenizer))


def test_shar_ranks_read_their_own_shards_and_stop_together(prepared_demo, whisper_tokenizer, monkeypatch):
    """With several ranks each reads only the shards dealt to it (3 shards of 5, 5 and 2 cuts over 2 ranks):
    disjoint cuts, every one from the rank's own shards, and the same number of batches on both ranks (the
    smaller rank's count); more ranks than shards is a clear error."""
    from lhotse import load_manifest

    from egrecho_inner.data_module import DataArgs, train_loader
    from egrecho_inner.errors import InputError

    monkeypatch.chdir(prepared_demo)
    fbank = prepared_demo / "data/fbank_whisper80"
    shards = [{c.id for c in load_manifest(p)} for p in sorted((fbank / "demo_vi_shar_train").glob("cuts.*.jsonl.gz"))]
    args = DataArgs(manifest_dir=str(fbank), prefix_name="demo_vi", max_cuts=2, num_workers=0, num_mel_bins=80,
                    shar=True, bucketing_sampler=False)
    delivered, lengths = [], []
    for rank in (0, 1):
        loader = train_loader(args, WhisperLabeler(whisper_tokenizer), world_size=2, rank=rank)
        batches = list(loader)
        ids = [cut_id for batch in batches for cut_id in batch["cut_ids"]]
        lengths.append(len(batches))
        assert len(loader) == len(batches) and len(ids) == len(set(ids))
        delivered.append(set(ids))
    assert lengths[0] == lengths[1] > 0 and not delivered[0] & delivered[1]
    assert len(delivered[0] | delivered[1]) < 12  # the larger rank's surplus waited
    # each rank's cuts come from whole shards of its own, and the shards are split, not shared
    owned = [[i for i, shard in enumerate(shards) if ids & shard] for ids in delivered]
    assert all(delivered[r] <= set().union(*(shards[i] for i in owned[r])) for r in (0, 1))
    assert not set(owned[0]) & set(owned[1])
    with pytest.raises(InputError, match="3 Shar shards for 4 ranks"):
        train_loader(args, WhisperLabeler(whisper_tokenizer), world_size=4, rank=0)
