"""CREMA-D (Cao et al., 2014): 7442 clips of 91 actors saying 12 sentences in six acted emotions.

Reads the clip names ``<ActorID>_<Sentence>_<Emotion>_<Level>``, e.g. ``1001_DFA_ANG_XX.flv``, found anywhere
under RAW_DIR (``VideoFlash/*.flv`` in the release; ``media="audio"`` takes ``AudioWAV/*.wav`` instead), and,
when present, ``processedResults/summaryTable.csv`` (the crowd's votes per clip: ``FileName``, ``VoiceVote``,
``VoiceLevel``, ``FaceVote``, ``FaceLevel``, ``MultiModalVote``, ``MultiModalLevel``) and
``VideoDemographics.csv`` (``ActorID``, ``Age``, ``Sex``...). One row per clip (the whole clip): ``label`` = the
acted emotion, ``intensity`` (low/medium/high/unspecified), ``sentence`` (its code) and ``text``, ``actor``,
``sex`` and ``age`` when the demographics are there, and ``voice_vote``/``face_vote``/``multimodal_vote`` (the
crowd's emotion, ties as ``angry:neutral``) with their ``*_level`` (mean perceived intensity).
Files not named by the convention are ignored. ``split="actors"``: a speaker-independent split by actor id.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.corpus import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from pipeline.recipes.common import by_stem, find_one, media_files, read_csv, row, speaker_splits

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
VOTES = {code[0]: name for code, name in EMOTIONS.items()}  # the vote table abbreviates to one letter
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before", "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def _vote(value: str) -> str | None:
    names = [VOTES.get(v.strip(), v.strip()) for v in value.split(":") if v.strip()]
    return ":".join(names) or None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def votes(raw_dir: Path) -> dict[str, dict[str, Any]]:
    """Clip name -> the crowd's votes, from ``summaryTable.csv`` when there is one."""
    path = find_one(raw_dir, "summaryTable.csv")
    table = {}
    for r in read_csv(path) if path else []:
        if r.get("FileName"):
            table[r["FileName"]] = {
                "voice_vote": _vote(r.get("VoiceVote", "")), "voice_level": _float(r.get("VoiceLevel")),
                "face_vote": _vote(r.get("FaceVote", "")), "face_level": _float(r.get("FaceLevel")),
                "multimodal_vote": _vote(r.get("MultiModalVote", "")),
                "multimodal_level": _float(r.get("MultiModalLevel"))}
    return table


def demographics(raw_dir: Path) -> dict[int, dict[str, Any]]:
    path = find_one(raw_dir, "VideoDemographics.csv")
    table = {}
    for r in read_csv(path) if path else []:
        if r.get("ActorID", "").isdigit():
            table[int(r["ActorID"])] = {"sex": (r.get("Sex") or "").lower() or None, "age": _float(r.get("Age"))}
    return table


def prepare(raw_dir: Path, *, media: str = "video", split: str | None = None) -> list[dict[str, Any]]:
    if media not in ("video", "audio"):
        raise ValueError(f"{raw_dir}: [prepare] crema-d: --media must be 'video' or 'audio', got {media!r}")
    if split not in (None, "actors"):
        raise ValueError(f"{raw_dir}: [prepare] crema-d: --split must be 'actors' (or not given), got {split!r}")
    files = by_stem(media_files(raw_dir, VIDEO_EXTENSIONS if media == "video" else AUDIO_EXTENSIONS))
    clips = {stem: (path, m.groups()) for stem, path in sorted(files.items()) if (m := NAME.match(stem))
             and m.group(3) in EMOTIONS}
    split_of = speaker_splits(int(g[0]) for _, g in clips.values()) if split else {}
    crowd, people = votes(raw_dir), demographics(raw_dir)
    rows = []
    for stem, (path, (actor, sentence, emotion, level)) in clips.items():
        rows.append(row(path, stem, split=split_of.get(int(actor)), label=EMOTIONS[emotion],
                        intensity=LEVELS.get(level, "unspecified"), sentence=sentence,
                        text=SENTENCES.get(sentence), actor=int(actor), **people.get(int(actor), {}),
                        **crowd.get(stem, {})))
    return rows
