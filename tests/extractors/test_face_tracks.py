"""``extractors.face_tracks``: one numbering of faces over tables seen one after the other (batches, chunks)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from extractors.base import features_column
from extractors.face_tracks import FaceTracker, retrack

LEFT, RIGHT = [0.1, 0.2, 0.4, 0.8], [0.6, 0.2, 0.9, 0.8]


def _table(frames: list[tuple[float, list[list[float]]]]) -> pa.Table:
    """A visual table: per frame (time, boxes), one row per box (or a no-face row), face_id numbered 0.. per frame."""
    times, face, ids, boxes = [], [], [], []
    for t, frame_boxes in frames:
        for k, box in enumerate(frame_boxes or [[np.nan] * 4]):
            times.append(t), face.append(bool(frame_boxes)), ids.append(k if frame_boxes else -1), boxes.append(box)
    return pa.table({"time": pa.array(times, pa.float64()), "face": face, "face_id": pa.array(ids, pa.int32()),
                     "box": features_column(np.array(boxes, np.float32), 4)})


def _ids(table: pa.Table) -> list[tuple[float, int, float]]:
    x = np.asarray(table["box"].combine_chunks().values, np.float64).reshape(-1, 4)[:, 0]
    return [(t, i, None if np.isnan(v) else round(v, 1))
            for t, i, v in zip(table["time"].to_pylist(), table["face_id"].to_pylist(), x)]


def test_ids_carry_over_from_one_table_to_the_next():
    tracker = FaceTracker()
    first = retrack(_table([(0.0, [RIGHT]), (0.1, []), (0.2, [RIGHT])]), tracker)
    second = retrack(_table([(0.3, [LEFT, RIGHT]), (0.4, [RIGHT, LEFT])]), tracker)  # the left face is new here
    assert _ids(first) == [(0.0, 0, 0.6), (0.1, -1, None), (0.2, 0, 0.6)]
    # the right face keeps 0, the new left face is 1; rows sorted by id within each frame
    assert _ids(second) == [(0.3, 0, 0.6), (0.3, 1, 0.1), (0.4, 0, 0.6), (0.4, 1, 0.1)]
    # a fresh tracker numbers the second table on its own: left to right
    assert _ids(retrack(_table([(0.3, [LEFT, RIGHT])]), FaceTracker())) == [(0.3, 0, 0.1), (0.3, 1, 0.6)]


def test_tables_without_boxes_are_left_as_they_are():
    table = pa.table({"time": [0.0], "face": [True], "face_id": pa.array([0], pa.int32())})
    assert retrack(table, FaceTracker()) is table
