"""The ``mcr run`` config file, read strictly: every section refuses unknown keys, naming them, before any stage runs.

A config (TOML; paths relative to the file)::

    workdir = "out"                      # stage records (stages.json) and default outputs

    [prepare]                            # optional: the manifest of a public corpus from its release (mcr prepare)
    corpus = "ravdess"                   # cmu-mosi, cmu-mosei, iemocap, crema-d, ravdess or meld
    raw = "RAVDESS"                      # the corpus's folder as released
    # out = "out/manifest.csv"           # the manifest (default: <workdir>/manifest.csv)
    split = "actors"                     # any option of the corpus's recipe (docs/corpora.md), and label_column

    [extract]
    input = "corpus/manifest.csv"        # folder of videos or manifest CSV (default: [prepare]'s manifest)
    store = "out/store"
    workers = 2                          # local Dask workers (default: one per core)
    # scheduler = "tcp://host:8786"      # or an existing cluster
    # visual = "pyfeat"                  # visual backend (default mediapipe)
    # acoustic = "librosa"               # acoustic extractor (default whisper-encoder); language likewise

    [train]
    preset = "mosi"                      # Table 1 column
    out = "out/run"
    seeds = 1
    epochs = 20                          # any training option (workflows.train_config.TrainConfig)
    [train.model]                        # any MCRConfig field
    n_layers = 2

    [evaluate]
    split = "test"

    [predict]                            # optional
    input = "new_videos/"
    out = "out/predictions.parquet"
    vtt = "out/subtitles"                # optional WebVTT per video (srt = ..., json = ... likewise)
    # store = "out/predict-store"        # where new videos are extracted (default: <out>.store); keep it apart
                                         # from the training store, whose segments define the dataset
    # window = 10                        # fixed windows instead of utterances

    [report]                             # optional; written to <train.out>/report
    # sample = 0                         # the attention plots' sample (default: the first with words)
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.options import Bound, bounded, check_fields
from workflows.cluster import WORKERS


SEEDS = Bound(int, 1, 1000, why="each seed is a whole training run")
WINDOW = Bound(float, 0.1, 86_400, why="a day")
"""Seconds of a fixed prediction window: at least one frame of the visual stream (10 fps)."""


@dataclass
class PrepareSection:
    corpus: str
    raw: str
    out: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Every other key: the options of the corpus's recipe (:func:`pipeline.recipes.options_of`) and
    ``label_column``."""


@dataclass
class ExtractSection:
    store: str
    input: str | None = None
    workers: int | None = bounded(None, WORKERS)
    scheduler: str | None = None
    language: str | None = None
    """Extractor names (``mcr extract --language/--visual/--acoustic``); None: the default of that modality."""
    visual: str | None = None
    acoustic: str | None = None

    def extractor_names(self) -> dict[str, str]:
        return {m: n for m, n in (("language", self.language), ("visual", self.visual),
                                  ("acoustic", self.acoustic)) if n}


@dataclass
class TrainSection:
    out: str
    preset: str = "mosi"
    seeds: int = bounded(1, SEEDS)
    options: dict[str, Any] = field(default_factory=dict)
    """Every other key: training options and the ``model`` table, checked by :func:`workflows.train_config.configure`."""


@dataclass
class EvaluateSection:
    split: str = "test"


@dataclass
class PredictSection:
    input: str
    out: str
    vtt: str | None = None
    srt: str | None = None
    json: str | None = None
    store: str | None = None
    window: float | None = bounded(None, WINDOW)
    """Fixed windows of this many seconds instead of utterances."""


@dataclass
class ReportSection:
    sample: int | None = bounded(None, Bound(int, 0, 2**31 - 1))
    """The attention plots' sample; None: the first with words (workflows.report_attention.choose_sample)."""
    layer: int | None = bounded(None, Bound(int, 0, 63))


@dataclass
class PipelineConfig:
    workdir: str
    extract: ExtractSection
    train: TrainSection
    prepare: PrepareSection | None = None
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    predict: PredictSection | None = None
    report: ReportSection = field(default_factory=ReportSection)


SECTIONS = {"prepare": PrepareSection, "extract": ExtractSection, "train": TrainSection, "evaluate": EvaluateSection,
            "predict": PredictSection, "report": ReportSection}
PATH_KEYS = {"prepare": ("raw", "out"), "extract": ("input", "store"), "train": ("out",),
             "predict": ("input", "out", "vtt", "srt", "json", "store")}


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits a simple annotation (str, int, float, bool, dict, their unions with None)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        option = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, bool):
            continue
        if isinstance(option, type) and isinstance(value, option):
            return True
    return False


