#!/usr/bin/env python3
"""Print duration statistics of lhotse manifests (cuts, recordings or supervisions).

Usage:
    ./local/display_manifests.py data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz
    ./local/display_manifests.py data/manifests/demo_vi_supervisions_*.jsonl
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.stats import print_stats  # noqa: E402


def main(paths: list[str]) -> int:
    if not paths or paths[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if paths else 2
    for path in paths:
        try:
            print_stats(path)
        except FileNotFoundError as e:
            print(f"display_manifests: error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
