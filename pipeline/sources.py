"""One entry point for training data: a store directory, a benchmark pickle (or a folder holding one), or Parquet."""
from __future__ import annotations

from pathlib import Path

from pipeline.arrays import ArraySplit, ensure_splits
from pipeline.benchmark_files import load_pickle, load_word_aligned_parquet, pickles_in


def load_source(source, *, trust_pickle: bool = False, aligned: bool | None = None,
                max_len: int | None = None) -> dict[str, ArraySplit]:
    """Every split of ``source``: a store directory, a MulT or MMSA pickle (or a folder holding one) or a Parquet file.

    trust_pickle: load pickles with the unrestricted :mod:`pickle` (only for files you trust).
    aligned: for a store, use its word-aligned view; for a folder of pickles, pick the aligned file
        (``*_data.pkl``, ``aligned_50.pkl``) rather than the unaligned one. None: unaligned for pickles, as stored.
    max_len: longest sequence kept (later steps are cut) for sources of varying lengths (the store, Parquet).
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: [load] no such data source")
    if path.is_dir():
        pickles = pickles_in(path, aligned)
        if pickles:
            return load_pickle(pickles[0], trust_pickle=trust_pickle)
        from pipeline.store_source import store_splits  # pulls in torch (the store's views): only when used

        return store_splits(path, aligned=bool(aligned), max_len=max_len)
    if path.suffix in (".pkl", ".pickle"):
        return load_pickle(path, trust_pickle=trust_pickle)
    if path.suffix == ".parquet":
        return load_word_aligned_parquet(path, max_len=max_len)
    raise ValueError(f"{path}: [load] unknown data source (expected a store directory, .pkl or .parquet)")


def training_splits(source, *, aligned: bool = False, max_len: int | None = None,
                    trust_pickle: bool = False) -> tuple[dict[str, ArraySplit], dict]:
    """``{split: ArraySplit}`` with train and valid (a single split is cut by video) and the data's description
    (what a run records in its config.json)."""
    from pipeline.store_source import store_description  # pulls in the store's views: only when used

    raw = load_source(source, trust_pickle=trust_pickle, aligned=aligned, max_len=max_len)
    try:
        splits = ensure_splits(raw)
    except ValueError as exc:
        raise ValueError(f"{source}: [load] {exc}") from None
    info = {"source": str(Path(source).resolve()), "splits": {k: len(v) for k, v in splits.items()},
            "cut_by_video": sorted(raw) != sorted(splits), "dims": list(splits["train"].dims),
            "lengths": list(splits["train"].lengths), "classes": splits["train"].classes,
            **store_description(source if Path(source).is_dir() else None)}
    return splits, info
