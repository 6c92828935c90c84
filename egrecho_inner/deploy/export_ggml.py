"""``egrecho export-ggml``: write a transformers Whisper as a whisper.cpp model (``ggml-model.bin``).

The file is whisper.cpp's own binary layout: a magic number and the hyper-parameters, the mel filter bank
its front end applies, the byte strings of the regular BPE tokens (whisper.cpp names the special tokens
itself, from the vocabulary size), then every tensor under OpenAI's names with its shape and data.

whisper.cpp knows languages by a fixed table: the id of ``<|xx|>`` follows from the code, and the
vocabulary size says how many languages there are (51865: 99, 51866: 100 for large-v3). A language added by
fine-tuning (``new_language``) is a token after those; whisper.cpp can't address it, and counting it
would shift every special token. So its row is dropped, or, with ``language_slot``, written into the row of
a Whisper language that the deployment doesn't need: ``-l SLOT`` in whisper.cpp (``--language NEW`` in
``egrecho transcribe --engine cpp``, which reads the slot from ``ggml_export.json``) then prompts with it.

``quant`` writes the file whisper.cpp's ``quantize`` tool would make from the f16 one: the 2-D weight matrices
(the token embedding included) as ggml blocks (:mod:`egrecho_inner.deploy.ggml_quants`), the convolution kernels
f16, the rest f32, and ``ftype + 2000`` in the header (quantization format version 2). whisper.cpp's loader
expects exactly those types, so every matrix row must be a multiple of 32 values (all Whisper sizes are).
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from transformers import WhisperFeatureExtractor
from transformers.convert_slow_tokenizer import bytes_to_unicode

from egrecho_inner.deploy.ggml_quants import GGML_TYPE, QK, QUANTS, header_ftype, quantize
from egrecho_inner.errors import InputError
from egrecho_inner.model import load_whisper, resolve_full_model
from egrecho_inner.new_language import language_token
from egrecho_inner.text import WHISPER_LANGUAGE_CODES
from egrecho_inner.utils import atomic_path

log = logging.getLogger(__name__)
GGML_MAGIC = 0x67676D6C  # "ggml"
GGML_FILE = "ggml-model.bin"
EXPORT_INFO = "ggml_export.json"
DTYPES = ("f16", "f32")

# transformers name pieces -> OpenAI's (whisper.cpp looks tensors up by these)
_RENAMES = [
    ("model.encoder.embed_positions.weight", "encoder.positional_embedding"),
    ("model.decoder.embed_positions.weight", "decoder.positional_embedding"),
    ("model.decoder.embed_tokens.weight", "decoder.token_embedding.weight"),
    ("model.encoder.layer_norm.", "encoder.ln_post."),
    ("model.decoder.layer_norm.", "decoder.ln."),
    ("model.", ""),
    (".layers.", ".blocks."),
    (".self_attn_layer_norm.", ".attn_ln."),
    (".encoder_attn_layer_norm.", ".cross_attn_ln."),
    (".final_layer_norm.", ".mlp_ln."),
    (".self_attn.", ".attn."),
    (".encoder_attn.", ".cross_attn."),
    (".q_proj.", ".query."),
    (".k_proj.", ".key."),
    (".v_proj.", ".value."),
    (".out_proj.", ".out."),
    (".fc1.", ".mlp.0."),
    (".fc2.", ".mlp.2."),
]
_ALWAYS_F32 = ("encoder.positional_embedding", "decoder.positional_embedding", "encoder.conv1.bias",
               "encoder.conv2.bias")


def ggml_name(hf_name: str) -> str:
    """OpenAI's (whisper.cpp's) name of a transformers Whisper parameter."""
    for old, new in _RENAMES:
        hf_name = hf_name.replace(old, new)
    return hf_name


def _token_bytes(tokenizer, count: int) -> list[bytes]:
    """The byte string of each regular token id below ``count`` (byte-level BPE strings decoded)."""
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    return [bytes(byte_of[c] for c in tokenizer.convert_ids_to_tokens(i)) for i in range(count)]


def _added_languages(generation_config) -> dict[str, int]:
    """Languages added by fine-tuning: code -> token id."""
    return {token[2:-2]: i for token, i in (generation_config.lang_to_id or {}).items()
            if token[2:-2] not in WHISPER_LANGUAGE_CODES}


def export_ggml(model_path: str, output_dir: str, dtype: str = "f16", quant: Optional[str] = None,
                language_slot: Optional[str] = None, local_files_only: bool = True) -> str:
    """Write ``<output_dir>/ggml-model.bin`` for whisper.cpp from a transformers Whisper dir (merged LoRA,
    full fine-tune or new-language model).

    Args:
        model_path: the model dir or hub id.
        output_dir: where ``ggml-model.bin`` and ``ggml_export.json`` go.
        dtype: f16 (whisper.cpp's usual weights; biases, norms and positions stay f32) or f32.
        quant: q8_0, q5_0 or q4_0: the weight matrices block-quantized (8, 5 or 4 bits and an fp16 scale per 32
            values), the rest as with f16; None: ``dtype`` alone.
        language_slot: a Whisper language code whose token row takes a language added by fine-tuning
            (whisper.cpp can only prompt with its own table's languages); None: the added row is dropped.
        local_files_only: a hub id is looked up in the Hugging Face cache only.
    """
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if quant is not None and quant not in QUANTS:
        raise InputError(f"quant must be one of {', '.join(QUANTS)} (or none: dtype alone), got {quant!r}")
    if quant is not None and dtype != "f16":
        raise InputError(f"quant {quant} keeps the other tensors f16 as whisper.cpp expects: drop --dtype {dtype}")
    model_path = resolve_full_model(model_path, local_files_only)
    model, processor = load_whisper(model_path)
    config, tokenizer = model.config, processor.tokenizer
    if quant is not None and config.d_model % QK:
        raise InputError(f"{model_path}: {quant} needs d_model to be a multiple of {QK} (whisper.cpp quantizes every "
                         f"weight matrix in blocks of {QK}), got {config.d_model}: export without --quant")
    state = {k: v.detach().float() for k, v in model.state_dict().items() if k != "proj_out.weight"}  # tied
    embed = state["model.decoder.embed_tokens.weight"]
    added = _added_languages(model.generation_config)
    n_vocab = config.vocab_size - len(added)
    if added and sorted(added.values()) != list(range(n_vocab, config.vocab_size)):
        raise InputError(f"{model_path}: added language tokens {added} are not the vocabulary's last rows")
    slots = {}
    if language_slot is not None:
        if len(added) != 1:
            raise InputError(f"language_slot needs exactly one language added by fine-tuning; {model_path} has "
                             f"{sorted(added) or 'none'}")
        slot_token = language_token(language_slot)
        if language_slot not in WHISPER_LANGUAGE_CODES or slot_token not in model.generation_config.lang_to_id:
            raise InputError(f"language_slot {language_slot!r} is not one of this model's Whisper languages")
        (code, new_id), = added.items()
        embed[model.generation_config.lang_to_id[slot_token]] = embed[new_id]
        slots[code] = language_slot
    state["model.decoder.embed_tokens.weight"] = embed[:n_vocab]
    for code in added:
        log.info("export-ggml: %s %s", language_token(code),
                 f"written into {language_token(slots[code])}'s row" if code in slots else "dropped (see language_slot)")

    mel_filters = WhisperFeatureExtractor(feature_size=config.num_mel_bins).mel_filters.T.astype(np.float32)
    eot = model.generation_config.eos_token_id
    target = Path(output_dir) / GGML_FILE
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        out.write(struct.pack("i", GGML_MAGIC))
        out.write(struct.pack("11i", n_vocab, config.max_source_positions, config.d_model,
                              config.encoder_attention_heads, config.encoder_layers, config.max_target_positions,
                              config.d_model, config.decoder_attention_heads, config.decoder_layers,
                              config.num_mel_bins, header_ftype(quant or dtype)))
        out.write(struct.pack("2i", *mel_filters.shape))
        out.write(mel_filters.tobytes())
        tokens = _token_bytes(tokenizer, eot)
        out.write(struct.pack("i", len(tokens)))
        for token in tokens:
            out.write(struct.pack("i", len(token)) + token)
        for hf_name, tensor in state.items():
            _write_tensor(out, ggml_name(hf_name), tensor, dtype, quant)
    if (Path(model_path) / "generation_config.json").is_file():  # languages and how it was trained, for transcribe
        shutil.copy(Path(model_path) / "generation_config.json", Path(output_dir) / "generation_config.json")
    (Path(output_dir) / EXPORT_INFO).write_text(json.dumps(
        {"source": str(model_path), "dtype": dtype, "quant": quant, "n_vocab": n_vocab, "language_slots": slots,
         "dropped_languages": sorted(set(added) - set(slots))}, indent=1) + "\n")
    print(f"exported {model_path} to {target} (whisper.cpp, {quant or dtype})")
    return str(target)


def _write_tensor(out, name: str, tensor: torch.Tensor, dtype: str, quant: Optional[str]) -> None:
    data = tensor.numpy()
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        data = data.reshape(data.shape[0], 1)  # whisper.cpp adds them as (1, n_state)
    kind = "f32"
    if data.ndim >= 2 and name not in _ALWAYS_F32:
        kind = quant if quant is not None and data.ndim == 2 else dtype  # 3-D: the convolution kernels
    encoded = name.encode()
    out.write(struct.pack("3i", data.ndim, len(encoded), GGML_TYPE[kind]))
    out.write(struct.pack(f"{data.ndim}i", *reversed(data.shape)))  # ggml lists the fastest dimension first
    out.write(encoded)
    if kind in QUANTS:
        out.write(quantize(data.astype(np.float16), kind))  # from f16, as quantize reads the f16 file: same bytes
    else:
        out.write(np.ascontiguousarray(data, dtype=np.float16 if kind == "f16" else np.float32).tobytes())
