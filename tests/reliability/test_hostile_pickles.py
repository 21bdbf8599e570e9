"""Issue 17, security 1: crafted pickles that passed the restricted unpickler and then crashed the process (an object
dtype rebuilt with a byte order: numpy swaps the bytes of pointers) or asked for far more memory than the file
holds. Each is refused with one line naming the file and --trust-pickle; the crash runs in a subprocess, so that a
regression fails a test instead of killing the test process."""
from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import safe_pickle
from pipeline.safe_pickle import UnsafePickleError
from tests.pipeline.test_safe_pickle import _R, _reconstruct

ROOT = Path(__file__).resolve().parents[2]


def _object_array(order: str, items: list) -> _R:
    """An object array whose dtype's BUILD state carries byte order ``order`` (numpy writes "|")."""
    dtype = _R(np.dtype, ("O8", False, True), (3, order, None, None, None, -1, -1, 63))
    return _R(_reconstruct, (np.ndarray, (0,), b"b"), (1, (len(items),), dtype, False, items))


def _mult_split(ids) -> dict:
    x = np.zeros((2, 3, 4), np.float32)
    return {"train": {"text": x, "audio": x, "vision": x, "labels": np.zeros((2, 1, 1), np.float32), "id": ids}}


LOAD = ("import sys; from pathlib import Path; from pipeline.benchmark_files import load_pickle\n"
        "try:\n    load_pickle(Path(sys.argv[1]))\nexcept ValueError as e:\n    print(e)\n")


@pytest.mark.parametrize("order", [">", "<", "="])
def test_an_object_array_with_a_byte_order_is_refused_not_a_crash(tmp_path, order):
    path = tmp_path / "mosi_data.pkl"
    path.write_bytes(pickle.dumps(_mult_split(_object_array(order, ["ab", "cd"])), protocol=4))
    done = subprocess.run([sys.executable, "-c", LOAD, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"exit {done.returncode} (139/-11: a segfault): {done.stderr[-500:]}"
    assert "refused to unpickle" in done.stdout and "--trust-pickle" in done.stdout, done.stdout


def test_a_native_object_array_still_loads(tmp_path):
    path = tmp_path / "mosi_data.pkl"
    path.write_bytes(pickle.dumps(_mult_split(_object_array("|", ["ab", "cd"])), protocol=4))
    assert list(safe_pickle.load(path)["train"]["id"]) == ["ab", "cd"]


# ---- sizes beyond the file's -----------------------------------------------------------------------------------
def _memo_encode_many(text_len: int, times: int) -> bytes:
    """Protocol 2: one memoised str, given to _codecs.encode(s, "latin1") ``times`` times in a list."""
    s = b"x" * text_len
    body = (pickle.PROTO + b"\x02" + b"c_codecs\nencode\n" + pickle.BINPUT + b"\x00"
            + pickle.BINUNICODE + struct.pack("<I", text_len) + s + pickle.BINPUT + b"\x01"
            + pickle.SHORT_BINUNICODE + b"\x06latin1" + pickle.BINPUT + b"\x02" + pickle.POP + pickle.POP + pickle.POP
            + pickle.EMPTY_LIST + pickle.MARK)
    call = pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + pickle.BINGET + b"\x02" + pickle.TUPLE2 + pickle.REDUCE
    return body + call * times + pickle.APPENDS + pickle.STOP


def _shared_bytes_arrays(n_bytes: int, times: int) -> bytes:
    """``times`` big-endian float arrays that BUILD from one memoised bytes object (numpy copies it to swap)."""
    data = bytes(n_bytes)
    arrays = [_R(_reconstruct, (np.ndarray, (0,), b"b"), (1, (n_bytes // 8,), np.dtype(">f8"), False, data))
              for _ in range(times)]
    return pickle.dumps(arrays, protocol=4)


SIZE_CASES = {
    "one_str_encoded_many_times": lambda: _memo_encode_many(200_000, 100),  # 200 kB file, 20 MB of bytes
    "one_bytes_built_into_many_arrays": lambda: _shared_bytes_arrays(200_000, 100),
    "one_array_referenced_many_times": lambda: pickle.dumps({"labels": [np.zeros(50_000)] * 200}, protocol=4),
    "one_str_referenced_by_an_object_array": lambda: pickle.dumps(
        {"id": np.array(["x" * 100_000] * 400, dtype=object)}, protocol=4),
    "an_empty_array_with_a_huge_dimension": lambda: pickle.dumps({"text": np.zeros((0, 10**12, 3))}, protocol=4),
    "an_empty_array_with_a_huge_item": lambda: pickle.dumps({"text": np.zeros(0, "S999999999")}, protocol=4),
}


@pytest.mark.parametrize("case", list(SIZE_CASES))
def test_sizes_past_the_files_own_are_refused(tmp_path, case):
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(SIZE_CASES[case]())
    with pytest.raises(UnsafePickleError) as err:
        safe_pickle.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "--trust-pickle" in message
    assert f"the file's {path.stat().st_size} bytes" in message, message


def test_a_large_honest_file_is_within_its_budget(tmp_path):
    """Arrays written once (protocol 2 encodes each through _codecs, counted twice) and memoised short strings."""
    rng = np.random.default_rng(0)
    data = {s: {"text": rng.normal(size=(300, 20, 50)), "id": np.array(["Positive", "Negative"] * 3000, dtype=object),
                "raw_text": np.array([f"words {i}" for i in range(6000)], dtype=object)} for s in ("train", "test")}
    for p in (2, 4, 5):
        path = tmp_path / f"p{p}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=p))
        assert np.array_equal(safe_pickle.load(path)["test"]["text"], data["test"]["text"])
