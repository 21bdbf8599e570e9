"""The restricted unpickler: crafted pickles never run code and each fails with one line naming --trust-pickle; the
benchmarks' real layouts (MulT, MMSA, Python 2 / numpy 1 files) still load, at every protocol."""
from __future__ import annotations

import codecs
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline import safe_pickle
from pipeline.benchmark_files import load_pickle
from pipeline.errors import is_user_error
from pipeline.safe_pickle import UnsafePickleError
from pipeline.sources import load_source

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
# numpy's own reconstruction helpers, under numpy 1 (numpy.core) or 2 (numpy._core)
_reconstruct, scalar, _frombuffer = (np.zeros(1).__reduce__()[0], np.float64(0).__reduce__()[0],
                                     np.zeros(1).__reduce_ex__(5)[0])


# ---- crafting pickles by hand: opcodes at a given protocol -------------------------------------------------------
def _proto(p: int) -> bytes:
    return pickle.PROTO + bytes([p]) if p >= 2 else b""


def _str(s: str, p: int) -> bytes:
    if p == 0:
        return pickle.UNICODE + s.encode("raw-unicode-escape") + b"\n"
    b = s.encode()
    if p >= 4 and len(b) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(b)]) + b
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _global(module: str, name: str, p: int) -> bytes:
    if p >= 4:  # STACK_GLOBAL: protocol 4 resolves dotted names with the plain find_class
        return _str(module, p) + _str(name, p) + pickle.STACK_GLOBAL
    return pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def _call(p: int, *args: str) -> bytes:
    return pickle.MARK + b"".join(_str(a, p) for a in args) + pickle.TUPLE + pickle.REDUCE


def _code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


# (module, name, how the payload would run code with the plain unpickler): "eval" is global(code), "get" is
# global("eval")(code), "shell" is global("touch marker")
GLOBALS = [
    ("numpy.dtypes", "__builtins__.get", "get"),  # the reported 98-byte bypass of the old numpy.dtypes prefix
    ("numpy", "__builtins__.get", "get"),
    ("numpy._core.multiarray", "__builtins__.get", "get"),
    ("numpy.core.multiarray", "__builtins__.get", "get"),
    ("numpy._core.numeric", "_frombuffer.__builtins__.get", "get"),
    ("numpy", "_core.numeric._frombuffer.__globals__.get", "get"),
    ("numpy", "core.multiarray._reconstruct.__globals__", "get"),
    ("numpy", "dtype.__init__.__globals__.get", "get"),
    ("builtins", "set.__dict__.get", "get"),
    ("_codecs", "encode.__self__.__builtins__.get", "get"),
    ("numpy", "__builtins__", "get"),  # builtins through an allowed module, without a dot
    ("numpy.core.multiarray", "__builtins__", "get"),
    ("builtins", "eval", "eval"),
    ("builtins", "exec", "eval"),
    ("__builtin__", "eval", "eval"),
    ("builtins", "getattr", "eval"),
    ("builtins", "bytearray", "eval"),
    ("os", "system", "shell"),
    ("posix", "system", "shell"),
    ("subprocess", "getoutput", "shell"),
    ("numpy", "load", "eval"),
    ("numpy.dtypes", "Float32DType", "eval"),  # no prefix is allowed any more, not even numpy.dtypes
    ("numpy.testing._private.utils", "runstring", "eval"),
]


def _payload(module: str, name: str, how: str, marker: Path, p: int) -> bytes:
    body = _global(module, name, p)
    if how == "get":
        body += _call(p, "eval") + _call(p, _code(marker))
    elif how == "shell":
        body += _call(p, f"touch {marker}")
    else:
        body += _call(p, _code(marker))
    return _proto(p) + body + pickle.STOP


