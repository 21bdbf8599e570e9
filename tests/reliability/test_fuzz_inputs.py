"""Fuzz suite: Hypothesis properties of the files and options a user writes, filled with hostile values.

(a) manifest CSVs through ``pipeline.corpus.load_corpus``: a list of sources whose ids are safe, or a
    ValueError/FileNotFoundError whose message is one line naming the manifest;
(b) ``mcr run`` config TOML through ``workflows.pipeline_config.load_config``: a PipelineConfig, or a
    ValueError/FileNotFoundError whose message is one line naming the file;
(c) ``mcr extract --set MODALITY.FIELD=VALUE`` through ``parse_options`` and ``build_extractors``: extractors
    (whose config hashes and decode options can be computed), or a one-line ValueError.
Any other exception is a bug. ``derandomize=True``: CI tries the same examples on every run.

The bugs the suite found (NUL characters in paths, infinite segment times, zero attention heads, a newline in a
config key, files not in UTF-8) are fixed; each keeps a minimal reproducer at the end of this file.
``MCR_FUZZ_EXAMPLES=N`` tries N examples per property instead of 150 (still derandomized).
``pytest tests/reliability/test_fuzz_inputs.py --hypothesis-show-statistics`` prints the examples tried.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import tempfile
import types
import typing
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from extractors.base import DEFAULT_EXTRACTORS, create  # noqa: E402
from model.config import MCRConfig  # noqa: E402
from pipeline.arrays import MODALITIES  # noqa: E402
from pipeline.corpus import MANIFEST_COLUMNS, load_corpus  # noqa: E402
from pipeline.manifest import VideoSource  # noqa: E402
from pipeline.store import MAX_VIDEO_ID_LENGTH  # noqa: E402
from workflows.commands.extract import parse_options  # noqa: E402
from workflows.extract import ExtractorSpec, build_extractors, default_decode_options  # noqa: E402
from workflows.pipeline_config import SECTIONS, PipelineConfig, load_config  # noqa: E402
from workflows.train_config import TrainConfig  # noqa: E402

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EXAMPLES = int(os.environ.get("MCR_FUZZ_EXAMPLES", "150"))  # per property; CI: 150 (about 15 s for all three)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])




def _one_line_naming(error: BaseException, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message, f"{type(error).__name__} over several lines: {message!r}"
    assert str(path) in message, f"{type(error).__name__} does not name {path}: {message!r}"


# ------------------------------------------------------------------------------------------------ text pieces
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=""),
                max_size=30)
_hostile_strings = st.sampled_from([
    "", " ", "\n", "a\nb", "a\rb", "a/b", "../../etc/passwd", "/", ".", "..", "-", "_x", ".hidden", "a b",
    "émotion 😀", "a,b", 'say "hi"', "'", "\t", "\ufeffid", "NUL", "con", "a\u2028b", "C:\\video.mp4", "~/v.mp4",
    "file:///v.mp4", "s3://bucket/v.mp4",
]) | st.integers(90, 5000).map(lambda n: "x" * n)  # ids over the 100-character limit, names over 255 bytes
_numbers = st.sampled_from(["0", "1", "1.5", "-1", "-0", "-0.0", "nan", "NaN", "1e308", "1e-320", "12abc", " 3 ",
                            "0x10", "1_000", "", "three", "+5", "٣", "inf", "-inf", "Infinity", "1e309"])


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _cell(kind: str):
    if kind in ("start", "end"):
        return st.one_of(_numbers, _text)
    if kind == "path":
        paths = st.one_of(_hostile_strings, _text, st.sampled_from(["clip.mp4", "sub/clip.flv", "/abs/none.mp4"]))
        return paths
    return st.one_of(_hostile_strings, _text, _numbers, st.sampled_from(["clip", "v1", "train", "test"]))


# ------------------------------------------------------------------------------------------ (a) manifest CSVs
@st.composite
def manifests(draw) -> bytes:
    """A manifest's bytes: hostile columns and cells written by csv.writer (quoted), or raw text."""
    if draw(st.integers(0, 9)) == 0:  # raw text: unbalanced quotes, stray separators, no header at all
        raw = draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=""),
                           max_size=200))
        return raw.encode()
    columns = draw(st.lists(st.one_of(st.sampled_from(MANIFEST_COLUMNS + ("label", "emotion")), _text),
                            min_size=0, max_size=7))
    if draw(st.booleans()) and "path" not in columns:
        columns.insert(draw(st.integers(0, len(columns))), "path")
    rows = draw(st.lists(st.lists(st.one_of(*(_cell(c) for c in columns)) if columns else _text,
                                  min_size=0, max_size=len(columns) + 2) if columns else st.just([]),
                         min_size=0, max_size=6))
    rows = [[draw(_cell(c)) for c in columns] if draw(st.booleans()) else row for row in rows]
    if rows and draw(st.booleans()):
        rows.append(list(rows[0]))  # a duplicate row
    out = io.StringIO()
    writer = csv.writer(out, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    if columns or draw(st.booleans()):
        writer.writerow(columns)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return out.getvalue().encode(encoding, errors="replace")


def _check_manifest(path: Path) -> str:
    """The property of (a); returns "sources" or the name of the (expected) exception."""
    try:
        sources = load_corpus(path)
    except (ValueError, FileNotFoundError) as error:
        _one_line_naming(error, path)
        return f"{type(error).__name__}"
    assert all(isinstance(s, VideoSource) for s in sources)
    ids = [s.video_id for s in sources]
    assert len(set(ids)) == len(ids), ids
    for source in sources:
        assert SAFE_ID.fullmatch(source.video_id) and len(source.video_id) <= MAX_VIDEO_ID_LENGTH, source.video_id
        assert Path(source.path).is_absolute(), source.path
        for segment in source.segments:
            assert segment.video_id == source.video_id
            assert math.isfinite(segment.start) and segment.start >= 0, segment
            assert segment.end is None or (math.isfinite(segment.end) and segment.end > segment.start), segment
            assert isinstance(segment.segment_id, str) and segment.segment_id.strip(), segment
    return "sources"


@FUZZ
@given(data=manifests())
def test_a_manifest_gives_safe_sources_or_a_clear_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.csv"
        path.write_bytes(data)
        event(f"outcome: {_check_manifest(path)}")


@pytest.mark.parametrize("text", [
    "", "\n", "path\n", "video_id\nclip\n", "path,path\na.mp4,b.mp4\n", 'path\n"a.mp4\n', "path\n\"\"\n",
    "path,video_id\na.mp4,x\nb.mp4,x\n", "path,segment_id\na.mp4,s\na.mp4,s\n", "path,start,end\na.mp4,5,2\n",
    "path,start\na.mp4,-1\n", "path,end\na.mp4,nan\n", "path,video_id\na.mp4,../x\n", "path,video_id\na.mp4,a\\nb\n",
    "path\n" + "d/" * 2000 + "v.mp4\n", "path,segment_id\na.mp4,\"a\nb\"\n", "\ufeffpath\na.mp4\n",
])
def test_manifest_examples(tmp_path, text):
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    _check_manifest(path)


def test_a_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_corpus(tmp_path / "nowhere.csv")
    _one_line_naming(caught.value, tmp_path / "nowhere.csv")


# ------------------------------------------------------------------------------------- (b) mcr run config TOML
def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(config: dict) -> str:
    """A dict as TOML: plain keys first, then one [table] per dict value (nested ones as inline tables)."""
    lines = [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml_string(name)}]")
            lines += [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


_scalars = st.one_of(st.integers(), st.integers(-2**70, 2**70), st.floats(), st.booleans(), _text, _hostile_strings)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_text, inner, max_size=3)), max_leaves=6)
_key_text = _text


