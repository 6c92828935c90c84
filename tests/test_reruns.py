"""prepare.sh reruns: a changed transcript, an added part or a changed option redoes exactly what it
affects and says why; an interrupted (kill -9) stage 3 rerun equals an uninterrupted run; two runs on
one prefix at once: the second refuses."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from lhotse import load_manifest

from tests.conftest import RECIPE_DIR, run_script

pytestmark = pytest.mark.slow


def wait_for_lock_release(lock, seconds: float = 30.0) -> None:
    deadline = time.time() + seconds
    with open(lock) as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)


def prepare(work, *options, check=True):
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "kaldi", "--prefix", "rr", *options,
                      cwd=work, check=check)
    return proc, proc.stdout + proc.stderr


def cuts(work, part):
    return {c.id: c for c in load_manifest(work / f"data/fbank_whisper80/rr_cuts_{part}.jsonl.gz")}


@pytest.fixture
def work(demo_corpus, tmp_path):
    shutil.copytree(demo_corpus, tmp_path / "kaldi", symlinks=True)
    return tmp_path


def test_changed_transcript_added_part_and_changed_option(work):
    _, log = prepare(work, "--parts", "train,val", "--stop_stage", "3")
    assert "train: writing manifests (not run before)" in log
    # a part added later under the same prefix is prepared; the others are up to date
    _, log = prepare(work, "--parts", "train,val,test", "--stop_stage", "3")
    assert "test: writing manifests (not run before)" in log and "test: computing cuts (not run before)" in log
    assert "train: manifests up to date" in log and "val: cuts up to date" in log
    assert len(cuts(work, "test")) == 3
    # a fixed transcript reaches the cuts: stage 1 and 3 redo that part only, saying why
    text = work / "kaldi/val/text"
    utt, old = text.read_text(encoding="utf-8").splitlines()[0].split(" ", 1)
    text.write_text(text.read_text(encoding="utf-8").replace(old, "Câu đã sửa.", 1), encoding="utf-8")
    before = {p.name: p.stat().st_mtime_ns for p in (work / "data/fbank_whisper80").glob("rr_cuts_*")}
    _, log = prepare(work, "--stop_stage", "3")
    assert "val: writing manifests (kaldi/val/text changed)" in log
    assert "val: computing cuts (data/manifests/rr_supervisions_val.jsonl changed)" in log
    assert "train: cuts up to date" in log and "test: manifests up to date" in log
    fixed = {c.supervisions[0].id: c.supervisions[0].text for c in cuts(work, "val").values()}
    assert fixed[utt] == "Câu đã sửa."
    after = {p.name: p.stat().st_mtime_ns for p in (work / "data/fbank_whisper80").glob("rr_cuts_*")}
    assert [name for name in after if after[name] != before[name]] == ["rr_cuts_val.jsonl.gz"]
    # an option that changes the output reruns the part it affects
    _, log = prepare(work, "--stage", "3", "--stop_stage", "3", "--perturb_speed", "true")
    assert "train: computing cuts (perturb_speed False -> True)" in log and "val: cuts up to date" in log
    assert len(cuts(work, "train")) == 36


def test_killed_stage_3_rerun_equals_an_uninterrupted_run(work, prepared_demo):
    prepare(work, "--stop_stage", "1")
    env = {**os.environ, "PYTHONPATH": str(RECIPE_DIR)}
    proc = subprocess.Popen(["bash", str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "kaldi", "--prefix", "rr",
                             "--stage", "3", "--stop_stage", "3"], cwd=work, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feats = work / "data/fbank_whisper80/rr_feats_train"
    deadline = time.time() + 120
    while not feats.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole stage: bash and its Python processes
    proc.wait()
    wait_for_lock_release(work / "data/manifests/.rr.lock")  # killed processes release it as they exit
    assert not (work / "data/fbank_whisper80/.rr_cuts_train.stamp.json").exists(), "killed too late to test"
    _, log = prepare(work, "--stage", "3", "--stop_stage", "3")
    assert "train: computing cuts" in log
    for part in ("train", "val", "test"):  # prepared_demo: the same corpus and options, never interrupted
        ours = cuts(work, part)
        theirs = {c.id: c for c in load_manifest(prepared_demo / f"data/fbank_whisper80/demo_vi_cuts_{part}.jsonl.gz")}
        assert ours.keys() == theirs.keys()
        for cut_id, cut in ours.items():
            assert cut.supervisions == theirs[cut_id].supervisions
            np.testing.assert_array_equal(cut.with_features_path_prefix(str(work)).load_features(),
                                          theirs[cut_id].with_features_path_prefix(str(prepared_demo)).load_features())
    assert not list((work / "data/fbank_whisper80").glob(".tmp-*"))


def test_a_changed_command_line_reruns_a_stamped_step(tmp_path):
    stamp, out = tmp_path / ".stamp.json", tmp_path / "out.txt"

    def stamped(*command):
        proc = subprocess.run([sys.executable, "-m", "egrecho_inner.stamps", "run", str(stamp), "--outputs", str(out),
                               "--", *command], capture_output=True, text=True, check=True, cwd=RECIPE_DIR)
        return proc.stdout

    assert "running (not run before)" in stamped("bash", "-c", f"echo a > {out}")
    assert "up to date" in stamped("bash", "-c", f"echo a > {out}")
    assert "running (command " in stamped("bash", "-c", f"echo b > {out}") and out.read_text() == "b\n"
    out.unlink()
    assert f"running (output missing: {out})" in stamped("bash", "-c", f"echo b > {out}")


def test_a_removed_option_or_input_reruns(tmp_path):
    """Options recorded only when set (prepare.sh's pack_segments, shar_shard_size, ...): a rerun without one
    is a change, not "up to date" over the last run's output."""
    from egrecho_inner.stamps import fingerprint, stale_reason, write_stamp

    stamp, out, extra = tmp_path / ".stamp.json", tmp_path / "out.txt", tmp_path / "replay.jsonl"
    out.write_text("x")
    extra.write_text("r")
    write_stamp(stamp, fingerprint([extra], {"pack_segments": "true", "num_mel_bins": "80"}))
    assert stale_reason(stamp, fingerprint([extra], {"pack_segments": "true", "num_mel_bins": "80"}), [out]) is None
    assert stale_reason(stamp, fingerprint([extra], {"num_mel_bins": "80"}), [out]) == "pack_segments 'true' -> not set"
    assert stale_reason(stamp, fingerprint([], {"pack_segments": "true", "num_mel_bins": "80"}), [out]) == \
        f"{extra} no longer an input"


def test_second_run_on_a_prefix_refuses(work):
    (work / "data/manifests").mkdir(parents=True)
    holder = subprocess.Popen(["flock", str(work / "data/manifests/.rr.lock"), "sleep", "60"], start_new_session=True)
    try:
        time.sleep(0.3)
        proc, log = prepare(work, check=False)
        assert proc.returncode != 0 and "another prepare.sh is working on prefix rr" in proc.stderr
        assert not (work / "data/manifests/rr_recordings_train.jsonl").exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock and the sleep holding the lock
        holder.wait()
    wait_for_lock_release(work / "data/manifests/.rr.lock")
    proc, _ = prepare(work, "--stop_stage", "1")  # free again
    assert proc.returncode == 0


def test_training_inputs_name_every_data_file_the_config_reads(tmp_path):
    """finetune.sh stamps what the resolved config names beyond train/val: replay, kl_to_base, non-speech,
    MUSAN and Shar (an edited replay manifest retrains: tests/test_train.py)."""
    from egrecho_inner.stamps import training_data_inputs

    config = tmp_path / "resolved.yaml"
    config.write_text("manifest_dir: fb\nprefix_name: p\nreplay: [r1.jsonl.gz, r2.jsonl.gz]\nkl_to_base: [k.jsonl.gz]\n"
                      "nospeech_cuts: n.jsonl.gz\nenable_musan: true\nshar: true\n")
    assert training_data_inputs(config) == ["r1.jsonl.gz", "r2.jsonl.gz", "k.jsonl.gz", "n.jsonl.gz",
                                            "fb/musan_cuts.jsonl.gz", "fb/p_shar_train"]
    config.write_text("manifest_dir: fb\nprefix_name: p\nreplay: []\nkl_to_base: []\nnospeech_cuts: null\n"
                      "enable_musan: false\nshar: false\n")
    assert training_data_inputs(config) == []
