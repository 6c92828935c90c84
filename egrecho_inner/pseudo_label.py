"""``egrecho pseudo-label``: relabel a cut manifest with a model's own transcripts (self-distillation).

Replaying other-language cuts with the *original* model's transcripts, rather than their references,
keeps what the model already does on them (its spelling, punctuation, casing) instead of pulling it
towards a new convention, the way Whisper-style self-distillation keeps a fine-tune close to its origin.
Each cut keeps its features and audio; its supervisions become one spanning the cut whose text is the
model's output (the old text is kept in ``custom["reference_text"]``). Cuts whose output has no word
(the model heard no speech) or runs away in repetition (``quality.is_repetitive``) are dropped and
counted: training on them would teach deletions or loops.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from lhotse import CutSet
from lhotse.supervision import SupervisionSegment
from lhotse.utils import fastcopy

from egrecho_inner.data_module import read_cuts
from egrecho_inner.decode import GenArgs
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder, cut_language
from egrecho_inner.errors import InputError
from egrecho_inner.features import check_mel_bins
from egrecho_inner.model import resolve_model
from egrecho_inner.new_language import model_languages
from egrecho_inner.quality import has_text, is_repetitive
from egrecho_inner.utils import atomic_path

log = logging.getLogger(__name__)


def relabel(cut, text: str):
    """``cut`` with one supervision spanning it whose text is ``text`` (language and speaker of its first
    supervision; the references joined in ``custom["reference_text"]``)."""
    first = cut.supervisions[0] if cut.supervisions else None
    reference = " ".join(s.text for s in cut.supervisions if s.text)
    supervision = SupervisionSegment(
        id=first.id if first else cut.id, recording_id=cut.recording_id, start=0.0, duration=cut.duration,
        channel=first.channel if first else 0, text=text, language=first.language if first else None,
        speaker=first.speaker if first else None, custom={"reference_text": reference},
    )
    return fastcopy(cut, supervisions=[supervision])


def pseudo_label(
    model_path: str,
    cuts: str,
    output: str,
    max_cuts: int = 16,
    num_workers: int = 2,
    on_the_fly_feats: bool = False,
    device: str = "auto",
    dtype: str = "float32",
    local_files_only: bool = True,
    remove_whisper_encoder_input_length_restriction: Optional[bool] = None,
    gen_args: GenArgs = GenArgs(),
) -> dict:
    """Write ``output``: the cuts of ``cuts`` labelled with ``model_path``'s transcripts.

    Args:
        model_path: the model whose outputs become the labels (usually the original, e.g. pretrained/whisper-base).
        cuts: a cut manifest (prepare.sh output, e.g. data/fbank_whisper80/demo_en_cuts_train.jsonl.gz).
        output: the relabelled manifest to write (e.g. ..._cuts_train_pseudo.jsonl.gz); give it to
            training's ``replay``.
        max_cuts: cuts per batch.
        num_workers: dataloader worker processes.
        on_the_fly_feats: compute features from audio instead of reading stored ones.
        device: auto (GPU if there is one), cpu, cuda, cuda:1, ...
        dtype: float32, float16 or bfloat16 (half precision on GPU only).
        local_files_only: never reach for the hub.
        remove_whisper_encoder_input_length_restriction: null: decode as the model was trained; true/false force it.
        gen_args: decoding options (language: null decodes each cut in its supervision's language, and
            detects it where there is none).

    Returns:
        counts: cuts read, written, dropped as empty, dropped as repetitive.
    """
    if Path(output).resolve() == Path(cuts).resolve():
        raise InputError(f"output {output} would overwrite the input manifest; name another file")
    model_path = resolve_model(model_path, local_files_only)
    cutset = read_cuts(cuts, "the cut manifest to pseudo-label").to_eager().sort_by_duration(ascending=False)
    known = model_languages(model_path)
    language_of = cut_language(cutset, gen_args.language, known, model_path)
    decoder = WhisperDecoder.load(DecodeArgs(model_path, device, dtype, local_files_only,
                                             remove_whisper_encoder_input_length_restriction, gen_args), language_of)
    if not on_the_fly_feats:
        check_mel_bins(cutset, cuts, decoder.num_mel_bins, model_path)
    hyps = decoder.transcribe_cuts(cutset, on_the_fly_feats, max_cuts, None, num_workers, "pseudo-label")
    kept, empty, repetitive = [], [], []
    for cut in cutset:
        text = hyps[cut.id].strip()
        if not has_text(text):
            empty.append(cut.id)
        elif is_repetitive(text):
            repetitive.append(cut.id)
        else:
            kept.append(relabel(cut, text))
    for reason, ids in (("no text", empty), ("runaway repetition", repetitive)):
        if ids:
            log.warning("pseudo-label: dropped %d cuts whose output had %s: %s", len(ids), reason, ids[:10])
    if not kept:
        raise InputError(f"{model_path} gave no usable transcript for any cut of {cuts}")
    with atomic_path(output) as tmp:
        CutSet.from_cuts(kept).to_file(tmp)
    counts = {"cuts": len(cutset), "written": len(kept), "dropped_empty": len(empty),
              "dropped_repetitive": len(repetitive)}
    print(f"pseudo-label: {counts['written']} of {counts['cuts']} cuts relabelled by {model_path} -> {output} "
          f"({counts['dropped_empty']} dropped with no text, {counts['dropped_repetitive']} with runaway repetition)")
    return counts
