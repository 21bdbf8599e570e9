"""Small synthetic data with a planted signal, written as MulT-style pickles for the training and report tests."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from pipeline.arrays import ArraySplit, pad_sequences

TINY_MODEL = {"d_model": 8, "n_heads": 2, "n_layers": 1, "embed_dropout": 0.0}


def planted_split(n: int, rng: np.random.Generator, *, iemocap: bool = False) -> ArraySplit:
    """Variable-length sequences whose label is a smooth function of the mean of text feature 0 (+ audio noise)."""
    lens = rng.integers(3, 9, n)
    text = [rng.normal(size=(k, 6)).astype(np.float32) for k in lens]
    vision = [rng.normal(size=(k, 4)).astype(np.float32) for k in lens]
    audio = [rng.normal(size=(k + 2, 3)).astype(np.float32) for k in lens]
    signal = np.array([t[:, 0].mean() for t in text])
    (t, tm), (v, vm), (a, am) = pad_sequences(text), pad_sequences(vision), pad_sequences(audio)
    if iemocap:
        labels = np.stack([signal > 0, signal < 0, np.abs(signal) > 0.5, np.abs(signal) < 0.2], 1).astype(np.int64)
        return ArraySplit(t, v, a, tm, vm, am, labels=labels, ids=[f"s{i}" for i in range(n)], task="iemocap")
    labels = (2.5 * np.tanh(2.0 * signal)).astype(np.float32)
    return ArraySplit(t, v, a, tm, vm, am, labels=labels, ids=[f"s{i}" for i in range(n)])


def write_mult_pickle(folder: Path, sizes=(120, 40, 40), *, seed: int = 0, iemocap: bool = False) -> Path:
    """A MulT-schema pickle (``mosi_data_noalign.pkl`` / ``iemocap_data_noalign.pkl``) of planted splits."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, n in zip(("train", "valid", "test"), sizes):
        s = planted_split(n, rng, iemocap=iemocap)
        labels = np.eye(2, dtype=np.float32)[s.labels] if iemocap else s.labels.reshape(-1, 1, 1)
        ids = np.array([[f"vid{i // 4}".encode(), str(i).encode(), b""] for i in range(n)])
        data[name] = {"text": s.language, "vision": s.visual, "audio": s.acoustic, "labels": labels, "id": ids}
    path = Path(folder) / ("iemocap_data_noalign.pkl" if iemocap else "mosi_data_noalign.pkl")
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def write_random_pickle(folder: Path, dims: tuple[int, int, int], sizes=(24, 8, 8), *, seed: int = 0) -> Path:
    """A MulT-schema ``mosi_data_noalign.pkl`` of random features of ``dims`` (language, visual, acoustic), e.g. a
    store's, so that a model trained on it takes that store's streams; 6 steps per sample, labels in [-3, 3]."""
    rng, data = np.random.default_rng(seed), {}
    for name, n in zip(("train", "valid", "test"), sizes):
        data[name] = {k: rng.normal(size=(n, 6, d)).astype(np.float32)
                      for k, d in zip(("text", "vision", "audio"), dims)}
        data[name]["labels"] = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
        data[name]["id"] = np.array([[f"vid{i // 4}".encode(), str(i).encode(), b""] for i in range(n)])
    path = Path(folder) / "mosi_data_noalign.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def write_config(folder: Path, **train) -> Path:
    """A JSON --config for a tiny, fast model (one thread), with ``train`` settings on top."""
    path = Path(folder) / "tiny.json"
    path.write_text(json.dumps({"batch_size": 16, "lr": 3e-3, "cpu_threads": 1, "model": TINY_MODEL, **train}))
    return path


def train_tiny(folder: Path, sizes=(24, 8, 8)) -> tuple[Path, Path]:
    """(the pickle, the run): a tiny MCR trained for one epoch on :func:`write_mult_pickle`'s data, by ``mcr train``."""
    from workflows.cli import main as mcr

    data, run = write_mult_pickle(folder, sizes=sizes), Path(folder) / "run"
    assert mcr(["train", "--data", str(data), "--config", str(write_config(folder, epochs=1)), "--out", str(run),
                "--no-progress"]) == 0
    return data, run
