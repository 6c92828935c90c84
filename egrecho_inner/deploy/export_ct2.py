"""``egrecho export-ct2``: write a fine-tuned Whisper in CTranslate2 format for faster-whisper."""

from __future__ import annotations

import shutil
from pathlib import Path

from egrecho_inner.errors import InputError
from egrecho_inner.model import resolve_full_model
from egrecho_inner.utils import atomic_path

QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16", "int8_float32", "bfloat16")


def export_ct2(model_path: str, output_dir: str, quantization: str = "float32", local_files_only: bool = True) -> str:
    """Convert a transformers Whisper dir (full fine-tune or merged LoRA) with CTranslate2's own converter.

    Args:
        model_path: the model dir (with its processor files).
        output_dir: the CTranslate2 dir to write (loadable by ``faster_whisper.WhisperModel``).
        quantization: weight type: float32, float16, int8, int8_float16, int8_float32 or bfloat16.
        local_files_only: a hub id is looked up in the Hugging Face cache only (false: downloaded if missing).
    """
    import ctranslate2

    if quantization not in QUANTIZATIONS:
        raise InputError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    src = Path(resolve_full_model(model_path, local_files_only))
    copy = [name for name in ("tokenizer.json", "preprocessor_config.json") if (src / name).is_file()]
    with atomic_path(output_dir) as tmp:
        converter = ctranslate2.converters.TransformersConverter(str(src), copy_files=copy, load_as_float16=False)
        converter.convert(str(tmp), quantization=quantization)
        for name in ("tokenizer_config.json", "generation_config.json"):  # for readers that want them
            if (src / name).is_file():
                shutil.copy(src / name, tmp / name)
    print(f"exported {model_path} to {output_dir} ({quantization})")
    return output_dir