def _typed(annotation) -> st.SearchStrategy:
    """Hostile values of the right type: 0, negatives, 2**64, NaN, inf, empty and odd strings."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    strategies = []
    for option in options:
        option = typing.get_origin(option) or option
        if option is bool:
            strategies.append(st.booleans())
        elif option is int:
            strategies.append(st.one_of(st.integers(-2, 3), st.sampled_from([2**63 - 1, -2**63, 2**64, 10**30])))
        elif option is float:
            strategies.append(st.one_of(st.floats(-2, 2), st.floats(), st.integers(-2, 3)))
        elif option is str:
            strategies.append(st.one_of(_hostile_strings, _text))
        elif option in (tuple, list):
            strategies.append(st.lists(st.sampled_from(["l", "v", "a", "x", ""]), max_size=4))
        elif option is dict:
            strategies.append(st.dictionaries(_key_text, _scalars, max_size=2))
    return st.one_of(strategies) if strategies else _values


def _field_values(cls) -> dict[str, st.SearchStrategy]:
    """Per field of a dataclass: its default, a hostile value of its type, or anything."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        sensible = [st.just(list(default) if isinstance(default, tuple) else default)] \
            if isinstance(default, (bool, int, float, str, tuple)) else []
        out[f.name] = st.one_of(*sensible, _typed(hints[f.name]), _values)
    return out


