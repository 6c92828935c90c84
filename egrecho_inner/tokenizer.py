"""Build a Hugging Face ``WhisperTokenizer`` from OpenAI's ``multilingual.tiktoken`` BPE file.

Nothing is downloaded: the file ships inside the ``openai-whisper`` package. Special tokens are
added in OpenAI's order, so ids match the released models: ``<|endoftext|>`` 50257,
``<|startoftranscript|>`` 50258, then the language tokens, ``<|translate|>``, ``<|transcribe|>``,
``<|startoflm|>``, ``<|startofprev|>``, ``<|nospeech|>``, ``<|notimestamps|>`` and the 1,501
timestamp tokens ``<|0.00|>`` … ``<|30.00|>`` (51,865 tokens for 99 languages).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from tokenizers import AddedToken
from transformers import WhisperTokenizer
from transformers.convert_slow_tokenizer import TikTokenConverter

from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.text import WHISPER_LANGUAGE_CODES
from egrecho_inner.utils import Pathlike

# GPT-2's pre-tokenizer pattern, which Whisper's tiktoken encodings use.
WHISPER_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
NUM_TIMESTAMPS = 1501  # 0.00 .. 30.00 s in 20 ms steps
TIMESTAMP = re.compile(r"<\|\d+\.\d\d\|>")


def openai_tiktoken_file() -> Path:
    """Path of ``multilingual.tiktoken`` inside the installed ``openai-whisper`` package."""
    import importlib.util

    spec = importlib.util.find_spec("whisper")
    if spec is None or spec.origin is None:
        raise MissingInputError("openai-whisper is not installed: pip install --no-deps openai-whisper tiktoken")
    return Path(spec.origin).parent / "assets" / "multilingual.tiktoken"


def whisper_special_tokens(num_languages: int = 99) -> tuple[list[str], list[str]]:
    """(special tokens, timestamp tokens) in OpenAI's id order."""
    languages = [f"<|{code}|>" for code in WHISPER_LANGUAGE_CODES[:num_languages]]
    specials = [
        "<|endoftext|>", "<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>",
        "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
    ]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(NUM_TIMESTAMPS)]
    return specials, timestamps


def build_whisper_tokenizer(
    tiktoken_file: Optional[Pathlike] = None, num_languages: int = 99
) -> WhisperTokenizer:
    """A ``WhisperTokenizer`` whose ids equal OpenAI's multilingual tokenizer.

    Args:
        tiktoken_file: the BPE ranks file; default: the one in ``openai-whisper``.
        num_languages: 99 for v1/v2 models, 100 for large-v3 (adds ``yue``).
    """
    path = str(tiktoken_file or openai_tiktoken_file())
    converter = TikTokenConverter(vocab_file=path, pattern=WHISPER_SPLIT_PATTERN)
    vocab, merges = converter.extract_vocab_merges_from_model(path)
    return assemble_tokenizer(vocab, merges, *whisper_special_tokens(num_languages))


def assemble_tokenizer(vocab: dict, merges: list, specials: list[str], timestamps: list[str]) -> WhisperTokenizer:
    """A byte-level BPE ``WhisperTokenizer`` with the special and timestamp tokens appended in order."""
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials], special_tokens=True)
    # Timestamps are ordinary added tokens: HF's decoder finds them above the last special id.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in timestamps])
    return tokenizer


def repair_ct2_tokenizer(tokenizer_json: Pathlike) -> WhisperTokenizer:
    """The Whisper tokenizer from a CTranslate2 model dir's ``tokenizer.json``, repaired.

    faster-whisper's ``tokenizer.json`` lacks the first BPE merge (``Ġ t``: " the" would encode as two
    tokens) and the 1,501 timestamp tokens (50,364 tokens for a 51,865-entry vocabulary). Labels made
    with it would be wrong, so both are restored here.
    """
    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    if ("Ġ", "t") not in merges:
        merges.insert(0, ("Ġ", "t"))  # rank 0 in OpenAI's BPE: b" t"
    added = sorted(data["added_tokens"], key=lambda t: t["id"])
    specials = [t["content"] for t in added if not TIMESTAMP.fullmatch(t["content"])]
    if added and added[0]["id"] != len(vocab) - (1 if "<|endoftext|>" in vocab else 0):
        raise InputError(f"{tokenizer_json}: added tokens start at id {added[0]['id']}, expected {len(vocab)}")
    vocab = {k: v for k, v in vocab.items() if k not in specials}
    _, timestamps = whisper_special_tokens()
    return assemble_tokenizer(vocab, merges, specials, timestamps)


def save_whisper_tokenizer(output_dir: str, num_languages: int = 99, tiktoken_file: Optional[str] = None) -> None:
    """Build OpenAI's multilingual Whisper tokenizer offline and save it in Hugging Face format.

    Args:
        output_dir: where tokenizer.json and its configs go.
        num_languages: 99 for v1/v2 models, 100 for large-v3.
        tiktoken_file: BPE ranks file; default: the one in the openai-whisper package.
    """
    build_whisper_tokenizer(tiktoken_file, num_languages).save_pretrained(output_dir)
    print(f"saved Whisper tokenizer to {output_dir}")
