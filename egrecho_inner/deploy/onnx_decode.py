"""Greedy Whisper decoding with onnxruntime over an ``egrecho export-onnx`` dir.

Decoding follows Hugging Face ``generate`` for greedy search: the prompt is
``<|startoftranscript|><|lang|><|task|><|notimestamps|>``, the generation config's ``suppress_tokens``
are masked at every step and ``begin_suppress_tokens`` at the first, and decoding stops at
``<|endoftext|>`` or the 448-token limit. With timestamps the prompt ends at the task and each step applies
Whisper's timestamp rules as transformers' ``WhisperTimeStampLogitsProcessor`` does (:func:`timestamp_rules`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from egrecho_inner.deploy.export_onnx import (
    CACHE_KINDS,
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    cache_names,
)
from egrecho_inner.errors import MissingInputError
from egrecho_inner.new_language import prompt_ids


class OnnxWhisper:
    """An exported Whisper run by onnxruntime: ``encode``, ``detect_language`` and ``greedy``."""

    def __init__(self, model_dir: str, device: str = "cpu", threads: int = 0):
        import onnxruntime as ort

        root = Path(model_dir)
        missing = [n for n in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE, "generation_config.json")
                   if not (root / n).is_file()]
        if missing:
            raise MissingInputError(f"{root} is not an ONNX Whisper dir (missing {', '.join(missing)}); "
                                    "see egrecho export-onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.encoder, self.decoder, self.decoder_with_past = (
            ort.InferenceSession(str(root / name), options, providers=providers)
            for name in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE))
        self.generation = json.loads((root / "generation_config.json").read_text())
        self.num_layers = sum(1 for o in self.decoder_with_past.get_outputs() if o.name.endswith(".decoder.key"))

    @property
    def fixed_frames(self) -> Optional[int]:
        """The frame count the encoder graph was exported for (3000), or None when it takes any length (an
        export of a model trained un-padded)."""
        frames = self.encoder.get_inputs()[0].shape[-1]
        return frames if isinstance(frames, int) else None

    @property
    def max_length(self) -> int:
        return int(self.generation.get("max_length", 448))

    def prompt(self, language: Optional[str], task: str = "transcribe", timestamps: bool = False) -> list[int]:
        """Start-of-transcript, language (if given), task and (without timestamps) no-timestamps token ids."""
        ids = prompt_ids(self.generation, language, task)
        return ids[:-1] if timestamps else ids

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Encoder output ``(B, T/2, d)`` of log-mel features ``(B, n_mels, T)``: T is 3000, or for a model
        trained un-padded any even count up to 3000."""
        return self.encoder.run(None, {"input_features": features.astype(np.float32)})[0]

    def detect_language(self, hidden: np.ndarray) -> list[str]:
        """Most likely language code per row, from the logits after ``<|startoftranscript|>``."""
        start = np.full((hidden.shape[0], 1), self.generation["decoder_start_token_id"], dtype=np.int64)
        logits = self.decoder.run(["logits"], {"input_ids": start, "encoder_hidden_states": hidden})[0][:, -1]
        codes = list(self.generation["lang_to_id"])
        ids = np.array([self.generation["lang_to_id"][c] for c in codes])
        return [codes[i][2:-2] for i in logits[:, ids].argmax(-1)]

    def greedy(self, hidden: np.ndarray, prompt: list[int], max_new_tokens: Optional[int] = None,
               timestamps: bool = False) -> list[list[int]]:
        """Generated token ids (prompt and end-of-text excluded) for each row of encoder output; with
        ``timestamps`` (and a prompt from ``prompt(..., timestamps=True)``) they hold timestamp tokens."""
        batch = hidden.shape[0]
        eos = self.generation["eos_token_id"]
        suppress = list(self.generation.get("suppress_tokens") or [])
        begin_suppress = list(self.generation.get("begin_suppress_tokens") or [])
        budget = self.max_length - len(prompt)
        budget = min(budget, max_new_tokens) if max_new_tokens else budget

        ids = np.tile(np.array(prompt, dtype=np.int64), (batch, 1))
        names = [o.name for o in self.decoder.get_outputs()]
        out = dict(zip(names, self.decoder.run(None, {"input_ids": ids, "encoder_hidden_states": hidden})))
        cache = {name.replace("present", "past_key_values"): out[name] for name in cache_names("present", self.num_layers)}
        logits = out["logits"][:, -1]
        tokens: list[list[int]] = [[] for _ in range(batch)]
        done = np.zeros(batch, dtype=bool)
        self_names = cache_names("present", self.num_layers, CACHE_KINDS[:2])
        for step in range(budget):
            logits = logits.copy()
            logits[:, suppress] = -np.inf
            if step == 0:
                logits[:, begin_suppress] = -np.inf
            if timestamps:
                logits = timestamp_rules(logits, tokens, self.generation)
            next_ids = np.where(done, eos, logits.argmax(-1))
            for row in np.flatnonzero(~done):
                if next_ids[row] == eos:
                    done[row] = True
                else:
                    tokens[row].append(int(next_ids[row]))
            if done.all() or step == budget - 1:
                break
            feed = {"input_ids": next_ids[:, None].astype(np.int64), **cache}
            results = self.decoder_with_past.run(["logits", *self_names], feed)
            logits = results[0][:, -1]
            for name, value in zip(self_names, results[1:]):
                cache[name.replace("present", "past_key_values")] = value
        return tokens


def timestamp_rules(logits: np.ndarray, generated: list[list[int]], generation: dict) -> np.ndarray:
    """Whisper's timestamp rules on next-token logits ``(B, V)`` given each row's generated tokens:
    no <|notimestamps|>; timestamps come in pairs and never go back; the first token is a timestamp (up to
    ``max_initial_timestamp_index`` when the config sets it); and a timestamp is forced when the timestamps
    together are more likely than any text token."""
    begin = generation["no_timestamps_token_id"] + 1
    eos = generation["eos_token_id"]
    logits[:, begin - 1] = -np.inf
    for row, seq in enumerate(generated):
        last = len(seq) >= 1 and seq[-1] >= begin
        penultimate = len(seq) < 2 or seq[-2] >= begin
        if last:
            if penultimate:
                logits[row, begin:] = -np.inf  # a pair just closed: text (or the end) next
            else:
                logits[row, :eos] = -np.inf  # a segment just ended: another timestamp or the end
        stamps = [t for t in seq if t >= begin]
        if stamps:
            logits[row, begin:stamps[-1] if last and not penultimate else stamps[-1] + 1] = -np.inf
        if not seq:
            logits[row, :begin] = -np.inf
            if generation.get("max_initial_timestamp_index") is not None:
                logits[row, begin + generation["max_initial_timestamp_index"] + 1:] = -np.inf
    shifted = logits - logits.max(-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    stamp_logprob = np.logaddexp.reduce(logprobs[:, begin:], axis=-1)
    force = stamp_logprob > logprobs[:, :begin].max(-1)
    logits[force, :begin] = -np.inf
    return logits
