"""Our Whisper features against Hugging Face's WhisperFeatureExtractor on the same 16 kHz audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lhotse import CutSet, LilcomChunkyWriter, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from transformers import WhisperFeatureExtractor

from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
from egrecho_inner.features import load_cut_features, make_fbank_extractor, pad_to_whisper_input
from tests.conftest import espeak

SENTENCES = {  # several lengths, from about 1 s to about 12 s
    "short": "Xin chào.",
    "medium": "Người bán hàng viết thư ở chợ ngày mai.",
    "long": "Chúng tôi đi học ở trường mỗi sáng, sau đó chúng tôi về nhà, nấu ăn và nghe nhạc "
            "cùng với bố mẹ, ông bà và các em học sinh trong thành phố Hà Nội vào mùa hè.",
}
LILCOM_HALF_TICK = 2.0**-6  # lhotse's lilcom_chunky default tick_power=-5


@pytest.fixture(scope="module")
def speech_cuts(tmp_path_factory) -> CutSet:
    """espeak-ng speech (22.05 kHz) as 16 kHz cuts, resampled by lhotse as prepare.sh does."""
    d = tmp_path_factory.mktemp("speech")
    recordings = RecordingSet.from_recordings(
        Recording.from_file(espeak(d / f"{k}.wav", t), recording_id=k) for k, t in SENTENCES.items()
    )
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(k, k, 0.0, recordings[k].duration, text=t, language="vi") for k, t in SENTENCES.items()
    )
    return CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(16000).to_eager()


def hf_features(audio: np.ndarray, n_mels: int) -> torch.Tensor:
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    return torch.from_numpy(extractor(audio, sampling_rate=16000, return_tensors="np").input_features[0])


def split_boundary(diff: torch.Tensor, num_frames: int) -> tuple[float, float]:
    """(max diff over all frames but the last two of the audio, max diff on those two)."""
    boundary = slice(num_frames - 2, num_frames)
    mask = torch.ones(diff.shape[1], dtype=torch.bool)
    mask[boundary] = False
    return diff[:, mask].max().item(), diff[:, boundary].max().item()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_extraction_and_on_the_fly_padding_match_hf(speech_cuts, n_mels):
    extractor = make_fbank_extractor(n_mels)
    for cut in speech_cuts:
        audio = cut.load_audio()[0]
        reference = hf_features(audio, n_mels)  # (n_mels, 3000)
        ours = load_cut_features(cut, extractor)  # (T, n_mels), before storage
        num_frames = ours.shape[0]
        assert ours.shape[1] == n_mels and abs(num_frames - len(audio) / 160) <= 1
        inner, edge = split_boundary((ours.T - reference[:, :num_frames]).abs(), num_frames)
        assert inner < 1e-5, f"{cut.id}: {inner}"
        padded = pad_to_whisper_input(ours)
        assert padded.shape == (n_mels, 3000)
        inner, edge = split_boundary((padded - reference).abs(), num_frames)
        print(f"{cut.id} {n_mels} mel: max diff {inner:.2e}; last two audio frames differ by {edge:.3f}")
        assert inner < 1e-5, f"{cut.id}: padded frames differ by {inner}"


@pytest.mark.parametrize("n_mels", [80, 128])
def test_dataset_batches_match_hf(speech_cuts, whisper_tokenizer, tmp_path, n_mels):
    """Both dataset paths: on the fly (1e-5) and read back from lilcom storage (half a tick)."""
    stored = speech_cuts.compute_and_store_features(
        make_fbank_extractor(n_mels), tmp_path / "feats", storage_type=LilcomChunkyWriter
    )
    labeler = WhisperLabeler(whisper_tokenizer)
    on_the_fly = WhisperDataset(labeler, on_the_fly_feats=True, num_mel_bins=n_mels)[speech_cuts]
    from_storage = WhisperDataset(labeler)[stored]
    for i, cut in enumerate(speech_cuts):
        reference = hf_features(cut.load_audio()[0], n_mels)
        num_frames = stored[i].num_frames
        inner, _ = split_boundary((on_the_fly["input_features"][i] - reference).abs(), num_frames)
        assert inner < 1e-5
        inner, edge = split_boundary((from_storage["input_features"][i] - reference).abs(), num_frames)
        print(f"{cut.id} {n_mels} mel from lilcom: max diff {inner:.4f} (bound {LILCOM_HALF_TICK}); edge {edge:.3f}")
        assert inner <= LILCOM_HALF_TICK + 1e-6


def test_padding_is_not_zero():
    """A quiet utterance pads at max(m - 2, -1.5), the value HF gives zero-padded audio."""
    feats = torch.full((10, 80), -0.5)
    feats[3, 7] = 1.25
    padded = pad_to_whisper_input(feats)
    assert torch.equal(padded[:, :10], feats.T)
    assert torch.all(padded[:, 10:] == -0.75)  # m - 2
    assert torch.all(pad_to_whisper_input(torch.full((5, 80), -0.2))[:, 5:] == -1.5)  # the floor
    with pytest.raises(ValueError, match="3000"):
        pad_to_whisper_input(torch.zeros(3001, 80))