_FIELDS = {name: _field_values(cls) for name, cls in SECTIONS.items()}
_FIELDS["train"] = {**{k: v for k, v in _FIELDS["train"].items() if k != "options"},
                    **_field_values(TrainConfig)}
_FIELDS["extract"].update(input=st.just("videos"), store=st.just("store"))  # required: mostly kept sensible
_FIELDS["train"].update(preset=st.one_of(st.sampled_from(["mosi", "mosei", "iemocap"]), _text), epochs=_typed(int))
_MODEL = _field_values(MCRConfig)


@st.composite
def configs(draw) -> str:
    """A config's TOML text: a valid one mutated with hostile keys, values, types and sections."""
    config: dict = {"workdir": "out", "extract": {"input": "videos", "store": "store"}, "train": {"out": "run"}}
    for section in draw(st.lists(st.sampled_from(list(_FIELDS)), max_size=3)):
        config.setdefault(section, {})
    for _ in range(draw(st.integers(0, 5))):
        section = draw(st.sampled_from([*_FIELDS, "train.model", "train.model", "workdir"]))
        odd_key = draw(st.integers(0, 9)) == 0  # an unknown key, now and then
        if section == "workdir":
            config["workdir"] = draw(st.one_of(_hostile_strings, _values))
        elif section == "train.model":
            table = config.setdefault("train", {})
            model = table.setdefault("model", {}) if isinstance(table, dict) else None
            if isinstance(model, dict):
                key = draw(_key_text if odd_key else st.sampled_from(sorted(_MODEL)))
                model[key] = draw(_MODEL.get(key, _values))
        elif isinstance(config.get(section, {}), dict):
            key = draw(_key_text if odd_key else st.sampled_from(sorted(_FIELDS[section])))
            config.setdefault(section, {})[key] = draw(_FIELDS[section].get(key, _values))
    if draw(st.integers(0, 9)) == 0:  # an unknown section, or a section that is not a table
        config[draw(_key_text)] = draw(st.one_of(_values, st.dictionaries(_key_text, _values, max_size=2)))
    if draw(st.integers(0, 9)) == 0:
        config[draw(st.sampled_from(list(_FIELDS)))] = draw(_scalars)
    if draw(st.integers(0, 9)) == 0:  # a required section gone
        config.pop(draw(st.sampled_from(["extract", "train"])), None)
    text = to_toml(config)
    if draw(st.integers(0, 9)) == 0:  # broken TOML: cut, or a stray character
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", "=", "[", '"', "\\", "]]", "\x01"]))
    return text


def _check_config(path: Path) -> str:
    try:
        config = load_config(path)
    except (ValueError, FileNotFoundError) as error:
        _one_line_naming(error, path)
        return f"{type(error).__name__}"
    assert isinstance(config, PipelineConfig)
    return "config"


@FUZZ
@given(text=configs())
def test_a_run_config_gives_a_config_or_a_clear_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.toml"
        path.write_text(text, encoding="utf-8")
        event(f"outcome: {_check_config(path)}")


def test_a_missing_run_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_config(tmp_path / "nowhere.toml")
    _one_line_naming(caught.value, tmp_path / "nowhere.toml")


# ------------------------------------------------------------------------------------ (c) mcr extract --set
_OPTION_FIELDS = {modality: typing.get_type_hints(type(create(name).config))
                  for modality, name in DEFAULT_EXTRACTORS.items()}
_json_values = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1", "0", "null", "true", "[]", "{}", '"x"',
                     "[1, 2]", '{"a": 1}', "1e-300", "99999999999999999999999", '"tiny.en"', "0.02", "5"]),
    st.integers().map(str), st.floats().map(lambda f: json.dumps(f)), _text)


