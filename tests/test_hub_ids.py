"""Hub ids (``openai/whisper-small``) name a model wherever a dir does: found in the Hugging Face cache
offline, and refused in one line naming hf_download.sh and the cache searched when it is not there.
``egrecho eval`` with a hub id runs in tests/test_evaluate.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants
from peft import PeftConfig

from egrecho_inner import lora
from egrecho_inner.errors import MissingInputError
from egrecho_inner.model import resolve_model
from tests.test_train import train

pytestmark = pytest.mark.slow
REPO_ID = "tiny-org/whisper-tiny"


def populate_hub_cache(hf_home: Path, repo_id: str, model_dir: Path) -> Path:
    """Lay ``model_dir`` out as the hub cache does for ``repo_id`` (refs/main naming a snapshot dir)
    under ``hf_home/hub``; returns the snapshot dir."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "3f" * 20
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(commit)
    return snapshot


def test_hub_id_trains_merges_and_exports_offline(prepared_demo, tiny_model, tmp_path, monkeypatch):
    from egrecho_inner.deploy.export_ct2 import export_ct2
    from egrecho_inner.merge_lora import merge_lora_whisper

    snapshot = populate_hub_cache(tmp_path / "hf", REPO_ID, tiny_model)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(REPO_ID) == str(snapshot)

    with pytest.raises(MissingInputError) as missing:
        resolve_model("tiny-org/not-cached")
    message = str(missing.value)
    assert "bash hf_download.sh tiny-org/not-cached" in message and str(tmp_path / "hf/hub") in message
    assert "\n" not in message
    with pytest.raises(MissingInputError, match="the download failed"):  # allowed to download, but offline
        resolve_model("tiny-org/not-cached", local_files_only=False)

    # The adapter names its base by the hub id (not the cache path), so merging finds it the same way.
    monkeypatch.chdir(prepared_demo)
    train(lora, prepared_demo, REPO_ID, tmp_path / "lora", max_steps=1)
    adapter = tmp_path / "lora/checkpoint-final"
    assert PeftConfig.from_pretrained(adapter).base_model_name_or_path == REPO_ID
    merged = merge_lora_whisper(str(adapter))
    assert (Path(merged) / "model.safetensors").is_file()
    export_ct2(REPO_ID, str(tmp_path / "ct2"))
    assert (tmp_path / "ct2/model.bin").is_file()

