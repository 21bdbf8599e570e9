"""Load the benchmarks' pickles without running arbitrary code.

MulT's and MMSA's feature files are pickles of numpy arrays in dicts. :func:`load` resolves only the exact (module,
name) pairs of :data:`_ALLOWED`, each to a stand-in that checks its arguments, and lets BUILD set only numpy arrays'
and dtypes' own state, checked too (numpy's ``__setstate__`` takes forged dtype flags and reads past a short list of
objects; BUILD with a byte order on an object dtype makes numpy swap the bytes of pointers). Every size is bounded by
the file's own: no dimension or item size larger than the file, at most :data:`EXPANSION` times the file's bytes in
all the arrays and bytes the load makes (one memoised string encoded a thousand times is a thousand strings), and as
much again in the data it returns, counting an array or string once per reference to it (a list of a thousand
references to one array becomes a thousand arrays in ``np.asarray``). Anything else, and any error, raises
:class:`UnsafePickleError`: one line, naming ``--trust-pickle``.
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
EXPANSION = 8  # bytes made per byte of file, at most: a legitimate file of arrays makes about 1, of memoised strings <8
_SLACK = 1 << 20  # bytes any file may make, so that small files are never refused for their ratio


def _safe_dtype(d, kinds: str = "biufSU") -> bool:  # numbers, strings ("O": objects); no fields or forged flags
    return (isinstance(d, np.dtype) and d.kind in tuple(kinds) and d.names is None and d.subdtype is None
            and d.flags == np.dtype(d.str).flags and (d.kind != "O" or d.byteorder == "|"))


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
        fresh = inst.__reduce__()[2]  # objects, bytes and single bytes have no byte order ("|"): they keep none
        orders = ("|",) if fresh[1] == "|" else ("<", ">", "=")
        return state[0] == 3 and state[1] in orders and state[2:] == fresh[2:]
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


def _made(obj) -> int:
    """Bytes an allowed callable's result or a built array holds (objects: a pointer per item)."""
    if isinstance(obj, np.ndarray):
        return obj.size * 8 if obj.dtype.kind == "O" else obj.nbytes
    return len(obj) if isinstance(obj, (bytes, bytearray, str)) else 0


class _RestrictedUnpickler(pickle._Unpickler):  # Python's own implementation, whose BUILD can be checked
    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), encoding="latin1")  # latin1 reads numpy arrays from Python 2 pickles too
        self.file_size, self.budget = len(data), EXPANSION * len(data) + _SLACK

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` more made by the load; refuse once they pass the file's budget."""
        self.budget -= nbytes
        if self.budget < 0:
            raise _Refused(f"{what} makes more than {EXPANSION}x the file's {self.file_size} bytes "
                           "(a size or a reference repeated past what the file holds)")

    def check_sizes(self, shape, dtype: np.dtype) -> None:
        if any(n > self.file_size for n in shape) or dtype.itemsize > self.file_size:
            raise _Refused(f"an array of shape {_brief(shape)} and dtype {dtype}: a size larger than the file's "
                           f"{self.file_size} bytes")

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
        if isinstance(inst, np.ndarray):
            shape, dtype = state[-4], state[-3]
            self.check_sizes(shape, dtype)
            self.charge(math.prod(shape) * (8 if dtype.kind == "O" else dtype.itemsize), "BUILD of an array")
        self.stack.pop()
        inst.__setstate__(state)

    def load_reduce(self):  # the allowed callables: numpy.dtype, _frombuffer, scalar, _codecs.encode, set...
        super().load_reduce()
        made = self.stack[-1]
        if isinstance(made, np.ndarray):
            self.check_sizes(made.shape, made.dtype)
        self.charge(_made(made), f"{type(made).__name__} from a call")

    def load_checked(self):
        """The pickled object, once its expanded size (every reference counted) fits the budget too."""
        obj = self.load()
        self.budget, stack = EXPANSION * self.file_size + _SLACK, [obj]  # a budget of its own
        while stack:  # each visit charges at least 8 bytes, so a hostile graph ends the walk within the budget
            item = stack.pop()
            self.charge(max(8, _made(item)), "the data, counting each reference,")
            if isinstance(item, dict):
                stack += [*item.keys(), *item.values()]
            elif isinstance(item, (list, tuple, set, frozenset)):
                stack += item
            elif isinstance(item, np.ndarray) and item.dtype.kind == "O":
                stack += item.reshape(-1).tolist()
        return obj

    dispatch = _Opcodes({**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build, pickle.REDUCE[0]: load_reduce})


def load(path: str | Path, *, trust_pickle: bool = False):
    """The object in the pickle at ``path``; with ``trust_pickle``, plain :mod:`pickle` (runs what the file says)."""
    data = Path(path).read_bytes()
    if trust_pickle:
        return pickle.loads(data, encoding="latin1")
    try:
        return _RestrictedUnpickler(data).load_checked()
    except Exception as exc:  # anything failing in the restricted load (TypeError, MemoryError, EOFError...)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        reason = first if isinstance(exc, _Refused) else f"{type(exc).__name__}: {first}".rstrip(": ")
        raise UnsafePickleError(path, reason) from None
