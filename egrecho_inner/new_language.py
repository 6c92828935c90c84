"""Teach Whisper a language it lacks: a ``<|CODE|>`` token in the tokenizer, a row in the (tied)
embedding and output layer, and an entry in the generation config's language map.

The new row starts as a copy of a related language's row (``new_language_init``), or as the mean of
all language rows, and trains with the rest. Everything downstream reads the language map, so the
saved model, merge, eval, transcribe and the exports accept the new code like a built-in one.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Optional

import torch
from tokenizers import AddedToken

from egrecho_inner.errors import InputError
from egrecho_inner.text import WHISPER_LANGUAGE_CODES

log = logging.getLogger(__name__)

LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,8})?$")  # ISO 639-1/3, optionally a region/script


def language_token(code: str) -> str:
    return f"<|{code}|>"


def add_language(model, tokenizer, code: str, init_from: Optional[str] = None) -> int:
    """Add language ``code`` to ``tokenizer`` and ``model`` (embeddings and generation config).

    A model that already has the code (trained with it before) is left as it is.

    Args:
        model: a ``WhisperForConditionalGeneration``.
        tokenizer: its Whisper tokenizer.
        code: the new language code, e.g. ``eo``.
        init_from: a language the model knows whose token row the new one copies; None: the mean
            of all language rows.

    Returns:
        the new token's id.
    """
    token = language_token(code)
    lang_to_id = dict(model.generation_config.lang_to_id or {})
    if code in WHISPER_LANGUAGE_CODES:
        raise InputError(f"new_language {code!r} is a Whisper language already: set language: {code} instead")
    if token in lang_to_id:
        if tokenizer.convert_tokens_to_ids(token) != lang_to_id[token]:
            raise InputError(f"the model maps {token} to id {lang_to_id[token]} but its tokenizer does not")
        log.info("%s is already in the model (id %d)", token, lang_to_id[token])
        return lang_to_id[token]
    if not LANGUAGE_CODE.match(code):
        raise InputError(f"new_language {code!r} is not a language code (2-3 lowercase letters, e.g. eo, haw)")
    if init_from is not None and language_token(init_from) not in lang_to_id:
        raise InputError(f"new_language_init {init_from!r} is not a language of this model")

    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)], special_tokens=True)
    new_id = tokenizer.convert_tokens_to_ids(token)
    if new_id >= model.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    embedding = model.get_input_embeddings().weight
    with torch.no_grad():
        if init_from is None:
            embedding[new_id] = embedding[list(lang_to_id.values())].mean(0)
        else:
            embedding[new_id] = embedding[lang_to_id[language_token(init_from)]]
    lang_to_id[token] = new_id
    model.generation_config.lang_to_id = lang_to_id
    log.info("added %s as token %d (initialised from %s)", token, new_id, init_from or "the mean language row")
    return new_id


def prompt_ids(generation: dict, language: Optional[str], task: str = "transcribe") -> list[int]:
    """Decoder prompt ids from a ``generation_config.json`` dict: start-of-transcript, the language (if
    given; Whisper's or an added one), the task and no-timestamps."""
    ids = [generation["decoder_start_token_id"]]
    if language is not None:
        token = language_token(language)
        if token not in generation["lang_to_id"]:
            raise InputError(f"language {language!r} is not in this model's generation config")
        ids.append(generation["lang_to_id"][token])
    return ids + [generation["task_to_id"][task], generation["no_timestamps_token_id"]]


def model_languages(model_dir: str) -> tuple[str, ...]:
    """Language codes in a model dir's ``generation_config.json`` (transformers, CTranslate2 or ONNX dir)."""
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file():
        return ()
    lang_to_id = json.loads(path.read_text()).get("lang_to_id") or {}
    return tuple(token[2:-2] for token in lang_to_id)


def generate_language(code: Optional[str]) -> Optional[str]:
    """The ``language`` argument transformers' ``generate`` accepts: Whisper's own codes as they are,
    an added language as its token (``<|eo|>``), which ``generate`` looks up in the language map."""
    return code if code is None or code in WHISPER_LANGUAGE_CODES else language_token(code)
