"""Word timestamps from cross-attention, as Whisper computes them (openai-whisper's ``timing.py``, faster-whisper).

The transcript is fed back to the decoder once (teacher forcing, no timestamp tokens); the cross-attention of
a few "alignment heads" (decoder layer, head) follows the audio closely. Their weights over the audio's
encoder positions (20 ms each) are normalised per head, median-filtered along time and averaged; dynamic time
warping (librosa's) then maps every token to the position where the path first reaches it. A word starts at
its first token's time and ends where the next word starts (the last one: where end-of-text is reached).

Where words are separated by pauses, the path assigns each pause to the word after it, so a start found this
way falls in the pause before its word (by about half the pause). Given the recording's speech regions (Silero
VAD, ``egrecho_inner.vad``), :func:`snap_to_speech` moves each word onto the speech region it overlaps most, as
stable-ts does with its silence detection; words inside one region are left as they are.

The heads come from the model's ``generation_config.alignment_heads`` (OpenAI's list for its checkpoints;
``egrecho find-alignment-heads`` writes one for a fine-tuned or new-language model) or are given.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple, Optional, Sequence

import librosa
import numpy as np
import torch
from transformers.models.whisper.generation_whisper import _median_filter

from egrecho_inner.constants import FRAMES_PER_SECOND, MAX_INPUT_SECONDS, N_FRAMES, NO_SPACE_LANGUAGES, TIMESTAMP_STEP
from egrecho_inner.decode import detected_language_tokens, window_input
from egrecho_inner.new_language import prompt_ids
from egrecho_inner.seeking import FRAMES_PER_STEP, Segment

MEDIAN_FILTER_WIDTH = 7  # positions (140 ms), Whisper's default
Head = tuple[int, int]  # (decoder layer, head)


class Word(NamedTuple):
    """A word with its start and end in seconds and the model's mean probability of its tokens."""

    start: float
    end: float
    word: str
    probability: float


