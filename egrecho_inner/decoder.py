"""``WhisperDecoder``: one loaded Whisper model that decodes cuts in batches, feature arrays of any length,
or long recordings window by window with timestamps.

Built once from ``DecodeArgs`` (model, device, dtype, un-padded or padded, generation options); ``egrecho
eval``, ``egrecho pseudo-label``, ``egrecho transcribe --engine hf`` and the long-form bench all decode
through it, so the model is loaded, placed and switched to un-padded inputs in one place.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from egrecho_inner.constants import MAX_INPUT_SECONDS
from egrecho_inner.data_module import LhotseLoader
from egrecho_inner.dataset import WhisperDataset
from egrecho_inner.decode import GenArgs, generate_kwargs, long_form_batch, transcribe_batch, transcribe_features
from egrecho_inner.errors import InputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor
from egrecho_inner.model import load_whisper
from egrecho_inner.quality import segment_start_errors_ms
from egrecho_inner.scoring import normalize_text
from egrecho_inner.seeking import LongFormResult, Segment
from egrecho_inner.timed_words import word_start_errors_ms
from egrecho_inner.unpadded import enable_unpadded_inputs, resolve_unpadded
from egrecho_inner.vad import speech_intervals
from egrecho_inner.word_timing import Word, align_segments, detect_language

log = logging.getLogger(__name__)
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class DecodeArgs:
    """What a decoder is built from.

    Args:
        model_path: a transformers Whisper dir (a full fine-tune's checkpoint or a merged LoRA).
        device: auto (GPU if there is one), cpu, cuda, cuda:1, ...
        dtype: float32, float16 or bfloat16 (half precision on GPU only; float32 with a warning on CPU).
        local_files_only: never reach for the hub.
        unpadded: None: decode as the model was trained (recorded in its generation config); True: un-padded
            (the encoder runs on the input's own length, padding masked); False: every input padded to 30 s.
        gen_args: generation options.
    """

    model_path: str
    device: str = "auto"
    dtype: str = "float32"
    local_files_only: bool = True
    unpadded: Optional[bool] = None
    gen_args: GenArgs = field(default_factory=GenArgs)


def cut_language(cutset: CutSet, default_language: Optional[str], known: tuple[str, ...],
                 model_path: str) -> Callable[[object], Optional[str]]:
    """``cut -> language`` (its first supervision's, else ``default_language``; None: detect it); raises
    naming the first cut whose language the model lacks."""

    def language_of(cut) -> Optional[str]:
        return (cut.supervisions[0].language if cut.supervisions else None) or default_language

    unknown = next((c for c in cutset if known and language_of(c) and language_of(c) not in known), None)
    if unknown is not None:
        raise InputError(f"cut {unknown.id}: language {language_of(unknown)!r} is not one of {model_path}'s "
                         "languages (fine-tune with new_language, or score a Kaldi dir with --gen_args.language)")
    return language_of


def _no_language(_cut) -> None:
    return None


@dataclass
class WhisperDecoder:
    """A loaded model with its processor, generate kwargs and un-padded state (:meth:`load` builds one).
    ``seconds`` adds up the time spent in ``generate``; ``detected``, ``segments`` and
    ``windows_well_formed`` collect what :meth:`transcribe_cuts` found besides the text."""

    model: object
    processor: object
    device: str
    dtype: torch.dtype
    kwargs: dict
    language_of: Callable = _no_language  # cut -> its language (None: detected)

    unpadded: bool = False
    seconds: float = 0.0
    detected: dict = field(default_factory=dict)  # cut id -> language detected from its audio (batched cuts)
    segments: dict = field(default_factory=dict)  # cut id -> (start, end, text) segments (long-form cuts)
    windows_well_formed: list = field(default_factory=list)  # per window decoded in long form

    @classmethod
    def load(cls, args: DecodeArgs, language_of: Callable = _no_language) -> "WhisperDecoder":
        """The model of ``args`` on its device in its dtype, un-padded or padded as ``args.unpadded`` says."""
        if args.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {DTYPES}, got {args.dtype!r}")
        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        torch_dtype = getattr(torch, args.dtype)
        if torch_dtype != torch.float32 and not str(device).startswith("cuda"):
            log.warning("%s needs a GPU; decoding in float32 on %s", args.dtype, device)
            torch_dtype = torch.float32
        model, processor = load_whisper(args.model_path, args.local_files_only)
        model.to(device=device, dtype=torch_dtype).eval()
        unpadded = resolve_unpadded(model.generation_config, args.unpadded, args.model_path)
        if unpadded:
            enable_unpadded_inputs(model)
        log.info("decoding %s", "un-padded" if unpadded else "padded to 30 s")
        return cls(model, processor, device, torch_dtype, generate_kwargs(args.gen_args, processor, device),
                   language_of, unpadded)

    @property
    def num_mel_bins(self) -> int:
        return self.model.config.num_mel_bins

    @contextlib.contextmanager
    def _clock(self):
        """Add the block's wall time to ``seconds`` (the RTF counts generation only)."""
        start = time.perf_counter()
        yield
        self.seconds += time.perf_counter() - start

    def transcribe_batch(self, features: torch.Tensor, languages: list[Optional[str]],
                         mask: Optional[torch.Tensor] = None) -> tuple[list[str], list[str]]:
        """Texts and detected languages of a padded ``(B, n_mels, T)`` batch (``mask``: its frame mask)."""
        with self._clock():
            return transcribe_batch(self.model, self.processor, features.to(self.device, self.dtype), languages,
                                    self.kwargs, None if mask is None else mask.to(self.device), self.unpadded)

    def transcribe_long(self, feats: list[torch.Tensor], languages: list[Optional[str]]) -> list[LongFormResult]:
        """Timed segments of ``(T, n_mels)`` features of any length, decoded sequentially window by window
        (the next window of each in one batch)."""
        with self._clock():
            return long_form_batch(self.model, self.processor, feats, languages, self.kwargs, self.unpadded,
                                   self.device, self.dtype)

    def transcribe_features(self, feats: torch.Tensor, language: Optional[str]) -> str:
        """Text of one utterance's ``(T, n_mels)`` features of any length (over 30 s: window by window)."""
        with self._clock():
            return transcribe_features(self.model, self.processor, feats, language, self.kwargs, self.unpadded,
                                       self.device, self.dtype)

    def word_times(self, feats: torch.Tensor, segments: list, language: Optional[str],
                   samples=None) -> list[list[Word]]:
        """Timed words of each of one recording's ``segments`` (:func:`word_timing.align_segments`), moved onto the
        speech Silero VAD finds in its 16 kHz ``samples`` when given; ``language`` None: detected."""
        language = language or detect_language(self.model, feats, self.unpadded)
        speech = speech_intervals(samples) if samples is not None else None
        return align_segments(self.model, self.processor.tokenizer, feats, segments, language, self.unpadded,
                              speech=speech)

    def word_start_errors(self, cut, text: str, from_audio: bool) -> list[float]:
        """ms from each word of ``cut``'s word alignment to the start of the matching word of ``text`` (its
        transcript) as :meth:`word_times` finds it; words the transcript got wrong are not timed."""
        extractor = make_fbank_extractor(self.num_mel_bins) if from_audio else None
        feats, language = load_cut_features(cut, extractor), self.language_of(cut)
        segments = self.segments.get(cut.id) or [Segment(0.0, cut.duration, text)]
        words = [w for found in self.word_times(feats, segments, language, cut.load_audio()[0]) for w in found]
        offset = cut.start  # alignment items are on the recording's time line
        reference = [item._replace(start=item.start - offset) for item in cut.supervisions[0].alignment["word"]]
        return word_start_errors_ms(reference, words, lambda w: normalize_text(w, language))

    def segment_start_errors(self, cut) -> list[float]:
        """ms from each reference segment's start in ``cut`` to the nearest decoded segment's (cuts decoded
        with timestamps only)."""
        references = [s.start for s in cut.supervisions if s.text]
        return segment_start_errors_ms(references, [segment.start for segment in self.segments[cut.id]])

    def transcribe_cuts(self, cutset: CutSet, from_audio: bool, max_cuts: int, max_duration: Optional[float],
                        num_workers: int, part: str, timed: frozenset[str] = frozenset()) -> dict[str, str]:
        """Hypotheses by cut id: cuts over 30 s and the ``timed`` ones sequentially with timestamps, up to
        ``max_cuts`` at once (their segments kept in ``segments``, their windows' form in
        ``windows_well_formed``), the others in batches."""
        timed = set(timed) | {c.id for c in cutset if c.duration > MAX_INPUT_SECONDS}
        batched = cutset.filter(lambda c: c.id not in timed).to_eager()
        if self.unpadded:  # batches of similar lengths carry little padding (each cut decodes as it would alone)
            batched = batched.sort_by_duration(ascending=False)
        hyps = {}
        if len(batched):
            by_id = {c.id: c for c in batched}
            loader = LhotseLoader(SimpleCutSampler(batched, max_cuts=max_cuts, max_duration=max_duration),
                                  WhisperDataset(None, on_the_fly_feats=from_audio, num_mel_bins=self.num_mel_bins,
                                                 unpadded=self.unpadded), num_workers)
            for batch in tqdm(loader, desc=f"eval {part}", unit="batch"):
                languages = [self.language_of(by_id[i]) for i in batch["cut_ids"]]
                texts, detected = self.transcribe_batch(batch["input_features"], languages,
                                                        batch.get("attention_mask"))
                hyps.update(zip(batch["cut_ids"], texts))
                self.detected.update(zip(batch["cut_ids"], detected))
        extractor = make_fbank_extractor(self.num_mel_bins) if from_audio else None
        long = [c for c in cutset if c.id in timed]  # longest first: a batch's recordings end about together
        for start in tqdm(range(0, len(long), max_cuts), desc=f"eval {part} (long form)", unit="batch"):
            group = long[start: start + max_cuts]
            found = self.transcribe_long([load_cut_features(c, extractor) for c in group],
                                         [self.language_of(c) for c in group])
            for cut, result in zip(group, found):
                hyps[cut.id], self.segments[cut.id] = result.text, result.segments
                self.windows_well_formed += result.windows_well_formed
        return hyps
