"""RAVDESS (Livingstone & Russo, 2018): 24 actors speaking and singing two statements in eight emotions.

Reads the file names (seven two-digit codes), e.g. ``Actor_12/01-01-06-01-02-01-12.mp4``, found anywhere under
RAW_DIR: modality (01 audio-video, 02 video only, 03 audio only), vocal channel (01 speech, 02 song), emotion
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal,
02 strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition (01,
02) and actor (01-24; odd male, even female). One row per file (the whole clip): ``label`` = the emotion,
``intensity``, ``statement``, ``text``, ``repetition``, ``actor``, ``sex``, ``channel`` (speech/song) and
``media`` (av/video/audio).
``modality`` picks the files (default ``av``: the audio-video ones, which have both streams; ``video``, ``audio``
or ``all``), ``channel`` the vocal channel (``all``, ``speech`` or ``song``); files not named by the convention
are ignored. ``split="actors"``: a speaker-independent split by actor number.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.corpus import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from pipeline.recipes.common import media_files, row, speaker_splits

MODALITIES = {"01": "av", "02": "video", "03": "audio"}
CHANNELS = {"01": "speech", "02": "song"}
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
NAME = re.compile(r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(\d\d)-(\d\d)$")


def prepare(raw_dir: Path, *, modality: str = "av", channel: str = "all",
            split: str | None = None) -> list[dict[str, Any]]:
    if modality not in ("av", "video", "audio", "all"):
        raise ValueError(f"{raw_dir}: [prepare] ravdess: --modality must be av, video, audio or all, "
                         f"got {modality!r}")
    if channel not in ("all", "speech", "song"):
        raise ValueError(f"{raw_dir}: [prepare] ravdess: --channel must be all, speech or song, got {channel!r}")
    if split not in (None, "actors"):
        raise ValueError(f"{raw_dir}: [prepare] ravdess: --split must be 'actors' (or not given), got {split!r}")
    found = []
    for path in media_files(raw_dir, VIDEO_EXTENSIONS + AUDIO_EXTENSIONS):
        m = NAME.match(path.stem)
        if not m:
            continue
        codes = m.groups()
        if modality != "all" and MODALITIES[codes[0]] != modality:
            continue
        if channel != "all" and CHANNELS[codes[1]] != channel:
            continue
        found.append((path, codes))
    split_of = speaker_splits(int(c[6]) for _, c in found) if split else {}
    rows = []
    for path, (mod, chan, emotion, intensity, statement, repetition, actor) in found:
        rows.append(row(path, path.stem, split=split_of.get(int(actor)), label=EMOTIONS[emotion],
                        intensity=INTENSITIES[intensity], statement=int(statement), text=STATEMENTS[statement],
                        repetition=int(repetition), actor=int(actor), sex="male" if int(actor) % 2 else "female",
                        channel=CHANNELS[chan], media=MODALITIES[mod]))
    return rows
