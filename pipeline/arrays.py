"""Training data in memory: fixed-length arrays per modality, padding, normalisation and folds.

The one vocabulary of the data: modalities are the store's ``language``, ``visual`` and ``acoustic`` (in the
order the model takes them as ``l``, ``v``, ``a``); tasks are ``regression`` (sentiment score), ``iemocap`` (four
binary emotions) and ``classification`` (one class per sample). This module imports nothing else of the project,
so anything (loaders, the store, the model's callers) can build on it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

MODALITIES = ("language", "visual", "acoustic")  # the model's input order (x_l, x_v, x_a)
STORED_MODALITIES = (*MODALITIES, "voice")
"""The streams a store holds: the model's inputs and ``voice`` (speech and loudness: what annotation reads, never a
model input)."""
TASKS = ("regression", "iemocap", "classification")
IEMOCAP_EMOTIONS = ("happy", "sad", "angry", "neutral")  # the order of the iemocap outputs (N, 4, 2) and labels
PADDING_SIDES = ("end", "start")
SPLIT_NAMES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "validation": "valid",
               "test": "test"}


@dataclass
class ArraySplit:
    """One split, zero-padded to fixed lengths. Masks are True on real time steps."""

    language: np.ndarray  # (N, T_l, d_l) float32
    visual: np.ndarray  # (N, T_v, d_v) float32
    acoustic: np.ndarray  # (N, T_a, d_a) float32
    language_mask: np.ndarray  # (N, T_l) bool
    visual_mask: np.ndarray  # (N, T_v) bool
    acoustic_mask: np.ndarray  # (N, T_a) bool
    labels: np.ndarray  # regression (N,) float32 | iemocap (N, 4) int64 in {0, 1} | classification (N,) int64
    ids: list[str]
    task: str = "regression"
    video_ids: list[str] | None = None  # groups for splits that keep a speaker's segments together
    classes: list[str] | None = None  # names of the classification labels 0..C-1
    padding: str = "end"  # where the padding is: "end" (the store, MMSA's files) or "start" (MulT's files)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not one of {TASKS}")
        if self.padding not in PADDING_SIDES:
            raise ValueError(f"padding {self.padding!r} is not one of {PADDING_SIDES}")
        n = len(self.labels)
        for m in MODALITIES:
            x, mask = getattr(self, m), getattr(self, f"{m}_mask")
            if x.ndim != 3 or len(x) != n:
                raise ValueError(f"{m}: expected (N={n}, T, d) features, got {x.shape}")
            if mask.shape != x.shape[:2]:
                raise ValueError(f"{m}_mask {mask.shape} does not match {m} {x.shape}")
        if len(self.ids) != n or (self.video_ids is not None and len(self.video_ids) != n):
            raise ValueError(f"{n} samples but {len(self.ids)} ids / "
                             f"{None if self.video_ids is None else len(self.video_ids)} video ids")
        if self.task == "iemocap" and self.labels.shape != (n, 4):
            raise ValueError(f"iemocap labels must be (N, 4), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dims(self) -> tuple[int, int, int]:
        """Feature sizes (d_l, d_v, d_a)."""
        return tuple(getattr(self, m).shape[2] for m in MODALITIES)

    @property
    def lengths(self) -> tuple[int, int, int]:
        """Padded lengths (T_l, T_v, T_a)."""
        return tuple(getattr(self, m).shape[1] for m in MODALITIES)

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


def real_from_first(x: np.ndarray) -> np.ndarray:
    """Mask of a start-padded batch (N, T, d): True from each sample's first non-zero step on, so that a real step
    that happens to be all zeros after it stays real. -> (N, T) bool."""
    nonzero = np.abs(x).sum(-1) > 0  # (N, T)
    first = np.where(nonzero.any(1), nonzero.argmax(1), x.shape[1])  # (N,)
    return np.arange(x.shape[1])[None, :] >= first[:, None]


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


def concat_splits(parts: list[ArraySplit]) -> ArraySplit:
    """The samples of ``parts`` (of one task, feature sizes, classes and padding side) in one split, each modality
    padded to the longest of them on its padding side."""
    first = parts[0]
    for part in parts[1:]:
        if (part.task, part.dims, part.classes, part.padding) != (first.task, first.dims, first.classes, first.padding):
            raise ValueError("cannot join splits of different tasks, feature sizes, classes or padding sides")
    fields = {}
    for m in MODALITIES:
        length = max(getattr(p, m).shape[1] for p in parts)
        xs, masks = [], []
        for p in parts:
            x, mask = getattr(p, m), getattr(p, f"{m}_mask")
            widths = (length - x.shape[1], 0) if first.padding == "start" else (0, length - x.shape[1])
            xs.append(np.pad(x, ((0, 0), widths, (0, 0))))
            masks.append(np.pad(mask, ((0, 0), widths)))
        fields[m], fields[f"{m}_mask"] = np.concatenate(xs), np.concatenate(masks)
    video_ids = None if any(p.video_ids is None for p in parts) else [v for p in parts for v in p.video_ids]
    return ArraySplit(**fields, labels=np.concatenate([p.labels for p in parts]), ids=[i for p in parts for i in p.ids],
                      task=first.task, video_ids=video_ids, classes=first.classes, padding=first.padding)


def fit_lengths(split: ArraySplit, lengths: tuple[int, int, int]) -> ArraySplit:
    """The split padded or truncated to exactly ``lengths`` = (T_l, T_v, T_a) steps, real steps moved to the front.

    Models with length-sized parameters (MCR's SCU attention) need the lengths they were built with.
    """
    fields = {}
    for m, length in zip(MODALITIES, lengths):
        x, mask = getattr(split, m), getattr(split, f"{m}_mask")
        seqs = [row[keep] for row, keep in zip(x, mask)]
        fields[m], fields[f"{m}_mask"] = pad_sequences(seqs, length, x.shape[2])
    return dataclasses.replace(split, **fields, padding="end")


# ------------------------------------------------------------------------------------------------ from records
def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def is_labelled(value) -> bool:
    """Whether a label value is present (not None, NaN or the empty string)."""
    if value is None:
        return False
    if _is_number(value):
        return not math.isnan(float(value))
    return isinstance(value, str) and value != ""


def labels_of(values: list) -> tuple[np.ndarray, str, list[str] | None]:
    """(labels, task, class names) of label values: numbers make a regression, text a classification over the
    sorted class names."""
    if all(_is_number(v) for v in values):
        return np.asarray(values, np.float32), "regression", None
    if all(isinstance(v, str) for v in values):
        classes = sorted(set(values))
        return np.asarray([classes.index(v) for v in values], np.int64), "classification", classes
    raise ValueError("labels mix numbers and text; give one kind per label column")


def placeholder_labels(task: str, n: int) -> np.ndarray:
    """Zero labels of ``task``'s shape, for samples that are only predicted."""
    return np.zeros((n, 4), np.int64) if task == "iemocap" else np.zeros(n, np.int64 if task == "classification"
                                                                          else np.float32)


def split_from_records(records: list[dict], *, max_len: int | None = None, task: str | None = None) -> ArraySplit:
    """An :class:`ArraySplit` of per-segment records (as the store's views give them).

    records: dicts with ``language``/``visual``/``acoustic`` (T_real, d) arrays, ``segment_id``, ``video_id`` and
        ``label`` (any value; ignored when ``task`` is given).
    max_len: longest sequence kept per modality (the first steps); None pads to the longest.
    task: build placeholder labels of this task (for prediction) instead of reading ``label``.
    """
    if task is None:
        labels, task, classes = labels_of([r["label"] for r in records])
    else:
        labels, classes = placeholder_labels(task, len(records)), None
    arrays = {m: pad_sequences([r[m] for r in records], max_len) for m in MODALITIES}
    return ArraySplit(*(arrays[m][0] for m in MODALITIES), *(arrays[m][1] for m in MODALITIES), labels=labels,
                      ids=[r["segment_id"] for r in records], task=task,
                      video_ids=[r["video_id"] for r in records], classes=classes)


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
        if stats[f"{m}.mean"].shape != (x.shape[2],):
            raise ValueError(f"{m}: the normaliser is for {stats[f'{m}.mean'].shape[0]} features, the data has "
                             f"{x.shape[2]}")
        fields[m] = np.where(mask[..., None], (x - stats[f"{m}.mean"]) / stats[f"{m}.std"], 0.0).astype(np.float32)
    return dataclasses.replace(split, **fields)


# ------------------------------------------------------------------------------------------------ group splits
def group_folds(groups: list[str], n_folds: int) -> list[np.ndarray]:
    """Sample indices of ``n_folds`` folds that never split a group, balanced by size (largest group first)."""
    names, counts = np.unique(np.asarray(groups), return_counts=True)
    if len(names) < n_folds:
        raise ValueError(f"{len(names)} groups cannot make {n_folds} folds")
    sizes = [0] * n_folds
    fold_of = {}
    for name, count in sorted(zip(names.tolist(), counts.tolist()), key=lambda nc: (-nc[1], nc[0])):
        k = int(np.argmin(sizes))
        fold_of[name] = k
        sizes[k] += count
    fold = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(fold == k) for k in range(n_folds)]


