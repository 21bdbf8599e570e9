"""Face identities across frames, from the faces' boxes alone: a tracker that carries over from one batch of frames
to the next and from one chunk of a long video to the next, so that ``face_id`` names the same face all along.

The visual extractor sees a video a batch of frames at a time (decoding in bounded memory), and a long video as
chunks that run on different workers; ids given batch by batch would restart at 0 every few seconds. So the
extractor stores each face's box, and :func:`retrack` renumbers a visual table's faces with one
:class:`FaceTracker` fed every batch, then every chunk, in time order.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

TRACK_MIN_IOU = 0.3
"""A face continues a track when its landmark box overlaps the track's last box by at least this IoU."""
TRACK_MAX_GAP = 1.0
"""Seconds a track may go unseen (missed detections, a turned head) and still be continued."""


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) and (m, 4) boxes x0 y0 x1 y1 -> (n, m) intersection over union (0 for empty boxes)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 1, 4), np.asarray(b, np.float64).reshape(1, -1, 4)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - w * h
    return np.divide(w * h, union, out=np.zeros_like(union), where=union > 0)


class FaceTracker:
    """Stable ids for the faces of consecutive frames, fed in time order over as many calls as needed.

    Each frame's faces are matched greedily, the pair with the largest IoU first, to the tracks seen within
    ``max_gap`` seconds (each track's last box); a pair needs an IoU of at least ``min_iou``. A face left unmatched
    starts a new track, numbered 0, 1, ... in order of appearance (left to right within a frame). Identity is
    position: a different person taking a tracked face's place (a cut) keeps its id.
    """

    def __init__(self, *, min_iou: float = TRACK_MIN_IOU, max_gap: float = TRACK_MAX_GAP):
        self.min_iou, self.max_gap = min_iou, max_gap
        self.last_box: list[np.ndarray] = []
        self.last_time: list[float] = []

    def assign(self, boxes: list[np.ndarray], times: np.ndarray) -> list[np.ndarray]:
        """boxes: per frame, (k, 4) boxes x0 y0 x1 y1; times (N,) seconds, after the previous call's.
        Returns per frame the (k,) int32 ids, distinct within a frame."""
        ids = []
        for frame_boxes, t in zip(boxes, times):
            frame_boxes = np.asarray(frame_boxes, np.float64).reshape(-1, 4)
            out = np.full(len(frame_boxes), -1, np.int32)
            alive = [j for j, seen in enumerate(self.last_time) if t - seen <= self.max_gap]
            if alive and len(frame_boxes):
                iou = box_iou(frame_boxes, np.array([self.last_box[j] for j in alive]))  # (k, alive)
                taken: set[int] = set()
                for flat in np.argsort(-iou, axis=None, kind="stable"):
                    k, j = divmod(int(flat), len(alive))
                    if iou[k, j] < self.min_iou:
                        break
                    if out[k] < 0 and j not in taken:
                        out[k] = alive[j]
                        taken.add(j)
            for k in sorted(np.flatnonzero(out < 0), key=lambda k: (frame_boxes[k, 0], frame_boxes[k, 1])):
                out[k] = len(self.last_box)
                self.last_box.append(frame_boxes[k])
                self.last_time.append(t)
            for k, track in enumerate(out):
                self.last_box[track], self.last_time[track] = frame_boxes[k], t
            ids.append(out)
        return ids


def track_faces(boxes: list[np.ndarray], times: np.ndarray, *, min_iou: float = TRACK_MIN_IOU,
                max_gap: float = TRACK_MAX_GAP) -> list[np.ndarray]:
    """:meth:`FaceTracker.assign` of a new tracker: the ids of one sequence of frames."""
    return FaceTracker(min_iou=min_iou, max_gap=max_gap).assign(boxes, times)


def retrack(table: pa.Table, tracker: FaceTracker) -> pa.Table:
    """A visual table (rows in time order, a ``box`` column) with ``face_id`` given by ``tracker``, which carries
    on from the tables it saw before; rows re-sorted by id within each frame. Tables without boxes (one face per
    frame, or files written before boxes were stored) are returned as they are."""
    if "box" not in table.column_names or not table.num_rows:
        return table
    times = table.column("time").to_numpy()
    face = table.column("face").to_numpy(zero_copy_only=False)
    boxes = np.asarray(table.column("box").combine_chunks().flatten().to_numpy(zero_copy_only=False),
                       np.float64).reshape(-1, 4)  # (R, 4)
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])  # first row of each frame
    frames = np.split(np.arange(len(times)), starts[1:])
    ids = tracker.assign([boxes[rows[face[rows]]] for rows in frames], times[starts])
    face_id = np.full(len(times), -1, np.int32)
    for rows, frame_ids in zip(frames, ids):
        face_id[rows[face[rows]]] = frame_ids
    table = table.set_column(table.schema.get_field_index("face_id"), "face_id", pa.array(face_id, pa.int32()))
    order = np.lexsort((face_id, np.repeat(np.arange(len(frames)), [len(r) for r in frames])))
    return table.take(pa.array(order)) if (order != np.arange(len(order))).any() else table
