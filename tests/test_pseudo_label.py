"""egrecho pseudo-label: each kept cut's label is the model's own transcript (checked against egrecho eval's
raw hypotheses), features and references are kept, empty and looping outputs are dropped and counted."""

from __future__ import annotations

import numpy as np
import pytest
from lhotse import CutSet, load_manifest
from lhotse.utils import fastcopy

from egrecho_inner.dataset import WhisperLabeler
from egrecho_inner.pseudo_label import pseudo_label, relabel
from tests.test_evaluate import egrecho, eval_args, recogs

pytestmark = pytest.mark.slow
VAL_CUTS = "data/fbank_whisper80/demo_vi_cuts_val.jsonl.gz"


def test_labels_are_the_models_transcripts(prepared_demo, tiny_model, tmp_path, whisper_tokenizer):
    out = tmp_path / "pseudo.jsonl.gz"
    egrecho("pseudo-label", "--model_path", str(tiny_model), "--cuts", VAL_CUTS, "--output", str(out),
            "--num_workers", "0", "--gen_args.max_new_tokens", "8", cwd=prepared_demo)
    egrecho(*eval_args(tiny_model, tmp_path / "eval", "--cuts", VAL_CUTS, "--part", "val", "--normalize", "false"),
            cwd=prepared_demo)
    hyps = {cut_id: row["HYP"].strip() for cut_id, row in recogs(tmp_path / "eval/recogs-val.txt").items()}
    original = {c.id: c for c in load_manifest(prepared_demo / VAL_CUTS)}
    labelled = load_manifest(out)
    assert len(labelled) > 0 and {c.id for c in labelled} <= set(original)
    for cut in labelled:
        (supervision,) = cut.supervisions
        assert supervision.text == hyps[cut.id] != ""
        assert supervision.custom["reference_text"] == original[cut.id].supervisions[0].text
        assert supervision.language == original[cut.id].supervisions[0].language
        assert supervision.start == 0 and supervision.duration == cut.duration
        np.testing.assert_array_equal(cut.with_features_path_prefix(str(prepared_demo)).load_features(),
                                      original[cut.id].with_features_path_prefix(str(prepared_demo)).load_features())
        # what training learns from a replayed pseudo-labelled cut: the model's transcript
        labels = WhisperLabeler(whisper_tokenizer)(cut)
        assert whisper_tokenizer.decode(labels[4:-1]) == hyps[cut.id]


def test_empty_and_looping_outputs_are_dropped(prepared_demo, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(prepared_demo)
    cuts = list(load_manifest(VAL_CUTS))
    assert len(cuts) == 3  # the demo corpus's val part: vi, en, zh
    outputs = {cuts[0].id: " . ", cuts[1].id: "la la la " * 30}  # no word; runaway repetition
    outputs.update({c.id: f"câu {i}" for i, c in enumerate(cuts[2:])})

    from egrecho_inner.decoder import WhisperDecoder
    monkeypatch.setattr(WhisperDecoder, "transcribe_cuts", lambda self, cutset, *a, **k: outputs)
    counts = pseudo_label(str(tiny_model), VAL_CUTS, str(tmp_path / "p.jsonl.gz"), num_workers=0)
    assert counts == {"cuts": len(cuts), "written": len(cuts) - 2, "dropped_empty": 1, "dropped_repetitive": 1}
    assert {c.id: c.supervisions[0].text for c in load_manifest(tmp_path / "p.jsonl.gz")} == {
        c.id: outputs[c.id] for c in cuts[2:]}
    with pytest.raises(ValueError, match="overwrite"):
        pseudo_label(str(tiny_model), VAL_CUTS, VAL_CUTS)
    outputs.update({c.id: "" for c in cuts})
    with pytest.raises(ValueError, match="no usable transcript"):
        pseudo_label(str(tiny_model), VAL_CUTS, str(tmp_path / "none.jsonl.gz"), num_workers=0)
    assert not (tmp_path / "none.jsonl.gz").exists()


def test_relabel_spans_the_cut_with_several_supervisions(prepared_demo):
    cut = next(iter(load_manifest(prepared_demo / VAL_CUTS)))
    first = cut.supervisions[0]
    halves = [fastcopy(first, id="a", duration=cut.duration / 2, text="một"),
              fastcopy(first, id="b", start=cut.duration / 2, duration=cut.duration / 2, text="hai")]
    (supervision,) = relabel(fastcopy(cut, supervisions=halves), "ba").supervisions
    assert (supervision.text, supervision.start, supervision.duration) == ("ba", 0.0, cut.duration)
    assert supervision.custom["reference_text"] == "một hai" and supervision.language == first.language
    assert CutSet.from_cuts([relabel(cut, "ba")])[cut.id].supervisions[0].text == "ba"
