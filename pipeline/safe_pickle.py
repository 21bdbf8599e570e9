"""Load the benchmarks' pickles without running arbitrary code.

MulT's and MMSA's feature files are pickles of numpy arrays in dicts. :func:`load` resolves only the exact (module,
name) pairs of :data:`_ALLOWED`, each to a stand-in that checks its arguments, and lets BUILD set only numpy arrays'
and dtypes' own state, checked too (numpy's ``__setstate__`` takes forged dtype flags and reads past a short list of
objects). Anything else, and any error, raises :class:`UnsafePickleError`: one line, naming ``--trust-pickle``.
"""
from __future__ import annotations

import io
import math
import pickle
import re
import reprlib
from pathlib import Path

import numpy as np


class UnsafePickleError(pickle.UnpicklingError, ValueError):  # a ValueError: the user's to fix (pipeline.errors)
    """The pickle asks for something outside the allow-list, or is malformed; loading it plainly may run code."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(
            f"{path}: [load] refused to unpickle: {reason}. Only numpy arrays and plain containers are loaded; "
            "if you trust this file, pass --trust-pickle (load_source(..., trust_pickle=True)).")


_Refused = type("_Refused", (pickle.UnpicklingError,), {})  # the checks' refusals: load() wraps them, reason as is
_short = reprlib.Repr()  # short reprs for messages, cheap even for a hostile gigabyte of bytes
_short.repr_bytes = _short.repr_bytearray = lambda x, level: repr(bytes(x[:20])) + ("..." if len(x) > 20 else "")
_brief = _short.repr
_DTYPE_SPEC = re.compile(r"[biuf][1248]|[SU][0-9]{1,9}|O[48]")  # np.dtype.__reduce__'s numbers, strings, objects


def _safe_dtype(d, kinds: str = "biufSU") -> bool:  # numbers, strings ("O": objects); no fields or forged flags
    return (isinstance(d, np.dtype) and d.kind in tuple(kinds) and d.names is None and d.subdtype is None
            and d.flags == np.dtype(d.str).flags)


def _dtype(spec, align=False, copy=True):
    """numpy.dtype(spec, align, copy) of a number, string or object; always a fresh copy (BUILD sets its byte order)."""
    if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec) or align:
        raise _Refused(f"numpy.dtype({_brief(spec)}, align={_brief(align)}): only numbers, strings and plain objects")
    return np.dtype(spec, align=False, copy=True)


_NDARRAY = type("_Marker", (), {"__repr__": lambda self: "numpy.ndarray"})()  # ("numpy", "ndarray"): not callable


def _reconstruct(subtype, shape, typecode):  # numpy's, as ndarray.__reduce__ calls it: an empty array BUILD fills
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused(f"_reconstruct{_brief((subtype, shape, typecode))}: only (numpy.ndarray, (0,), b'b')")
    return np.ndarray((0,), "b")


def _frombuffer(buf, dtype, shape, order, axis_order=None):  # numpy's, for protocol 5: in-band bytes as an array
    if not isinstance(buf, (bytes, bytearray)) or not _safe_dtype(dtype) or order not in ("C", "F", "K"):
        raise _Refused(f"_frombuffer{_brief((buf, dtype, shape, order))}: only bytes of a number or string dtype")
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _scalar(dtype, data):  # numpy's scalar(dtype, raw bytes): a numpy number or string
    data = data.encode("latin1") if isinstance(data, str) else data  # Python 2 pickles, read as latin1
    if not _safe_dtype(dtype) or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"numpy scalar{_brief((dtype, data))}: only the bytes of one number or string")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1(text, encoding):  # _codecs.encode(text, "latin1"): bytes at protocols 0-2; other codecs import modules
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused(f"_codecs.encode({_brief(text)}, {_brief(encoding)}): only a str and 'latin1'")
    return text.encode("latin1")


def _empty_bytes():  # bytes(), how protocols 0-2 write b""; bytes(n) would allocate n bytes
    return b""


# Every global that a pickle of numpy arrays in dicts, lists, tuples and sets names: written by numpy 1.x
# (numpy.core) or 2.x (numpy._core), Python 2 (__builtin__) or 3 (builtins), at protocols 0-5. Exact pairs only.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct, ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar, ("numpy._core.multiarray", "scalar"): _scalar,  # numpy scalars
    ("numpy.core.numeric", "_frombuffer"): _frombuffer, ("numpy._core.numeric", "_frombuffer"): _frombuffer,  # proto 5
    ("builtins", "set"): set, ("__builtin__", "set"): set,  # sets at protocols 0-3
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
    ("builtins", "bytes"): _empty_bytes, ("__builtin__", "bytes"): _empty_bytes,  # b"" at protocols 0-2
    ("_codecs", "encode"): _latin1,  # bytes at protocols 0-2
}


def _state_ok(inst, state) -> bool:
    """A dtype's is a fresh one's but for byte order; an array's ([version,] shape, dtype, fortran, data) has a safe
    dtype and exactly its shape's worth of bytes, or of items for objects (themselves unpickled through this list)."""
    if isinstance(inst, np.dtype) and isinstance(state, tuple) and len(state) == 8:
        return state[0] == 3 and state[1] in ("<", ">", "|", "=") and state[2:] == inst.__reduce__()[2][2:]
    if type(inst) is not np.ndarray or not isinstance(state, tuple) or len(state) not in (4, 5):
        return False
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and _safe_dtype(dtype, "biufSUO")):
        return False
    if dtype.kind == "O":
        return type(data) is list and len(data) == math.prod(shape)
    return isinstance(data, (bytes, bytearray, str)) and len(data) == math.prod(shape) * dtype.itemsize


class _Opcodes(dict):
    def __missing__(self, code):
        raise _Refused(f"opcode {bytes([code])!r} is not a pickle opcode")


class _RestrictedUnpickler(pickle._Unpickler):  # Python's own implementation, whose BUILD can be checked
    def find_class(self, module: str, name: str):
        if "." in name or (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name} is not on the allow-list")
        return _ALLOWED[(module, name)]

    def get_extension(self, code):
        raise _Refused(f"extension code {code}")

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if not _state_ok(inst, state):
            raise _Refused(f"BUILD {type(inst).__name__} with {_brief(state)}: not a state numpy writes")
        self.stack.pop()
        inst.__setstate__(state)

    dispatch = _Opcodes({**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build})


def load(path: str | Path, *, trust_pickle: bool = False):
    """The object in the pickle at ``path``; with ``trust_pickle``, plain :mod:`pickle` (runs what the file says)."""
    data = Path(path).read_bytes()
    if trust_pickle:
        return pickle.loads(data, encoding="latin1")
    try:  # latin1 reads numpy arrays from Python 2 pickles too
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # anything failing in the restricted load (TypeError, MemoryError, EOFError...)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        reason = first if isinstance(exc, _Refused) else f"{type(exc).__name__}: {first}".rstrip(": ")
        raise UnsafePickleError(path, reason) from None
