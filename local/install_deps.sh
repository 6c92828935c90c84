#!/usr/bin/env bash
# Install what the recipe and its tests need on a fresh Debian machine (run as root, or with sudo).
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox libsox-fmt-all)
command -v sctk >/dev/null || need_apt+=(sctk)  # NIST sclite: the tests' independent scorer
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -r requirements.txt
# openai-whisper only for its multilingual.tiktoken file (our offline tokenizer); its own
# dependencies (triton, numba) are not needed.
python3 -m pip install -q --disable-pip-version-check --no-deps openai-whisper==20250625
python3 -m pip install -q --disable-pip-version-check --no-deps -e .