def alignment_heads(model) -> list[Head]:
    """The model's alignment heads; without a list of its own, every head of the decoder's second half (what
    CTranslate2 and transformers assume)."""
    heads = getattr(model.generation_config, "alignment_heads", None)
    if heads:
        return [tuple(h) for h in heads]
    layers, per_layer = model.config.decoder_layers, model.config.decoder_attention_heads
    return [(layer, head) for layer in range(layers // 2, layers) for head in range(per_layer)]


@contextlib.contextmanager
def eager_attention(model):
    """Eager attention inside the block: the fused kernels do not return attention weights."""
    before = model.config._attn_implementation
    if before != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            model.set_attn_implementation(before)


def sot_sequence(model, language: Optional[str], task: str = "transcribe") -> list[int]:
    """``<|startoftranscript|> <|lang|> <|task|> <|notimestamps|>`` for ``language`` (a model's own or added)."""
    return prompt_ids(model.generation_config.to_dict(), language, task)


def first_window(feats: torch.Tensor, unpadded: bool) -> tuple[torch.Tensor, int]:
    """The first 30 s of ``(T, n_mels)`` features as the encoder's input (``decode.window_input``) and the number
    of encoder positions that hold audio."""
    frames = min(feats.shape[0], N_FRAMES)
    return window_input(feats[:frames], unpadded), max(frames // FRAMES_PER_STEP, 1)


@torch.inference_mode()
def detect_language(model, feats: torch.Tensor, unpadded: bool) -> str:
    """The language code the first 30 s of ``(T, n_mels)`` features sound like."""
    features, _ = first_window(feats, unpadded)
    encoded = model.get_encoder()(features.to(model.device, model.dtype))
    return detected_language_tokens(model, encoded)[0][2:-2]


@torch.inference_mode()
def cross_attention(model, features: torch.Tensor, positions: int,
                    tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced cross-attention of every decoder head over the audio's first ``positions`` encoder positions,
    renormalised to them, ``(layers, heads, len(tokens), positions)``, and the probability of each next token,
    ``(len(tokens) - 1,)``."""
    features = features.to(model.device, model.dtype)
    ids = torch.tensor([tokens], device=model.device)
    with eager_attention(model):
        out = model(input_features=features, decoder_input_ids=ids, output_attentions=True, use_cache=False)
    weights = torch.stack([layer[0, :, :, :positions] for layer in out.cross_attentions]).float()
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-10)
    probs = out.logits[0, :-1].float().softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    return weights.cpu(), probs.cpu()


def token_times(weights: torch.Tensor) -> np.ndarray:
    """Seconds at which the warping path first reaches each row of ``weights`` ``(heads, rows, positions)``:
    each head normalised over the rows, median-filtered along time, the heads averaged, then DTW."""
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = _median_filter((weights - mean) / std.clamp_min(1e-10), MEDIAN_FILTER_WIDTH)
    matrix = weights.mean(0).double().numpy()
    _, path = librosa.sequence.dtw(C=-matrix, backtrack=True)
    rows, positions = path[::-1, 0], path[::-1, 1]
    first = np.concatenate([[True], np.diff(rows) > 0])
    return positions[first] * TIMESTAMP_STEP


def split_words(tokenizer, tokens: Sequence[int], language: Optional[str]) -> list[tuple[str, int]]:
    """``(word, number of tokens)`` of text ``tokens`` in order: a word starts at a token that begins with a space
    (punctuation stays with the word before it); languages written without spaces: one word per character run a
    token completes (a token ending inside a multi-byte character joins the next)."""
    words: list[tuple[str, int]] = []
    pending: list[int] = []
    for token in tokens:
        pending.append(token)
        text = tokenizer.decode(pending)
        if "\ufffd" in text:  # an incomplete UTF-8 character: wait for the rest
            continue
        if language in NO_SPACE_LANGUAGES or not words or text[:1].isspace():
            words.append((text, len(pending)))
        else:
            words[-1] = (words[-1][0] + text, words[-1][1] + len(pending))
        pending = []
    if pending:
        words.append((tokenizer.decode(pending), len(pending)))
    return words


def text_tokens(tokenizer, text: str) -> list[int]:
    """Tokens of a segment's text as the decoder writes it (with its leading space)."""
    return tokenizer.encode(" " + text.strip(), add_special_tokens=False)


def align_words(model, tokenizer, feats: torch.Tensor, texts: list[str], language: Optional[str], unpadded: bool,
                heads: Optional[list[Head]] = None, offset: float = 0.0) -> list[list[Word]]:
    """Timed words of each of ``texts``, which are the consecutive transcript pieces of the ``(T, n_mels)``
    features' first 30 s; times in seconds plus ``offset``."""
    pieces = [text_tokens(tokenizer, t) if t.strip() else [] for t in texts]
    flat = [t for piece in pieces for t in piece]
    if not flat:
        return [[] for _ in texts]
    features, positions = first_window(feats, unpadded)
    prefix = sot_sequence(model, language)
    eot = model.generation_config.eos_token_id
    weights, probs = cross_attention(model, features, positions, prefix + flat + [eot])
    heads = heads or alignment_heads(model)
    # rows from the one predicting the first text token to the one predicting end-of-text
    rows = torch.stack([weights[layer, head] for layer, head in heads])[:, len(prefix) - 1: -1]
    times = token_times(rows) + offset
    probs = probs[len(prefix) - 1:].numpy()
    words, index = [], 0
    for piece in pieces:
        piece_words = []
        for word, count in split_words(tokenizer, piece, language):
            end = times[index + count]
            piece_words.append(Word(float(times[index]), float(end), word.strip(),
                                    float(probs[index: index + count].mean())))
            index += count
        words.append(piece_words)
    return words


def snap_to_speech(words: list[Word], speech: list[tuple[float, float]]) -> list[Word]:
    """``words`` with each one's start and end moved inside the speech region it overlaps most (unchanged when it
    overlaps none)."""
    snapped = []
    for word in words:
        def overlap(region):
            return min(word.end, region[1]) - max(word.start, region[0])

        region = max(speech, key=overlap, default=None)
        if region is not None and overlap(region) > 0:
            word = word._replace(start=max(word.start, region[0]), end=min(word.end, region[1]))
        snapped.append(word)
    return snapped


def align_segments(model, tokenizer, feats: torch.Tensor, segments: list[Segment], language: Optional[str],
                   unpadded: bool, heads: Optional[list[Head]] = None,
                   speech: Optional[list[tuple[float, float]]] = None) -> list[list[Word]]:
    """Timed words of each of a recording's ``segments`` (from any engine), aligned in spans of up to 30 s of
    consecutive segments, each span's audio starting at its first segment; word times stay inside their
    segment, and inside the ``speech`` regions when given (:func:`snap_to_speech`)."""
    words: list[list[Word]] = []
    i = 0
    while i < len(segments):
        start = segments[i].start
        j = i + 1
        while j < len(segments) and segments[j].end - start <= MAX_INPUT_SECONDS:
            j += 1
        first = round(start * FRAMES_PER_SECOND)
        span = align_words(model, tokenizer, feats[first:], [s.text for s in segments[i:j]], language, unpadded,
                           heads, offset=first / FRAMES_PER_SECOND)
        for segment, found in zip(segments[i:j], span):
            found = snap_to_speech(found, speech) if speech else found
            words.append([w._replace(start=min(max(w.start, segment.start), segment.end),
                                     end=min(max(w.end, segment.start), segment.end)) for w in found])
        i = j
    return words