@st.composite
def option_items(draw) -> list[str]:
    """``--set`` items: mostly well formed, for a field of the modality's extractor, with a value of its type."""
    items = []
    for _ in range(draw(st.integers(0, 4))):
        odd = draw(st.integers(0, 9)) == 0
        modality = draw(_text if odd else st.sampled_from(MODALITIES))
        fields = _OPTION_FIELDS.get(modality, {})
        field = draw(_text if odd or not fields else st.sampled_from(sorted(fields)))
        typed = _typed(fields[field]).map(lambda v: v if isinstance(v, str) else json.dumps(v)) \
            if field in fields else _json_values
        value = draw(st.one_of(typed, _json_values))
        shape = draw(st.integers(0, 9))
        items.append(f"{modality}.{field}={value}" if shape < 7 else
                     [f"{modality}={value}", f"{modality}.{field}", f".{field}={value}"][shape - 7])
    return items


@FUZZ
@given(items=option_items(), skip=st.sets(st.sampled_from(MODALITIES), max_size=3))
def test_extract_options_give_extractors_or_a_value_error(items, skip):
    try:
        extractors = build_extractors({m: None for m in skip}, parse_options(items))
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message
        event("outcome: ValueError")
        return
    event("outcome: extractors")
    assert extractors and len({e.modality for e in extractors}) == len(extractors)
    for e in extractors:  # what `mcr extract` computes from them before any video is touched (metadata() is
        ExtractorSpec.of(e)  # left out: it resolves and loads the models, on the workers)
    default_decode_options(extractors)


# ------------------------------------------------- bugs the fuzzing found (now fixed): minimal reproducers
def test_found_nul_in_a_manifest_path(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("path\na\x00b.mp4\n")
    _check_manifest(path)


def test_found_nul_in_a_run_config_path(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text('workdir = "a\\u0000b"\n[extract]\ninput = "v"\nstore = "s"\n[train]\nout = "o"\n')
    _check_config(path)


def test_found_infinite_segment_start(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("path,start\nclip.mp4,inf\n")
    assert _check_manifest(path) == "ValueError"


def test_found_zero_attention_heads(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text('[extract]\ninput = "v"\nstore = "s"\n[train]\nout = "o"\n[train.model]\nn_heads = 0\n')
    _check_config(path)


def test_found_newline_in_a_config_key(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text('[extract]\ninput = "v"\nstore = "s"\n"a\\nb" = 1\n[train]\nout = "o"\n')
    _check_config(path)


def test_found_manifest_not_in_utf8(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_bytes("path,emotion\nclip.mp4,colère\n".encode("latin-1"))
    _check_manifest(path)


def test_found_run_config_not_in_utf8(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_bytes('[extract]\ninput = "vidéos"\nstore = "s"\n[train]\nout = "o"\n'.encode("latin-1"))
    _check_config(path)