def length_batches(costs: np.ndarray, batch_size: int, rng: np.random.Generator, *, group: int = 16
                   ) -> list[np.ndarray]:
    """One epoch's batches of samples of similar cost (length): the samples shuffled, sorted by cost within runs of
    ``group`` batches, cut into batches, and the batches shuffled. A function of ``costs`` and ``rng`` alone.

    costs: (N,) what each sample costs (its real steps). -> index arrays of ``batch_size`` samples (the last
        batch of each run may be smaller), every sample exactly once.
    """
    order = rng.permutation(len(costs))
    span = batch_size * group
    batches = []
    for start in range(0, len(order), span):
        run = order[start:start + span]
        run = run[np.argsort(costs[run], kind="stable")]
        batches += [run[i:i + batch_size] for i in range(0, len(run), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def group_cv_folds(groups: list, k: int) -> list[dict[str, np.ndarray]]:
    """``k`` folds of a cross-validation that never splits a group: ``[{"train", "valid", "test"}: indices]``.

    The groups, in sorted order, are cut into ``k`` runs of about equal sample counts (RAVDESS's 24 actors into
    actors 1-4, 5-8, ...; very uneven group sizes fall back to :func:`group_folds`' balanced assignment); fold f
    tests run f. Its validation split (early stopping, model selection) is the first half (at least one group) of
    the next run's groups (fold k-1 takes run 0's), so validation groups are training groups of no other role in
    that fold; the rest train. Every sample is tested exactly once, by a fold that neither trained nor validated on
    its group.
    """
    groups = np.asarray(groups)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if k < 2 or len(names) < max(k, 3):
        raise ValueError(f"{len(names)} groups cannot make {k} folds with a training, validation and test split; "
                         "use at least 2 folds and no more folds than groups (at least 3 groups)")
    middles = np.cumsum(counts) - counts / 2  # where each group's samples sit in the sorted order
    fold_of = np.minimum((middles * k / counts.sum()).astype(int), k - 1)
    if len(np.unique(fold_of)) < k:
        fold_of = np.empty(len(names), int)
        for f, index in enumerate(group_folds(groups.tolist(), k)):
            fold_of[inverse[index]] = f
    folds = []
    for f in range(k):
        test = np.flatnonzero(fold_of == f)
        following = np.flatnonzero(fold_of == (f + 1) % k)
        valid = following[:max(1, len(following) // 2)]
        if len(names) - len(test) - len(valid) < 1:
            raise ValueError(f"{len(names)} groups in {k} folds leave fold {f} no group to train on; use fewer folds")
        role = np.zeros(len(names), int)  # 0 train, 1 valid, 2 test
        role[valid], role[test] = 1, 2
        folds.append({name: np.flatnonzero(role[inverse] == r) for r, name in enumerate(("train", "valid", "test"))})
    return folds


def ensure_splits(splits: dict[str, ArraySplit]) -> dict[str, ArraySplit]:
    """``splits`` if it has train and valid; otherwise its one split cut into train/valid/test (3/5, 1/5, 1/5).

    The cut never splits a video (fewer than 3 videos: segments are cut instead), so no speaker is in two splits.
    """
    if "train" in splits and "valid" in splits:
        return splits
    if len(splits) != 1:
        raise ValueError(f"cannot make train/valid splits out of the splits {sorted(splits)}: name them "
                         "train, valid and test")
    (whole,) = splits.values()
    groups = whole.video_ids if whole.video_ids and len(set(whole.video_ids)) >= 3 else whole.ids
    if len(set(groups)) < 3:
        raise ValueError(f"{len(whole)} labelled samples cannot make train, valid and test splits; label more")
    folds = group_folds(groups, min(5, len(set(groups))))
    return {"train": whole.subset(np.concatenate(folds[:-2])), "valid": whole.subset(folds[-2]),
            "test": whole.subset(folds[-1])}
