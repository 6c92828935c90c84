#!/usr/bin/env bash
# Prints where the dynamic linker finds a shared library (from `ldconfig -p`); exits 1 when it is not installed.
# Usage: bash local/find_library.sh SONAME        e.g. libtcmalloc_minimal.so.4
# Used by finetune.sh (the allocator it trains with), install_deps.sh, bench/bench_allocator.py and the tests.
set -euo pipefail
[ $# -eq 1 ] || { echo "Usage: bash local/find_library.sh SONAME" >&2; exit 2; }
# awk reads the whole listing: stopping early would kill ldconfig with SIGPIPE, a failure under pipefail
path=$(PATH=$PATH:/sbin:/usr/sbin ldconfig -p 2>/dev/null | awk -v soname="$1" '$1 == soname && !found {print $NF; found = 1}')
[ -n "$path" ] || exit 1
echo "$path"