def _assert_refused(path: Path, marker: Path | None = None) -> UnsafePickleError:
    with pytest.raises(UnsafePickleError) as err:
        safe_pickle.load(path)
    message = str(err.value)
    assert "\n" not in message and "--trust-pickle" in message and str(path) in message, message
    assert isinstance(err.value, pickle.UnpicklingError) and is_user_error(err.value)  # the CLI: one line, exit 2
    assert marker is None or not marker.exists()
    return err.value


@pytest.mark.parametrize("p", PROTOCOLS)
@pytest.mark.parametrize("module,name,how", GLOBALS, ids=[f"{m}:{n}" for m, n, _ in GLOBALS])
def test_globals_off_the_list_are_refused(tmp_path, module, name, how, p):
    marker = tmp_path / "PWNED"
    path = tmp_path / "mosi_data.pkl"
    path.write_bytes(_payload(module, name, how, marker, p))
    err = _assert_refused(path, marker)
    assert f"{module}.{name}" in str(err)


def test_the_reported_payload_is_refused_through_load_source_and_runs_only_when_trusted(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "mosi_data.pkl"
    path.write_bytes(_payload("numpy.dtypes", "__builtins__.get", "get", marker, 4))
    with pytest.raises(UnsafePickleError, match="--trust-pickle"):
        load_source(path)
    assert not marker.exists()
    safe_pickle.load(path, trust_pickle=True)  # the opt-in is plain pickle: it does run the file
    assert marker.exists()


OPCODE_CASES = {  # other opcodes that reach a global or a callable
    "inst_os_system": lambda m: b"(" + _str(f"touch {m}", 0) + b"ios\nsystem\n.",
    "obj_builtins_eval": lambda m: b"(cbuiltins\neval\n" + _str(_code(m), 0) + b"o.",
    "newobj_ndarray": lambda m: b"\x80\x02cnumpy\nndarray\n)\x81.",
    "ndarray_called_huge": lambda m: (b"\x80\x02cnumpy\nndarray\n((" + (pickle.BININT + struct.pack("<i", 10**9)) * 2
                                      + b"tt" + pickle.REDUCE + b"."),
    "ext1": lambda m: b"\x80\x02\x82\x01.",
    "persid": lambda m: b"Pfoo\n.",
    "binpersid": lambda m: b"\x80\x02K\x01Q.",
    "garbage": lambda m: b"not a pickle at all",
    "empty": lambda m: b"",
    "truncated": lambda m: pickle.dumps({"text": np.zeros((4, 4), np.float32)}, protocol=4)[:-30],
    "binbytes8_claims_a_terabyte": lambda m: b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"x.",
}


@pytest.mark.parametrize("case", list(OPCODE_CASES))
def test_crafted_opcodes_are_refused(tmp_path, case):
    marker = tmp_path / "PWNED"
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(OPCODE_CASES[case](marker))
    _assert_refused(path, marker)


# ---- the allowed callables, each given hostile arguments through __reduce__ --------------------------------------
class _R:
    """Pickles as fn(*args), then BUILD with state if given: fn is written as its global name."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _array(dtype, state_tail, shape=(1,)):
    return _R(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, state_tail))


_F8 = np.dtype("f8")
HOSTILE = {
    "object_array_short_list": lambda: _array(np.dtype("O"), ["x"], (10**9,)),  # numpy itself reads past the list
    "object_array_long_list": lambda: _array(np.dtype("O"), ["x", "y"], (1,)),
    "object_array_from_bytes": lambda: _array(np.dtype("O"), b"A" * 8, (1,)),  # raw bytes as pointers
    "object_dtype_without_refcount": lambda: _array(
        _R(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0)), ["x"], (1,)),
    "object_array_holding_code": lambda: np.array([Path("/tmp/x")], dtype=object),
    "structured_with_object": lambda: np.zeros(2, dtype=[("a", "O"), ("b", "f8")]),
    "structured_plain": lambda: np.zeros(2, dtype=[("a", "f4")]),
    "void": lambda: np.zeros(2, "V8"),
    "datetime": lambda: np.zeros(2, "M8[ns]"),
    "dtype_spec_list": lambda: _R(np.dtype, ([("a", "O")], False, True)),
    "dtype_align": lambda: _R(np.dtype, ("f4", True, True)),
    "dtype_flags_say_object": lambda: _array(_R(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 63)),
                                             b"A" * 8),
    "dtype_fields_out_of_item": lambda: _array(
        _R(np.dtype, ("f8", False, True), (3, "<", None, ("a",), {"a": (_F8, 1000)}, 8, 1, 0)), b"A" * 8),
    "dtype_itemsize_grown": lambda: _array(_R(np.dtype, ("S3", False, True), (3, "|", None, None, None, 4096, 1, 0)),
                                           b"abc"),
    "dtype_subarray": lambda: _R(np.dtype, ("f8", False, True), (3, "<", (_F8, (1000,)), None, None, 8000, 8, 0)),
    "dtype_state_version": lambda: _R(np.dtype, ("f8", False, True), (4, "<", None, None, None, -1, -1, 0, None)),
    "dtype_state_not_tuple": lambda: _R(np.dtype, ("f8", False, True), {"flags": 63}),
    "reconstruct_huge_shape": lambda: _R(_reconstruct, (np.ndarray, (10**12,), b"b")),
    "reconstruct_not_ndarray": lambda: _R(_reconstruct, (np.dtype, (0,), b"b")),
    "reconstruct_object_code": lambda: _R(_reconstruct, (np.ndarray, (0,), b"O")),
    "ndarray_called_huge": lambda: _R(np.ndarray, ((10**6, 10**6),)),
    "ndarray_called_on_buffer": lambda: _R(np.ndarray, ((10,), _F8, b"x" * 8, 0, (-800,))),
    "array_state_list": lambda: _array(_F8, [1.0, 2.0], (2,)),
    "array_state_short_data": lambda: _array(_F8, b"\0" * 8, (10**6,)),
    "array_state_huge_shape": lambda: _array(_F8, b"\0" * 8, (2**62, 2**62)),
    "array_state_dtype_is_str": lambda: _array("O", ["x"], (1,)),
    "array_state_extra": lambda: _R(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), _F8, False, b"\0" * 8, "x")),
    "scalar_short": lambda: _R(scalar, (_F8, b"\0")),
    "scalar_object_dtype": lambda: _R(scalar, (np.dtype("O"), "x")),
    "scalar_not_bytes": lambda: _R(scalar, (_F8, [1])),
    "frombuffer_reshape_huge": lambda: _R(_frombuffer, (b"\0" * 8, _F8, (10**9,), "C")),
    "frombuffer_str": lambda: _R(_frombuffer, ("abc", np.dtype("u1"), (3,), "C")),
    "frombuffer_object": lambda: _R(_frombuffer, (b"\0" * 8, np.dtype("O"), (1,), "C")),
    "frombuffer_order": lambda: _R(_frombuffer, (b"\0" * 8, _F8, (1,), "X")),
    "frombuffer_axis_order": lambda: _R(_frombuffer, (b"\0" * 8, _F8, (1,), "K", (5, 3))),
    "codecs_zlib": lambda: _R(codecs.encode, (b"x" * 100, "zlib")),
    "codecs_rot13": lambda: _R(codecs.encode, ("x", "rot13")),
    "codecs_module_name": lambda: _R(codecs.encode, ("x", "encodings.idna")),
    "bytes_of_ten_gigabytes": lambda: _R(bytes, (10**10,)),
    "bytes_of_str": lambda: _R(bytes, ("x", "utf-8")),
    "set_of_int": lambda: _R(set, (10**10,)),
    "frozenset_of_int": lambda: _R(frozenset, (10**10,)),
    "build_on_a_set": lambda: _R(set, ([1],), {"__class__": 1}),
    "numpy_dtype_class": lambda: np.dtypes.Float32DType,
}


REFUSED_BY = {  # the check that stops these (others may stop them at more than one place)
    "object_array_short_list": "BUILD", "object_array_long_list": "BUILD", "object_array_from_bytes": "BUILD",
    "object_dtype_without_refcount": "BUILD", "dtype_flags_say_object": "BUILD", "dtype_fields_out_of_item": "BUILD",
    "dtype_itemsize_grown": "BUILD", "array_state_dtype_is_str": "BUILD", "object_array_holding_code": "pathlib",
    "reconstruct_huge_shape": "_reconstruct", "codecs_zlib": "_codecs.encode", "codecs_module_name": "_codecs.encode",
    "bytes_of_ten_gigabytes": "TypeError", "numpy_dtype_class": "numpy.dtypes.Float32DType",
}


@pytest.mark.parametrize("p", PROTOCOLS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_allowed_callables_with_hostile_arguments_are_refused(tmp_path, case, p):
    path = tmp_path / "aligned_50.pkl"
    path.write_bytes(pickle.dumps({"train": {"text": HOSTILE[case]()}}, protocol=p))
    assert REFUSED_BY.get(case, "") in str(_assert_refused(path))


def test_the_shared_dtype_is_never_changed(tmp_path):
    """numpy.dtype("f4", align, copy=False) would hand out numpy's own float32 to BUILD: always a copy here."""
    big_endian = _R(np.dtype, ("f4", False, False), (3, ">", None, None, None, -1, -1, 0))
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(big_endian, protocol=2))
    assert safe_pickle.load(tmp_path / "d.pkl") == np.dtype(">f4")
    assert np.dtype("f4").byteorder == "="


