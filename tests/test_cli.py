"""The egrecho console script: registry, help, configs."""

from __future__ import annotations

import os
import subprocess

import pytest

from egrecho_inner import cli


def egrecho(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["egrecho", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_help_lists_commands(capsys):
    out = egrecho("-h").stdout  # the console script itself
    cli.register_commands()
    assert cli.COMMANDS, "no command registered"
    for name in cli.COMMANDS:
        assert name in out
        with pytest.raises(SystemExit):  # in this process: one import instead of one per command
            cli.main([name, "-h"])
        sub = capsys.readouterr().out
        assert "--config" in sub and "--print_config" in sub


def test_print_config_round_trip(tmp_path, capsys):
    printed = egrecho("build-tokenizer", "--output_dir", str(tmp_path / "tok"), "--num_languages", "100", "--print_config").stdout
    assert "num_languages: 100" in printed
    config = tmp_path / "tok.yaml"
    config.write_text(printed)
    egrecho("build-tokenizer", "-c", str(config))
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.convert_tokens_to_ids("<|yue|>") == 50358  # the 100th language, as in large-v3


def test_errors_are_messages_not_tracebacks(tmp_path):
    proc = egrecho("describe", str(tmp_path / "none.jsonl.gz"), check=False)
    assert proc.returncode != 0 and "egrecho describe: error:" in proc.stderr and "Traceback" not in proc.stderr
    proc = egrecho("no-such-command", check=False)
    assert proc.returncode != 0 and "no-such-command" in proc.stderr


def test_our_input_errors_are_one_line_other_errors_keep_their_traceback(tmp_path, monkeypatch):
    from egrecho_inner.errors import InputError, MissingInputError

    def our_check():
        raise MissingInputError(f"{tmp_path / 'x'} not found: run prepare.sh")

    def a_bug():
        raise ValueError("deep inside a library")  # not ours: a bug or a case we did not foresee

    monkeypatch.setattr(cli, "COMMANDS", {})
    cli.register("ours", our_check, "raises our error")
    cli.register("bug", a_bug, "raises a plain ValueError")
    with pytest.raises(SystemExit, match=r"egrecho ours: error: .*x not found: run prepare.sh"):
        cli.main(["ours"])
    with pytest.raises(ValueError, match="deep inside a library"):
        cli.main(["bug"])
    assert issubclass(MissingInputError, FileNotFoundError) and issubclass(MissingInputError, InputError)


def test_half_written_model_dirs_are_named(tmp_path):
    model = tmp_path / "merged"
    model.mkdir()
    (model / "config.json").write_text("{}")
    proc = egrecho("eval", "--model_path", str(model), "--outdir", str(tmp_path / "o"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{model} has its config but no weights (model.safetensors): a half-written save?" in proc.stderr
    adapter = tmp_path / "checkpoint-final"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    proc = egrecho("merge-lora-whisper", "--lora_model", str(adapter), check=False)
    assert proc.returncode != 0 and "no weights (adapter_model.safetensors)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_output_dir_that_cannot_be_written_is_named_before_the_work(tiny_model, tmp_path):
    (tmp_path / "a_file").write_text("")
    proc = egrecho("eval", "--model_path", str(tiny_model), "--outdir", str(tmp_path / "a_file/out"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"can't write in {tmp_path / 'a_file/out'}: Not a directory" in proc.stderr


def test_register_rejects_taken_names():
    cli.register_commands()
    with pytest.raises(ValueError, match="taken"):
        cli.register("describe", print, "again")


def test_hf_download_offline_fails_clearly(tmp_path):
    from tests.conftest import RECIPE_DIR

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", str(RECIPE_DIR / "hf_download.sh"), "openai/whisper-tiny", str(tmp_path / "m")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "hf_download.sh: could not download openai/whisper-tiny" in proc.stderr and "Traceback" not in proc.stderr
