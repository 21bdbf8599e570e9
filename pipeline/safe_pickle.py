"""Load the benchmarks' pickles without running arbitrary code.

MulT's and MMSA's feature files are pickles: a dict of splits holding numpy arrays. ``pickle.load`` on a file from
the internet can execute anything, so :func:`load` admits only what those files need: numpy arrays, dtypes and
scalars, and plain containers (dict, list, tuple, set, str, bytes, numbers). Anything else raises
:class:`UnsafePickleError`, naming the file, the offending global and ``--trust-pickle``, the explicit opt-in.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

# (module, name) globals a numpy-arrays-in-plain-containers pickle refers to. numpy 2 renamed numpy.core to
# numpy._core; pickles written by either are found under both names.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
     for name in ("_reconstruct", "scalar")]
    + [(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int",
                                 "float", "complex", "bool", "slice", "range")]
    + [("__builtin__", n) for n in ("set", "frozenset", "bytearray", "unicode", "long")]
    + [("collections", "OrderedDict"), ("collections", "defaultdict"),
       ("_codecs", "encode")]  # protocol-2 pickles of bytes: _codecs.encode(str, "latin1")
)
# numpy's dtype classes (numpy.dtypes.Float32DType...) appear in pickles written by numpy >= 1.25.
_ALLOWED_MODULE_PREFIXES = ("numpy.dtypes",)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to a global outside the allow-list; it may execute code if loaded."""

    def __init__(self, path: str | Path, module: str, name: str):
        self.path, self.module, self.name = str(path), module, name
        super().__init__(
            f"{path}: [load] refuses to unpickle {module}.{name}: only numpy arrays and plain containers are "
            "loaded from pickles. If you trust this file, pass --trust-pickle (load_source(..., trust_pickle=True)).")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str | Path):
        super().__init__(file, encoding="latin1")  # latin1 reads numpy arrays from Python 2 pickles too
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED or module.startswith(_ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise UnsafePickleError(self._path, module, name)


def load(path: str | Path, *, trust_pickle: bool = False):
    """The object in the pickle at ``path``.

    trust_pickle: load with the plain, unrestricted :mod:`pickle` (runs whatever the file says: only for files you
        trust).
    """
    path = Path(path)
    data = path.read_bytes()
    if trust_pickle:
        return pickle.loads(data, encoding="latin1")
    return _RestrictedUnpickler(io.BytesIO(data), path).load()
