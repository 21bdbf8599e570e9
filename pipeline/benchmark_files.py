"""The benchmarks' released feature files as :class:`~pipeline.arrays.ArraySplit` s.

- MulT's pickles (``mosi_data.pkl``, ``mosi_data_noalign.pkl``, ``mosei_senti_data(_noalign).pkl``,
  ``iemocap_data(_noalign).pkl``): ``{split: {"text", "audio", "vision", "labels", "id"}}``, zero-padded at the
  start, IEMOCAP labels one-hot (N, 4, 2) in the order neutral, happy, sad, angry (reordered to the project's
  happy, sad, angry, neutral);
- MMSA's pickles (``aligned_50.pkl``, ``unaligned_50.pkl``): ``{split: {"text", "audio", "vision",
  "regression_labels", "id", "audio_lengths", "vision_lengths", ...}}``, padded at the end;
- a word-aligned Parquet table (columns ``segment_id, video_id, label, words, glove300, facet47, covarep74``, one
  list of per-word vectors each), like ``mosi_valid_word_aligned.parquet``.

The files' own keys (``text``/``vision``/``audio``) are read here and nowhere else. Pickles go through
:mod:`pipeline.safe_pickle` unless ``trust_pickle``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import safe_pickle
from pipeline.arrays import SPLIT_NAMES, ArraySplit, pad_sequences, real_from_first

MULT_PICKLES = ("mosi_data.pkl", "mosi_data_noalign.pkl", "mosei_senti_data.pkl", "mosei_senti_data_noalign.pkl",
                "iemocap_data.pkl", "iemocap_data_noalign.pkl")
MMSA_PICKLES = ("aligned_50.pkl", "unaligned_50.pkl")
# MulT's IEMOCAP labels are (neutral, happy, sad, angry); the project's order is (happy, sad, angry, neutral).
MULT_TO_PROJECT_EMOTIONS = [1, 2, 3, 0]
FILE_KEYS = ("text", "vision", "audio")  # the released files' names of language, visual, acoustic


def load_pickle(path: Path, *, trust_pickle: bool = False) -> dict[str, ArraySplit]:
    """Every split of a MulT or MMSA pickle."""
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


def pickles_in(folder: Path, aligned: bool | None) -> list[Path]:
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


def _features(split: dict, path: Path, key: str) -> np.ndarray:
    if key not in split:
        raise ValueError(f"{path}: [load] a split has no {key!r} features; expected {FILE_KEYS}")
    x = np.asarray(split[key], dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"{path}: [load] {key} must be (N, T, d), got {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # COVAREP has -inf, as MulT and MMSA zero it


def _from_mult(split: dict, path: Path, task: str) -> ArraySplit:
    text, vision, audio = (_features(split, path, k) for k in FILE_KEYS)
    labels = np.asarray(split["labels"])
    if task == "iemocap":  # one-hot (N, 4, 2) in MulT's order -> (N, 4) 0/1 in the project's
        labels = (labels.argmax(-1) if labels.ndim == 3 else labels.reshape(len(labels), 4)).astype(np.int64)
        labels = labels[:, MULT_TO_PROJECT_EMOTIONS]
    else:
        labels = labels.reshape(len(labels)).astype(np.float32)
    # MulT pads at the start: the zero rows before a sample's first non-zero step are padding. Aligned files share
    # one time axis (a word's vision may be zero where its text is not), so the earliest start of the three counts.
    if text.shape[1] == vision.shape[1] == audio.shape[1]:
        masks = [real_from_first(np.concatenate([text, vision, audio], axis=-1))] * 3
    else:
        masks = [real_from_first(x) for x in (text, vision, audio)]
    ids, videos = _ids(split.get("id"), len(labels))
    return ArraySplit(text, vision, audio, *masks, labels=labels, ids=ids, task=task, video_ids=videos,
                      padding="start")


def _from_mmsa(split: dict, path: Path) -> ArraySplit:
    text, vision, audio = (_features(split, path, k) for k in FILE_KEYS)
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


