"""Load the benchmarks' pickles without running arbitrary code.

MulT's and MMSA's feature files are pickles: a dict of splits holding numpy arrays. ``pickle.load`` on a file from
the internet can execute anything, so :func:`load` resolves only the exact (module, name) pairs of :data:`_ALLOWED`,
each to a stand-in that checks its arguments, and applies object state (the BUILD opcode) only to numpy arrays and
dtypes, after checking it too: numpy's own ``dtype.__setstate__`` accepts object flags and field offsets outside the
item, which turn an array's bytes into pointers. Whatever else the file asks for, and any error on the way, raises
:class:`UnsafePickleError`: one line naming the file and ``--trust-pickle``, the opt-in to plain :mod:`pickle`.
"""
from __future__ import annotations

import io
import pickle
import re
import reprlib
from pathlib import Path

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list, or is malformed; loading it plainly may run code."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(
            f"{path}: [load] refused to unpickle: {reason}. Only numpy arrays of numbers or strings in plain "
            "containers are loaded; if you trust this file, pass --trust-pickle (load_source(..., trust_pickle=True)).")


class _Refused(pickle.UnpicklingError):
    pass


class _Brief(reprlib.Repr):  # short reprs for messages, cheap even for a hostile gigabyte of bytes
    def repr_bytes(self, x, level):
        return repr(bytes(x[:20])) + ("..." if len(x) > 20 else "")

    repr_bytearray = repr_bytes


_brief = _Brief().repr
_DTYPE_SPEC = re.compile(r"[biuf][1248]|[SU][0-9]{1,9}")  # the specs np.dtype.__reduce__ writes for numbers, strings


def _safe_dtype(d) -> bool:
    """A plain number or string dtype (no objects, fields or sub-arrays), with the flags numpy gives it."""
    return (isinstance(d, np.dtype) and d.kind in tuple("biufSU") and d.names is None and d.subdtype is None
            and not d.hasobject and d.flags in (0, np.dtype(d.str).flags))


def _dtype(spec, align=False, copy=True):
    """numpy.dtype(spec, align, copy) for a number or string; always a fresh copy (BUILD then sets its byte order)."""
    if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec) or align:
        raise _Refused(f"numpy.dtype({_brief(spec)}, align={_brief(align)}): only numbers and strings, no objects")
    return np.dtype(spec, align=False, copy=True)


class _Marker:
    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _Marker()  # what ("numpy", "ndarray") resolves to: not callable; only _reconstruct's first argument


def _reconstruct(subtype, shape, typecode):
    """numpy's _reconstruct(ndarray, (0,), b"b") of ndarray.__reduce__: an empty array that BUILD then fills."""
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused(f"_reconstruct{_brief((subtype, shape, typecode))}: only (numpy.ndarray, (0,), b'b')")
    return np.ndarray((0,), "b")


def _frombuffer(buf, dtype, shape, order, axis_order=None):
    """numpy's _frombuffer of protocol 5: an in-band buffer as an array."""
    if not isinstance(buf, (bytes, bytearray)) or not _safe_dtype(dtype) or order not in ("C", "F", "K"):
        raise _Refused(f"_frombuffer{_brief((buf, dtype, shape, order))}: only bytes of a number or string dtype")
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _scalar(dtype, data):
    """numpy's scalar(dtype, raw bytes): a numpy number or string."""
    data = data.encode("latin1") if isinstance(data, str) else data  # Python 2 pickles, read as latin1
    if not _safe_dtype(dtype) or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"numpy scalar{_brief((dtype, data))}: only the bytes of one number or string")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1(text, encoding):
    """_codecs.encode(text, "latin1"), how protocols 0-2 write bytes; other codecs (they import modules) refused."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused(f"_codecs.encode({_brief(text)}, {_brief(encoding)}): only a str and 'latin1'")
    return text.encode("latin1")


def _empty_bytes():
    return b""  # bytes(), how protocols 0-2 write b""; bytes(n) would allocate n bytes


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
    """A dtype's state must be a fresh one's but for byte order; an array's is ([version,] shape, dtype, fortran,
    raw bytes) with a plain dtype (numpy checks the bytes against shape and dtype)."""
    if isinstance(inst, np.dtype) and isinstance(state, tuple) and len(state) == 8:
        ref = inst.__reduce__()[2]
        return state[0] == 3 and state[1] in ("<", ">", "|", "=") and state[2:7] == ref[2:7] and state[7] in (0, ref[7])
    if type(inst) is np.ndarray and isinstance(state, tuple) and len(state) in (4, 5):
        return _safe_dtype(state[-3]) and isinstance(state[-1], (bytes, bytearray, str))
    return False


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
            raise _Refused(f"BUILD {type(inst).__name__} with {_brief(state)}: only numpy arrays' and dtypes' own")
        self.stack.pop()
        inst.__setstate__(state)

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build}


def load(path: str | Path, *, trust_pickle: bool = False):
    """The object in the pickle at ``path``.

    trust_pickle: load with the plain, unrestricted :mod:`pickle` (runs whatever the file says: only for files you
        trust).
    """
    path = Path(path)
    data = path.read_bytes()
    if trust_pickle:
        return pickle.loads(data, encoding="latin1")
    try:  # latin1 reads numpy arrays from Python 2 pickles too
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # anything failing in the restricted load (TypeError, MemoryError, EOFError...)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UnsafePickleError(path, first if isinstance(exc, _Refused) else f"{type(exc).__name__}: {first}") from None
