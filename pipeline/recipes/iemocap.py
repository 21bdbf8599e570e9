"""IEMOCAP (Busso et al., 2008): five sessions of dyadic dialogues, each utterance with an emotion and V/A/D.

Reads ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` (RAW_DIR is the ``IEMOCAP_full_release`` folder, or a
folder holding it), whose utterance lines read::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

and the dialog videos ``Session{n}/dialog/avi/DivX/<dialog>.avi``. One row per utterance, cut from its dialog's
video: ``label`` = the emotion's name, ``valence``, ``activation``, ``dominance`` (1-5), ``session`` (1-5, the
fold of leave-one-session-out) and ``speaker`` (``Ses01F``...: session and the speaker's sex).
Split: ``test_session`` (default 5) is the test split; of each other session every tenth dialog (in sorted
order: the 10th, 20th...) is valid, the rest train. ``classes="four"`` keeps the four classes of the usual
IEMOCAP benchmark (neutral, happy with excited merged into it, sad, angry) and drops the other utterances.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.recipes.common import row

EMOTIONS = {"neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry", "fru": "frustrated",
            "fea": "fear", "sur": "surprise", "dis": "disgust", "oth": "other", "xxx": "no_agreement"}
FOUR_CLASSES = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses(\d\d)\S*)\s+(\w+)\s+"
                  r"\[\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\]")


def sessions(raw_dir: Path) -> list[Path]:
    found = sorted(raw_dir.glob("Session[1-5]")) or sorted(raw_dir.glob("*/Session[1-5]"))
    if not found:
        raise FileNotFoundError(f"{raw_dir}: [prepare] no Session1..Session5 folders; give the "
                                "IEMOCAP_full_release folder")
    return found


def read_evaluation(path: Path) -> list[dict[str, Any]]:
    """The utterance lines of one EmoEvaluation file (the evaluators' lines below each are skipped)."""
    utterances = []
    for line in path.read_text(errors="replace").splitlines():
        m = LINE.match(line.strip())
        if m:
            start, end, utt, session, code, v, a, d = m.groups()
            utterances.append({"utterance": utt, "start": float(start), "end": float(end), "code": code,
                               "session": int(session), "valence": float(v), "activation": float(a),
                               "dominance": float(d)})
    return utterances


def prepare(raw_dir: Path, *, test_session: int = 5, classes: str = "all") -> list[dict[str, Any]]:
    if test_session not in range(1, 6):
        raise ValueError(f"{raw_dir}: [prepare] iemocap: --test-session must be 1..5, got {test_session}")
    if classes not in ("all", "four"):
        raise ValueError(f"{raw_dir}: [prepare] iemocap: --classes must be 'all' or 'four', got {classes!r}")
    names = EMOTIONS if classes == "all" else FOUR_CLASSES
    rows = []
    for session in sessions(raw_dir):
        files = sorted(p for p in (session / "dialog" / "EmoEvaluation").glob("*.txt") if not p.name.startswith("."))
        for index, path in enumerate(files):
            dialog = path.stem
            video = session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
            for u in read_evaluation(path):
                if u["code"] not in names:
                    continue
                if u["session"] == test_session:
                    split = "test"
                else:
                    split = "valid" if index % 10 == 9 else "train"
                gender = u["utterance"].rsplit("_", 1)[-1][:1]
                rows.append(row(video, u["utterance"], start=u["start"], end=u["end"], split=split,
                                label=names[u["code"]], valence=u["valence"], activation=u["activation"],
                                dominance=u["dominance"], session=u["session"],
                                speaker=f"Ses{u['session']:02d}{gender}"))
    return rows
