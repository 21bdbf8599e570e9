"""Training data in one in-memory format, from the project's store or the benchmarks' released files.

:func:`load_source` reads any of

- the project's Parquet feature store (a directory; unaligned, or word-aligned with ``aligned=True``);
- MulT's pickles (``mosi_data.pkl``, ``mosi_data_noalign.pkl``, ``mosei_senti_data(_noalign).pkl``,
  ``iemocap_data(_noalign).pkl``): ``{split: {"text", "audio", "vision", "labels", "id"}}``, zero-padded at the
  start, IEMOCAP labels one-hot (N, 4, 2) in the order neutral, happy, sad, angry (reordered to the project's
  happy, sad, angry, neutral);
- MMSA's pickles (``aligned_50.pkl``, ``unaligned_50.pkl``): ``{split: {"text", "audio", "vision",
  "regression_labels", "id", "audio_lengths", "vision_lengths", ...}}``, padded at the end;
- a word-aligned Parquet table (columns ``segment_id, video_id, label, words, glove300, facet47, covarep74``, one
  list of per-word vectors each), like ``mosi_valid_word_aligned.parquet``;

and returns ``{split: ArraySplit}``. Pickles go through :mod:`pipeline.safe_pickle` unless ``trust_pickle``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import safe_pickle

TASKS = ("regression", "iemocap", "classification")
MODALITIES = ("text", "vision", "audio")
MULT_PICKLES = ("mosi_data.pkl", "mosi_data_noalign.pkl", "mosei_senti_data.pkl", "mosei_senti_data_noalign.pkl",
                "iemocap_data.pkl", "iemocap_data_noalign.pkl")
MMSA_PICKLES = ("aligned_50.pkl", "unaligned_50.pkl")
# MulT's IEMOCAP labels are (neutral, happy, sad, angry); the project's order is (happy, sad, angry, neutral).
MULT_TO_PROJECT_EMOTIONS = [1, 2, 3, 0]
SPLIT_NAMES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "validation": "valid",
               "test": "test"}


@dataclass
class ArraySplit:
    """One split, zero-padded to fixed lengths. Masks are True on real time steps."""

    text: np.ndarray  # (N, T_l, d_l) float32
    vision: np.ndarray  # (N, T_v, d_v) float32
    audio: np.ndarray  # (N, T_a, d_a) float32
    text_mask: np.ndarray  # (N, T_l) bool
    vision_mask: np.ndarray  # (N, T_v) bool
    audio_mask: np.ndarray  # (N, T_a) bool
    labels: np.ndarray  # regression (N,) float32 | iemocap (N, 4) int64 in {0, 1} | classification (N,) int64
    ids: list[str]
    task: str = "regression"
    video_ids: list[str] | None = None  # groups for splits that keep a speaker's segments together
    classes: list[str] | None = None  # names of the classification labels 0..C-1

    def __post_init__(self):
        assert self.task in TASKS, f"task {self.task!r} not in {TASKS}"
        n = len(self.labels)
        for m in MODALITIES:
            x, mask = getattr(self, m), getattr(self, f"{m}_mask")
            assert x.ndim == 3 and len(x) == n, f"{m}: expected (N={n}, T, d), got {x.shape}"
            assert mask.shape == x.shape[:2], f"{m}_mask {mask.shape} does not match {m} {x.shape}"
        assert len(self.ids) == n, f"{len(self.ids)} ids for {n} samples"
        assert self.video_ids is None or len(self.video_ids) == n, "one video id per sample"
        if self.task == "iemocap":
            assert self.labels.shape == (n, 4), f"iemocap labels must be (N, 4), got {self.labels.shape}"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dims(self) -> tuple[int, int, int]:
        """Feature sizes (d_l, d_v, d_a)."""
        return self.text.shape[2], self.vision.shape[2], self.audio.shape[2]

    @property
    def lengths(self) -> tuple[int, int, int]:
        """Padded lengths (T_l, T_v, T_a)."""
        return self.text.shape[1], self.vision.shape[1], self.audio.shape[1]

    def subset(self, index) -> ArraySplit:
        """The samples at ``index`` (an int array or a boolean mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                fields[name] = value[index]
        fields["ids"] = [self.ids[i] for i in index]
        fields["video_ids"] = None if self.video_ids is None else [self.video_ids[i] for i in index]
        return ArraySplit(**fields)


def pad_sequences(seqs: list[np.ndarray], max_len: int | None = None, dim: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stack (T_i, d) sequences, zero-padded at the end (truncated to ``max_len``). -> (N, T, d) float32, (N, T) bool."""
    if dim is None:
        dim = next((s.shape[1] for s in seqs if s.ndim == 2), 0)
    longest = max((len(s) for s in seqs), default=0)
    length = max(1, longest if max_len is None else max_len)
    out = np.zeros((len(seqs), length, dim), dtype=np.float32)
    mask = np.zeros((len(seqs), length), dtype=bool)
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.float32).reshape(-1, dim)[:length]
        out[i, : len(s)] = s
        mask[i, : len(s)] = True
    return out, mask


def fit_lengths(split: ArraySplit, lengths: tuple[int, int, int]) -> ArraySplit:
    """The split padded or truncated to exactly ``lengths`` = (T_l, T_v, T_a) steps, real steps moved to the front.

    Models with length-sized parameters (MCR's SCU attention) need the lengths they were built with.
    """
    fields = {}
    for m, length in zip(MODALITIES, lengths):
        x, mask = getattr(split, m), getattr(split, f"{m}_mask")
        seqs = [row[keep] for row, keep in zip(x, mask)]
        fields[m], fields[f"{m}_mask"] = pad_sequences(seqs, length, x.shape[2])
    return dataclasses.replace(split, **fields)


# ----------------------------------------------------------------------------------------------- normalisation
def fit_normalizer(split: ArraySplit) -> dict[str, np.ndarray]:
    """Per-feature mean and std of each modality over its real steps: ``{"<m>.mean": (d,), "<m>.std": (d,)}``."""
    stats = {}
    for m in MODALITIES:
        real = getattr(split, m)[getattr(split, f"{m}_mask")]  # (steps, d)
        real = real if len(real) else np.zeros((1, getattr(split, m).shape[2]), np.float32)
        std = real.std(0)
        stats[f"{m}.mean"] = real.mean(0).astype(np.float32)
        stats[f"{m}.std"] = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    return stats


def normalize(split: ArraySplit, stats: dict[str, np.ndarray]) -> ArraySplit:
    """The split standardised with ``stats`` from :func:`fit_normalizer` (of the training split); padding stays 0."""
    fields = {}
    for m in MODALITIES:
        x, mask = getattr(split, m), getattr(split, f"{m}_mask")
        assert stats[f"{m}.mean"].shape == (x.shape[2],), f"{m}: normaliser for another feature size"
        fields[m] = np.where(mask[..., None], (x - stats[f"{m}.mean"]) / stats[f"{m}.std"], 0.0).astype(np.float32)
    return dataclasses.replace(split, **fields)


# ------------------------------------------------------------------------------------------------ group splits
def group_folds(groups: list[str], n_folds: int) -> list[np.ndarray]:
    """Sample indices of ``n_folds`` folds that never split a group, balanced by size (largest group first)."""
    names, counts = np.unique(np.asarray(groups), return_counts=True)
    assert len(names) >= n_folds, f"{len(names)} groups cannot make {n_folds} folds"
    sizes = [0] * n_folds
    fold_of = {}
    for name, count in sorted(zip(names.tolist(), counts.tolist()), key=lambda nc: (-nc[1], nc[0])):
        k = int(np.argmin(sizes))
        fold_of[name] = k
        sizes[k] += count
    fold = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(fold == k) for k in range(n_folds)]


def ensure_splits(splits: dict[str, ArraySplit]) -> dict[str, ArraySplit]:
    """``splits`` if it has train and valid; otherwise its one split cut into train/valid/test (3/5, 1/5, 1/5).

    The cut never splits a video (fewer than 3 videos: segments are cut instead), so no speaker is in two splits.
    """
    if "train" in splits and "valid" in splits:
        return splits
    assert len(splits) == 1, f"cannot make train/valid splits out of {sorted(splits)}"
    (whole,) = splits.values()
    groups = whole.video_ids if whole.video_ids and len(set(whole.video_ids)) >= 3 else whole.ids
    assert len(set(groups)) >= 3, f"{len(whole)} samples cannot make train, valid and test splits"
    folds = group_folds(groups, min(5, len(set(groups))))
    return {"train": whole.subset(np.concatenate(folds[:-2])), "valid": whole.subset(folds[-2]),
            "test": whole.subset(folds[-1])}


# ---------------------------------------------------------------------------------------------------- loaders
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
        pickles = _pickles_in(path, aligned)
        if pickles:
            return load_source(pickles[0], trust_pickle=trust_pickle)
        return load_store(path, aligned=bool(aligned), max_len=max_len)
    if path.suffix in (".pkl", ".pickle"):
        data = safe_pickle.load(path, trust_pickle=trust_pickle)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: [load] expected a dict of splits, got {type(data).__name__}")
        first = next(iter(data.values()), {})
        if isinstance(first, dict) and "regression_labels" in first:
            return {SPLIT_NAMES.get(k, k): _from_mmsa(v, path) for k, v in data.items()}
        if isinstance(first, dict) and "labels" in first:
            task = "iemocap" if "iemocap" in path.name else "regression"
            return {SPLIT_NAMES.get(k, k): _from_mult(v, path, task) for k, v in data.items()}
        raise ValueError(f"{path}: [load] neither MulT's (labels) nor MMSA's (regression_labels) pickle schema")
    if path.suffix == ".parquet":
        return load_word_aligned_parquet(path, max_len=max_len)
    raise ValueError(f"{path}: [load] unknown data source (expected a store directory, .pkl or .parquet)")


def _pickles_in(folder: Path, aligned: bool | None) -> list[Path]:
    names = [n for n in MULT_PICKLES + MMSA_PICKLES if (folder / n).exists()]
    is_aligned = lambda n: not ("noalign" in n or n.startswith("unaligned"))  # noqa: E731
    names = [n for n in names if is_aligned(n) == bool(aligned)] or names
    return [folder / n for n in names]


def _decode(x) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _ids(raw, n: int) -> tuple[list[str], list[str]]:
    """Sample ids and video ids from MulT's (N, 3) [video, start, end] or MMSA's "video$_$clip" ids."""
    if raw is None:
        return [str(i) for i in range(n)], [str(i) for i in range(n)]
    raw = np.asarray(raw, dtype=object)
    if raw.ndim == 2:
        parts = [[_decode(x) for x in row] for row in raw]
        return ["_".join(p for p in row if p) for row in parts], [row[0] for row in parts]
    ids = [_decode(x) for x in raw.reshape(-1)]
    return ids, [i.split("$_$")[0] for i in ids]


def _features(x, path: Path, key: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"{path}: [load] {key} must be (N, T, d), got {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # COVAREP has -inf, as MulT and MMSA zero it


def _from_mult(split: dict, path: Path, task: str) -> ArraySplit:
    text, vision, audio = (_features(split[k], path, k) for k in ("text", "vision", "audio"))
    labels = np.asarray(split["labels"])
    if task == "iemocap":  # one-hot (N, 4, 2) in MulT's order -> (N, 4) 0/1 in the project's
        labels = (labels.argmax(-1) if labels.ndim == 3 else labels.reshape(len(labels), 4)).astype(np.int64)
        labels = labels[:, MULT_TO_PROJECT_EMOTIONS]
    else:
        labels = labels.reshape(len(labels)).astype(np.float32)
    # Zero rows are padding (MulT pads at the start); aligned files share one time axis, so use the union there.
    masks = [np.abs(x).sum(-1) > 0 for x in (text, vision, audio)]
    if text.shape[1] == vision.shape[1] == audio.shape[1]:
        masks = [masks[0] | masks[1] | masks[2]] * 3
    ids, videos = _ids(split.get("id"), len(labels))
    return ArraySplit(text, vision, audio, *masks, labels=labels, ids=ids, task=task, video_ids=videos)


def _from_mmsa(split: dict, path: Path) -> ArraySplit:
    text, vision, audio = (_features(split[k], path, k) for k in ("text", "vision", "audio"))
    labels = np.asarray(split["regression_labels"], dtype=np.float32).reshape(-1)
    n = len(labels)
    steps = lambda x: np.arange(x.shape[1])[None, :]  # noqa: E731
    if "text_bert" in split and np.asarray(split["text_bert"]).ndim == 3:
        text_mask = np.asarray(split["text_bert"])[:, 1, : text.shape[1]] > 0  # row 1: BERT attention mask
    else:
        text_mask = np.abs(text).sum(-1) > 0
    if "audio_lengths" in split and "vision_lengths" in split:
        audio_mask = steps(audio) < np.asarray(split["audio_lengths"]).reshape(n, 1)
        vision_mask = steps(vision) < np.asarray(split["vision_lengths"]).reshape(n, 1)
    else:  # aligned_50: every modality follows the words
        audio_mask = vision_mask = text_mask
    ids, videos = _ids(split.get("id"), n)
    return ArraySplit(text, vision, audio, text_mask, vision_mask, audio_mask, labels=labels, ids=ids,
                      video_ids=videos)


def load_word_aligned_parquet(path: str | Path, *, max_len: int | None = None) -> dict[str, ArraySplit]:
    """A word-aligned table (``glove300``, ``facet47``, ``covarep74`` lists per segment) as ``{split: ArraySplit}``.

    The split is the table's ``split`` column when it has one, else everything is the one split ``"all"``.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    table = pq.read_table(path)
    need = {"segment_id", "video_id", "label", "glove300", "facet47", "covarep74"}
    if missing := need - set(table.column_names):
        raise ValueError(f"{path}: [load] word-aligned table lacks columns {sorted(missing)}")

    def sequences(name: str) -> list[np.ndarray]:
        col = table.column(name).combine_chunks()  # list<fixed_size_list<float>[d]>
        dim = col.type.value_type.list_size
        flat = np.asarray(col.values.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
        offsets = col.offsets.to_numpy()
        return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]

    arrays = {m: pad_sequences(sequences(c), max_len) for m, c in
              (("text", "glove300"), ("vision", "facet47"), ("audio", "covarep74"))}
    text, mask = arrays["text"]
    vision, audio = arrays["vision"][0], arrays["audio"][0]
    vision, audio = (np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) for x in (vision, audio))
    whole = ArraySplit(text, vision, audio, mask, mask.copy(), mask.copy(),
                       labels=np.asarray(table.column("label").to_pylist(), dtype=np.float32),
                       ids=table.column("segment_id").to_pylist(), video_ids=table.column("video_id").to_pylist())
    if "split" not in table.column_names:
        return {"all": whole}
    names = np.asarray([SPLIT_NAMES.get(s, s) for s in table.column("split").to_pylist()])
    return {s: whole.subset(names == s) for s in dict.fromkeys(names.tolist())}


def load_store(path: str | Path, *, aligned: bool = False, max_len: int | None = None) -> dict[str, ArraySplit]:
    """The labelled segments of the project's feature store, by split (segments without a split are ``"all"``)."""
    from pipeline.store_source import store_splits  # the store's torch views; imported only when used

    return store_splits(path, aligned=aligned, max_len=max_len)
