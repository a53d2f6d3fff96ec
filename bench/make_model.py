"""Write a llama-architecture GGUF with random weights (tests/random_model.py says how it is made).

.venv/bin/python bench/make_model.py OUT.gguf [--preset 1b|tiny] [--type q4_0|f16|f32] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ is a package

from tests.random_model import FILE_TYPES, PRESETS, write_model


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a llama-architecture GGUF with random weights.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    parser.add_argument("--type", choices=sorted(FILE_TYPES), default="q4_0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = write_model(args.out, PRESETS[args.preset], args.type, args.seed)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