def test_out_of_band_buffers_are_refused(tmp_path):
    path = tmp_path / "oob.pkl"
    path.write_bytes(pickle.dumps(np.zeros(3), protocol=5, buffer_callback=lambda b: False))
    _assert_refused(path)


# ---- real layouts load --------------------------------------------------------------------------------------------
def _mult(rng) -> dict:
    def split(n):
        audio = rng.normal(size=(n, 7, 4)).astype(np.float32)
        audio[0, -1, 0] = -np.inf
        return {"text": rng.normal(size=(n, 5, 6)).astype(np.float32), "audio": audio,
                "vision": rng.normal(size=(n, 6, 5)).astype(np.float32),
                "labels": rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32),
                "id": np.array([[f"vid{i // 2}".encode(), str(i).encode(), b"9"] for i in range(n)])}
    return {s: split(n) for s, n in (("train", 4), ("valid", 2), ("test", 3))}


def _mmsa(rng) -> dict:
    def split(n):
        return {"text": rng.normal(size=(n, 3, 768)).astype(np.float32),
                "text_bert": rng.integers(0, 100, (n, 3, 50)).astype(np.float64),
                "audio": rng.normal(size=(n, 10, 5)), "vision": rng.normal(size=(n, 8, 20)).astype(np.float32),
                "audio_lengths": rng.integers(1, 10, n), "vision_lengths": [int(x) for x in rng.integers(1, 8, n)],
                "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
                "classification_labels": rng.integers(0, 3, n).astype(np.float32),
                "id": np.array([f"vid{i}$_${i % 3}" for i in range(n)]),
                "raw_text": np.array(["so good é ü", "bad 中文", "meh"][:n], dtype=object),
                "annotations": np.array(["Positive", "Negative", "Neutral"][:n], dtype=object),
                "mixed": np.array([["x", 1], [2.5, None], [b"z", ("t",)]][:n], dtype=object),
                "mask": np.ones(n, bool), "counts": np.arange(n, dtype=np.int32).astype(">i4"),
                "fortran": np.asfortranarray(rng.normal(size=(n, 3))), "every_other": np.arange(2 * n)[::2],
                "transposed": rng.normal(size=(2, n, 3)).transpose(1, 0, 2), "empty": np.zeros((0, 3), np.float32),
                "scalar": np.float32(1.5), "seconds": np.int64(3), "word": np.str_("ab"), "tag": np.bytes_(b"xy"),
                "names": {"a", "b"}, "frozen": frozenset([1]), "raw": b"\x00\xff", "blank": b"", "big": 2**70}
    return {s: split(3) for s in ("train", "valid", "test")}


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("p", PROTOCOLS)
@pytest.mark.parametrize("layout", ["mult", "mmsa"])
def test_real_layouts_load_equal_at_every_protocol(tmp_path, layout, p):
    data = (_mult if layout == "mult" else _mmsa)(np.random.default_rng(p))
    name = "mosi_data.pkl" if layout == "mult" else "unaligned_50.pkl"
    (tmp_path / name).write_bytes(pickle.dumps(data, protocol=p))
    loaded = safe_pickle.load(tmp_path / name)
    _assert_same(loaded, pickle.loads(pickle.dumps(data, protocol=p)))
    _assert_same(loaded, safe_pickle.load(tmp_path / name, trust_pickle=True))
    assert set(load_pickle(tmp_path / name)) == {"train", "valid", "test"}


