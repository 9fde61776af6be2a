"""Pack IMDB train/test for a GPU box that can receive little data (the device tool carries 64 MiB a call).

Writes ``train.txt.xz`` and ``test.txt.xz`` (texts joined by NUL, xz -9e: ~9 MB each, smaller than the
Parquet) and ``labels.npz`` (labels plus the row indices of the seed recipe's 3,000 train / 300 eval rows).
``benchmarks/gpu_train.py --bundle DIR`` reads it.

    python benchmarks/gpu_bundle.py --imdb ../shared/data/imdb --seed-train train3k.parquet \\
        --seed-eval eval300.parquet --out .gpu3
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", required=True, help="folder with train.parquet and test.parquet")
    parser.add_argument("--seed-train", help="Parquet of the seed recipe's train rows (default: 3000 sampled, seed 42)")
    parser.add_argument("--seed-eval", help="Parquet of the seed recipe's eval rows (default: 300 sampled, seed 42)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays, positions = {}, {}
    for split in ("train", "test"):
        frame = pd.read_parquet(Path(args.imdb) / f"{split}.parquet", columns=["text", "label"])
        if frame["text"].str.contains("\x00", regex=False).any():
            raise ValueError(f"{split}.parquet: a text contains NUL, the bundle's separator")
        (out / f"{split}.txt.xz").write_bytes(
            lzma.compress("\x00".join(frame["text"]).encode(), preset=9 | lzma.PRESET_EXTREME)
        )
        arrays[f"{split}_labels"] = frame["label"].to_numpy(np.int8)
        positions[split] = {text: i for i, text in enumerate(frame["text"])}
    for key, split, given, rows in (
        ("train3k", "train", args.seed_train, 3000),
        ("eval300", "test", args.seed_eval, 300),
    ):
        if given:
            arrays[f"{key}_index"] = np.array([positions[split][t] for t in pd.read_parquet(given)["text"]], np.int32)
        else:
            arrays[f"{key}_index"] = (
                np.random.default_rng(42).permutation(len(positions[split]))[:rows].astype(np.int32)
            )
    np.savez_compressed(out / "labels.npz", **arrays)
    print({p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()})


if __name__ == "__main__":
    main()
