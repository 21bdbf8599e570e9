"""MELD (Poria et al., 2019): 13.7k utterances of dialogues from the TV series Friends, emotion and sentiment each.

Reads ``train_sent_emo.csv``, ``dev_sent_emo.csv`` and ``test_sent_emo.csv`` (RAW_DIR is ``MELD.Raw``, or any
folder holding them; columns ``Sr No.``, ``Utterance``, ``Speaker``, ``Emotion``, ``Sentiment``,
``Dialogue_ID``, ``Utterance_ID``, ``Season``, ``Episode``, ``StartTime``, ``EndTime``) and the clips
``dia{Dialogue_ID}_utt{Utterance_ID}.mp4`` of the unpacked ``train_splits/``, ``dev_splits_complete/`` and
``output_repeated_splits_test/``. One row per utterance (the whole clip): ``label`` = the emotion (neutral, joy,
sadness, anger, surprise, fear, disgust), ``sentiment`` (neutral, positive, negative), ``speaker``,
``dialogue``, ``utterance``, ``season``, ``episode``; split train/valid/test from the file (dev -> valid).
Video ids carry the split (``dev_dia0_utt0``) since every split numbers its dialogues from 0. The utterance's
text is not copied (the language stream transcribes it; free text would not be a label).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.recipes.common import find_one, read_csv, row

SPLITS = {  # file prefix -> (split, folder of the clips)
    "train": ("train", "train_splits"),
    "dev": ("valid", "dev_splits_complete"),
    "test": ("test", "output_repeated_splits_test"),
}


def _folder(raw_dir: Path, name: str) -> Path:
    found = sorted((d for d in raw_dir.rglob(name) if d.is_dir()), key=lambda d: (len(d.parts), str(d)))
    return found[0] if found else raw_dir / name


def _int(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


def prepare(raw_dir: Path) -> list[dict[str, Any]]:
    tables = {prefix: find_one(raw_dir, f"{prefix}_sent_emo.csv") for prefix in SPLITS}
    if not any(tables.values()):
        raise FileNotFoundError(f"{raw_dir}: [prepare] no train_sent_emo.csv, dev_sent_emo.csv or "
                                "test_sent_emo.csv; give the MELD.Raw folder")
    rows = []
    for prefix, table in tables.items():
        if table is None:
            continue
        split, folder_name = SPLITS[prefix]
        folder = _folder(raw_dir, folder_name)
        for r in read_csv(table):
            dialogue, utterance = _int(r.get("Dialogue_ID", "")), _int(r.get("Utterance_ID", ""))
            if dialogue is None or utterance is None:
                continue
            name = f"dia{dialogue}_utt{utterance}"
            vid = f"{prefix}_{name}"
            rows.append(row(folder / f"{name}.mp4", vid, video_id=vid, split=split,
                            label=(r.get("Emotion") or "").lower() or None,
                            sentiment=(r.get("Sentiment") or "").lower() or None, speaker=r.get("Speaker") or None,
                            dialogue=dialogue, utterance=utterance, season=_int(r.get("Season", "")),
                            episode=_int(r.get("Episode", ""))))
    return rows