class _Python2Pickler(pickle._Pickler):
    """Writes as Python 2 did: every str and bytes a BINSTRING, numpy's module numpy.core, builtins __builtin__."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj, raw=None):
        raw = obj if raw is None else raw
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)

    def save_str(self, obj):
        if obj.isascii():
            return self.save_bytes(obj, obj.encode("latin1"))
        return pickle._Pickler.save_str(self, obj)  # a Python 2 unicode

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


@pytest.mark.parametrize("layout", ["mult", "mmsa"])
def test_python2_numpy1_pickles_load(tmp_path, layout):
    """Files from Python 2 and numpy 1: raw array bytes as BINSTRING (read back as latin1 str), numpy.core names."""
    data = (_mult if layout == "mult" else _mmsa)(np.random.default_rng(7))
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(data)
    blob = buf.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob and b"_codecs" not in blob and pickle.BINSTRING in blob
    (tmp_path / "old.pkl").write_bytes(blob)
    loaded = safe_pickle.load(tmp_path / "old.pkl")
    _assert_same(loaded, pickle.loads(blob, encoding="latin1"))
    if layout == "mult":
        assert loaded["train"]["id"][0, 0] == b"vid0" and np.isneginf(loaded["train"]["audio"][0, -1, 0])


def test_numpy1_protocol2_pickles_load(tmp_path):
    """Files written by numpy 1 name numpy.core (numpy 2: numpy._core); protocol 2 encodes bytes via _codecs."""
    data = {"train": {"text": np.arange(6, dtype=np.float32).reshape(1, 2, 3), "id": np.array([[b"v", b"1", b"2"]]),
                      "label": np.float32(0.5), "raw": np.array(["x", 1], dtype=object)}}
    blob = pickle.dumps(data, protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in blob and b"_codecs" in blob
    (tmp_path / "old.pkl").write_bytes(blob)
    loaded = safe_pickle.load(tmp_path / "old.pkl")
    _assert_same(loaded, data)


class _Payload:
    def __reduce__(self):
        return (Path, ("/tmp/not-a-numpy-array",))


def test_code_is_refused_unless_trusted(tmp_path):
    bad = tmp_path / "mosi_data.pkl"
    bad.write_bytes(pickle.dumps({"train": {"labels": _Payload(), "raw": np.array(["x", 1], dtype=object)}}, 4))
    with pytest.raises(UnsafePickleError) as err:
        load_source(bad)
    assert str(bad) in str(err.value) and "--trust-pickle" in str(err.value) and "pathlib" in str(err.value)
    trusted = safe_pickle.load(bad, trust_pickle=True)["train"]
    assert isinstance(trusted["labels"], Path) and list(trusted["raw"]) == ["x", 1]
