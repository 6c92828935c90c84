#!/usr/bin/env bash
# Source me: puts the recipe's Python environment first on PATH, as icefall's path.sh does.
#   . local/path.sh
# Inside an active virtualenv or conda env nothing changes (local/install_deps.sh installed there).
# Otherwise the recipe's own .venv/ (made by local/install_deps.sh) is used when it exists, so
# python3, egrecho, accelerate and lhotse all come from it without activating anything.
recipe_dir=${recipe_dir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ] && [ -x "$recipe_dir/.venv/bin/python3" ]; then
  export VIRTUAL_ENV=$recipe_dir/.venv
  export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
export PYTHONPATH="$recipe_dir${PYTHONPATH:+:$PYTHONPATH}"
