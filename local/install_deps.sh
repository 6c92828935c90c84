#!/usr/bin/env bash
# Install what the recipe and its tests need on a fresh Debian/Ubuntu machine (root, or sudo for apt).
#
# Usage: bash local/install_deps.sh
#
# Python packages go into the active virtualenv/conda env if there is one, else into the recipe's own
# virtual environment .venv/ (created here; a stock Debian/Ubuntu python3 refuses pip installs, PEP 668).
# Every recipe script finds .venv/ by itself (local/path.sh); for interactive use:
#   source .venv/bin/activate
# A rerun with unchanged requirements installs nothing; delete .venv/ to rebuild it.
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")/.." && pwd)
cd "$recipe_dir"

in_env=false
if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then in_env=true; fi

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox libsox-fmt-all)
command -v sctk >/dev/null || need_apt+=(sctk)  # NIST sclite: the tests' independent scorer
if ! bash local/find_library.sh libtcmalloc_minimal.so.4 >/dev/null; then
  # the C allocator finetune.sh trains with (its peak memory); Ubuntu 24.04 renamed the package
  if apt-cache show libtcmalloc-minimal4t64 >/dev/null 2>&1; then need_apt+=(libtcmalloc-minimal4t64)
  else need_apt+=(libtcmalloc-minimal4); fi
fi
if [ "$in_env" = false ] && [ ! -x .venv/bin/python3 ] && ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  need_apt+=(python3-venv)                     # Debian/Ubuntu ship venv's pip bootstrap separately
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  echo "install_deps.sh: apt-get install ${need_apt[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "$in_env" = true ]; then
  python=python3
else
  if [ ! -x .venv/bin/python3 ]; then
    echo "install_deps.sh: creating the recipe's virtual environment in $recipe_dir/.venv"
    python3 -m venv --upgrade-deps .venv   # a current pip: wheels instead of legacy setup.py installs
  fi
  python=$recipe_dir/.venv/bin/python3
fi
env_prefix=$("$python" -c "import sys; print(sys.prefix)")

# Skip pip when this env already holds exactly what these files ask for (and for this checkout).
stamp=$env_prefix/.egrecho-recipe-deps
wanted=$(cat requirements.txt pyproject.toml "$0" | sha256sum | cut -d' ' -f1)" $recipe_dir"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "install_deps.sh: Python packages up to date in $env_prefix"
  exit 0
fi

echo "install_deps.sh: installing the pinned Python packages into $env_prefix"
pip=("$python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" torch==2.13.0
"${pip[@]}" -r requirements.txt
# openai-whisper only for its multilingual.tiktoken file (our offline tokenizer); its own
# dependencies (triton, numba) are not needed.
"${pip[@]}" --no-deps openai-whisper==20250625
"${pip[@]}" --no-deps -e .
echo "$wanted" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
echo "install_deps.sh: done (python: $python)"