def _section(cls: type, values: Any, name: str, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: [config] [{name}] must be a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    if cls in (TrainSection, PrepareSection):
        values = {**{k: v for k, v in values.items() if k in fields},
                  "options": {k: v for k, v in values.items() if k not in fields}}
    if unknown := sorted(set(values) - set(fields)):
        raise ValueError(f"{where}: [config] unknown keys in [{name}]: {', '.join(map(_shown, unknown))}; "
                         f"known: {', '.join(fields)}")
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    if missing := [n for n in required if n not in values]:
        raise ValueError(f"{where}: [config] [{name}] needs {', '.join(missing)}")
    for key, value in values.items():
        if not _accepts(hints[key], value):
            raise ValueError(f"{where}: [config] [{name}] {key} = {value!r}: expected {fields[key].type}")
    check_fields(cls, values, lambda key: f"{where}: [config] [{name}] {key}")
    return cls(**values)


def _shown(key: str) -> str:
    """A key as it can be printed on one line."""
    return key if key.isprintable() else repr(key)


def parse_config(raw: dict[str, Any], base: Path, *, where: str = "config") -> PipelineConfig:
    """A :class:`PipelineConfig` of a parsed TOML dict, paths made absolute against ``base``."""
    if unknown := sorted(set(raw) - set(SECTIONS) - {"workdir"}):
        raise ValueError(f"{where}: [config] unknown sections {', '.join(map(_shown, unknown))}; "
                         f"known: workdir, {', '.join(SECTIONS)}")
    for name in ("extract", "train"):
        if name not in raw:
            raise ValueError(f"{where}: [config] the [{name}] section is required")
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    if not isinstance(raw.get("workdir", "."), str):
        raise ValueError(f"{where}: [config] workdir = {raw['workdir']!r}: expected a folder path")
    for name, keys in PATH_KEYS.items():
        for key in keys:
            value = raw.get(name, {}).get(key) if isinstance(raw.get(name), dict) else None
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{where}: [config] [{name}] {key} holds a NUL character")
    if "\x00" in raw.get("workdir", ""):
        raise ValueError(f"{where}: [config] workdir holds a NUL character")
    workdir = (base / str(raw.get("workdir", "."))).resolve()
    for name, keys in PATH_KEYS.items():
        for key in keys:
            if isinstance(raw.get(name), dict) and isinstance(raw[name].get(key), str):
                raw[name][key] = str((base / raw[name][key]).resolve())
    if isinstance(raw["train"], dict):
        raw["train"].setdefault("out", str(workdir / "run"))
    if isinstance(raw.get("prepare"), dict):
        raw["prepare"].setdefault("out", str(workdir / "manifest.csv"))
        if isinstance(raw["extract"], dict):
            raw["extract"].setdefault("input", raw["prepare"]["out"])
    sections = {name: _section(cls, raw[name], name, where) for name, cls in SECTIONS.items() if name in raw}
    config = PipelineConfig(workdir=str(workdir), **sections)
    if config.extract.input is None:
        raise ValueError(f"{where}: [config] [extract] needs input (a folder of videos or a manifest), or a "
                         "[prepare] section that writes the manifest")
    if config.prepare:
        _check_prepare(config.prepare, where)
    _check_extract(config.extract, where)
    _check_train(config.train, where)
    _check_evaluate(config, where)
    return config


def _check_extract(extract: ExtractSection, where: str) -> None:
    from extractors.base import available

    for modality, name in extract.extractor_names().items():
        if name not in available(modality):
            raise ValueError(f"{where}: [config] [extract] {modality} = {name!r}: not an extractor of the {modality} stream; "
                             f"choose one of {', '.join(available(modality))}")


def _check_prepare(prepare: PrepareSection, where: str) -> None:
    from pipeline.recipes import available, options_of

    if prepare.corpus not in available():
        raise ValueError(f"{where}: [config] [prepare] corpus = {prepare.corpus!r}: one of {', '.join(available())}")
    known = [*options_of(prepare.corpus), "label_column"]
    if unknown := sorted(set(prepare.options) - set(known)):
        raise ValueError(f"{where}: [config] unknown keys in [prepare] for {prepare.corpus}: "
                         f"{', '.join(map(_shown, unknown))}; known: corpus, raw, out, {', '.join(known)}")


def _check_train(train: TrainSection, where: str) -> None:
    from workflows.train_config import configure

    try:
        configure(train.preset, train.options)
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise ValueError(f"{where}: [config] [train] {str(exc).strip(chr(39))}") from None


def _check_evaluate(config: PipelineConfig, where: str) -> None:
    """The split to evaluate is one the data will have: train, valid and test (a source without splits is cut
    into them), or a split the manifest names."""
    from pipeline.corpus import read_manifest

    known = {"train", "valid", "test"}
    manifest = Path(str(config.extract.input))
    if config.prepare is None and manifest.suffix.lower() == ".csv" and manifest.is_file():
        known |= {s.split for source in read_manifest(manifest) for s in source.segments if s.split}
    if config.evaluate.split not in known:
        raise ValueError(f"{where}: [config] [evaluate] split = {config.evaluate.split!r}: the data's "
                         f"splits are {', '.join(sorted(known))}")


def load_config(path: str | Path) -> PipelineConfig:
    """Read and check a pipeline TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: [config] no such pipeline config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: [config] not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: [config] not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    return parse_config(raw, path.parent, where=str(path))
