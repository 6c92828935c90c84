"""Sequential long-form decoding (egrecho_inner.seeking) against hand-worked windows, and the training
windows of long recordings (egrecho_inner.windows)."""

from __future__ import annotations

import torch
from lhotse import SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from egrecho_inner.seeking import parse_window, seek_decode
from egrecho_inner.windows import pack_segments

B = 50364  # <|0.00|>


def test_parse_window():
    # two complete segments and text the window cut off at 3.00 s
    parsed = parse_window([B, 1, 2, B + 100, B + 100, 3, B + 150, B + 150, 4], B, 1500)
    assert parsed.segments == [(0, 100, [1, 2]), (100, 150, [3])] and parsed.unfinished == (150, [4])
    assert parsed.well_formed and not parsed.ends_on_single_timestamp
    parsed = parse_window([B + 10, 1, B + 90], B, 1500)  # all speech inside complete segments
    assert parsed.segments == [(10, 90, [1])] and parsed.ends_on_single_timestamp and parsed.well_formed
    for malformed in ([1, 2, 3], [B, 1, B + 50, 2, B + 60], [B + 50, 1, B + 40], [B, 1, B + 1600], [B, 1, 2]):
        assert not parse_window(malformed, B, 1500).well_formed, malformed


def test_seek_decode_restarts_at_the_cut_off_segment():
    """70 s of features whose first column is the frame index, so the scripted decoder knows where each
    window starts: the first window cuts a segment at 28 s, so the second starts there, not at 30 s."""
    feats = torch.arange(7000, dtype=torch.float32)[:, None].repeat(1, 80)
    starts = []

    def decode_window(window: torch.Tensor) -> list[int]:
        starts.append(int(window[0, 0]))
        if starts[-1] == 0:  # a segment to 28 s, then one the window cut off
            return [B, 1, B + 1400, B + 1400, 2]
        if starts[-1] == 2800:  # seen whole from its start; then nothing but a closing timestamp
            return [B, 2, 3, B + 200, B + 250, 4, B + 400]
        return [5]  # a model that emits no timestamps: the rest of the window, then the next 30 s

    result = seek_decode(feats, decode_window, lambda ids: " ".join(f"w{i}" for i in ids), B)
    assert starts == [0, 2800, 5800]
    assert result.segments == [(0.0, 28.0, "w1"), (28.0, 32.0, "w2 w3"), (33.0, 36.0, "w4"), (58.0, 70.0, "w5")]
    assert result.windows_well_formed == [True, True, False] and result.text == "w1 w2 w3 w4 w5"
    assert [(s.start, s.end, s.text) for s in result.segments][1] == (28.0, 32.0, "w2 w3")  # typed: Segment


def test_pack_segments_windows():
    """Consecutive segments packed into windows of up to 30 s, each starting in the pause before its first
    segment; a segment longer than 30 s is a window of its own (training drops and counts it)."""
    cut = dummy_cut(0, duration=80.0)
    spans = [(0.5, 4.0), (5.0, 6.0), (11.6, 10.0), (22.0, 7.5), (30.0, 3.0), (40.0, 31.0)]
    cut.supervisions = [SupervisionSegment(f"u{i}", cut.recording_id, start=s, duration=d, text=f"t{i}")
                        for i, (s, d) in enumerate(spans)]
    windows = list(pack_segments([cut]))
    assert [w.id for w in windows] == [f"{cut.id}-w{i:04d}" for i in range(3)]
    assert [[s.id for s in w.supervisions] for w in windows] == [["u0", "u1", "u2", "u3"], ["u4"], ["u5"]]
    assert [(w.start, w.duration) for w in windows] == [(0.0, 29.75), (29.75, 4.25), (40.0, 31.0)]
    assert [(s.start, s.end) for s in windows[1].supervisions] == [(0.25, 3.25)]


def test_long_recordings_packed_into_labelled_windows(tmp_path, whisper_tokenizer):
    """make_long_recordings.py joins utterances into a recording with Kaldi segments; kaldi2mani and
    compute_fbank_subset --pack_segments (prepare.sh's stages 1 and 3) turn it into windows of up to 30 s,
    each labelled with one timestamp pair per segment, in order."""
    from lhotse import load_manifest

    from egrecho_inner.dataset import WhisperLabeler
    from tests.conftest import RECIPE_DIR, espeak, run_script, write_kaldi_dir

    texts = ["xin chào các bạn", "hôm nay trời đẹp quá", "chúng ta đi học", "tôi thích đọc sách",
             "mẹ nấu cơm ở nhà", "bố đi làm mỗi sáng", "em bé ngủ rất ngon", "trời mưa to quá"]
    utts = {f"u{i}": (str(espeak(tmp_path / f"u{i}.wav", f"{t}, {t}", speed=100)), f"{t}, {t}", "vi")
            for i, t in enumerate(texts)}
    write_kaldi_dir(tmp_path / "kaldi/train", utts)
    run_script(str(RECIPE_DIR / "local/make_long_recordings.py"), "--kaldi_dir", str(tmp_path / "kaldi/train"),
               "--out_dir", str(tmp_path / "long/train"), "--per_recording", "8")
    assert len((tmp_path / "long/train/segments").read_text().splitlines()) == 8
    run_script(str(RECIPE_DIR / "local/kaldi2mani.py"), "--kaldi_dir", str(tmp_path / "long"), "--prefix", "x",
               "--parts", "train", "--output_dir", str(tmp_path / "manifests"))
    run_script(str(RECIPE_DIR / "local/compute_fbank_subset.py"), "--manifest_dir", str(tmp_path / "manifests"),
               "--prefix", "x", "--parts", "train", "--output_dir", str(tmp_path / "fbank"), "--pack_segments", "true")
    windows = list(load_manifest(tmp_path / "fbank/x_cuts_train.jsonl.gz"))
    total = sum(float(line.split()[3]) - float(line.split()[2])
                for line in (tmp_path / "long/train/segments").read_text().splitlines())
    assert len(windows) >= 2 and all(w.duration <= 30.0 for w in windows) and total > 30.0
    assert sorted(s.id for w in windows for s in w.supervisions) == sorted(utts)  # every segment, once
    labeler = WhisperLabeler(whisper_tokenizer, timestamp_probability=1.0)
    begin = whisper_tokenizer.convert_tokens_to_ids("<|0.00|>")
    for window in windows:
        assert window.load_features().shape[0] == round(window.duration * 100)
        stamps = [(t - begin) * 0.02 for t in labeler(window) if t >= begin]
        expected = [x for s in sorted(window.supervisions, key=lambda s: s.start) for x in (s.start, s.end)]
        assert len(stamps) == 2 * len(window.supervisions) and stamps == sorted(stamps)
        assert all(abs(a - b) <= 0.011 for a, b in zip(stamps, expected))
