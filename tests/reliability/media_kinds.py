"""The malformed and awkward media of the reliability suite, written with ffmpeg from the shared CREMA-D clips.

Each :class:`Case` is one file of the corpus folder, the kind of input it stands for and what ``mcr extract`` must
make of it: ``done`` (a good video: extracted), ``failed`` (a broken one: recorded with a stage and a message that
says what is wrong) or ``either`` (damaged but maybe still decodable: done or a clear failure, never a crash).

ffmpeg runs as a subprocess with an argument list (no shell). Nothing here uses the project's own decoder to build or
check an input: the rotation is checked with ffmpeg's auto-rotation and the bit flips with PyAV's demuxer.
"""
from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CREMAD = REPO / ".." / "shared" / "data" / "cremad"
LONG_SECONDS = 60.0
UNICODE_NAME = "émotion 😀 clip.mp4"


@dataclass(frozen=True)
class Case:
    file: str
    kind: str
    expect: str                 # "done", "failed" or "either"
    audio: bool = True          # done: speech in it (language and acoustic rows expected)
    video: bool = True          # done: pictures in it (visual rows expected)
    cause: str = ""             # failed: a regex the error message must match


CASES = (
    Case("data_stream_first.flv", "data stream first (the original CREMA-D FLV)", "done"),
    Case("no_audio.mp4", "no audio track", "done", audio=False),
    Case("audio_only.wav", "audio only (WAV, no video track)", "done", video=False),
    Case("audio_only.m4a", "audio only (AAC in MP4, no video track)", "done", video=False),
    Case("no_face.mp4", "no face (black frames, speech)", "done"),
    Case("uhd_4k.mp4", "4K (3840x2160, 1 s)", "done"),
    Case("rotated.mp4", "rotation (pixels turned 90 deg, display matrix turns them back)", "done"),
    Case("transposed.mp4", "rotation (pixels turned 90 deg, no matrix: a sideways face)", "done"),
    Case(UNICODE_NAME, "unicode file name", "done"),
    Case("long_1min.mp4", "a 1-minute video (a looped face, a sentence every 7.5 s)", "done"),
    Case("text_as_video.mp4", "text renamed .mp4", "failed", cause=r"cannot open|not a media file"),
    Case("zero_bytes.mp4", "zero bytes", "failed", cause=r"empty|0 bytes"),
    Case("truncated_10.flv", "truncated at 10% (FLV)", "failed", cause=r"truncated|corrupt"),
    Case("truncated_50.flv", "truncated at 50% (FLV)", "failed", cause=r"truncated|corrupt"),
    Case("truncated_50_index_at_end.mp4", "truncated at 50% (MP4, index at the end)", "failed",
         cause=r"truncated|corrupt|cannot open"),
    # the decoder accepts a file that decodes to >= 90% of its declared duration (TRUNCATION_TOLERANCE)
    Case("truncated_90.flv", "truncated at 90% (FLV)", "either"),
    Case("bit_flips_3.flv", "3 random bit flips (seeded)", "either"),
    Case("bit_flips_300.flv", "300 random bit flips (seeded)", "either"),
)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def cremad_clips() -> dict[str, Path]:
    """Emotion code (ANG, DIS, ...) -> clip; empty when the shared data is absent."""
    if not CREMAD.is_dir():
        return {}
    return {p.stem.split("_")[2]: p.resolve() for p in sorted(CREMAD.glob("*.flv"))}


def ffmpeg(*args: str | Path, input_options: tuple[str, ...] = ()) -> None:
    """Run ffmpeg quietly; a failure raises with ffmpeg's own message."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *input_options, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}")


def video_encoder() -> list[str]:
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if " libx264 " in encoders:
        return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    return ["-c:v", "mpeg4", "-q:v", "5", "-pix_fmt", "yuv420p"]


def thumbnail(path: Path, at: float = 1.0) -> np.ndarray:
    """A 48x36 grey picture of ``path`` at ``at`` s as ffmpeg displays it (auto-rotation on)."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-ss", str(at), "-i", str(path),
           "-frames:v", "1", "-vf", "scale=48:36", "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    out = subprocess.run(cmd, capture_output=True, timeout=60).stdout
    return np.frombuffer(out, np.uint8).astype(float) if len(out) == 48 * 36 else np.zeros(0)


def _rotated(transposed: Path, upright: Path, out: Path) -> str | None:
    """``transposed`` with a display matrix that turns it upright; how it was written, or None if no way works.

    ffmpeg >= 6 takes ``-display_rotation`` (an input option); ffmpeg 5 writes a ``rotate`` tag as the matrix.
    The sign conventions differ between versions, so each candidate is checked against the upright original.
    """
    reference = thumbnail(upright)
    candidates = [(("-display_rotation", angle), ()) for angle in ("90", "-90")]
    candidates += [((), ("-metadata:s:v:0", f"rotate={angle}")) for angle in ("90", "270")]
    for input_options, output_options in candidates:
        try:
            ffmpeg("-i", transposed, "-map", "0", "-c", "copy", *output_options, out, input_options=input_options)
        except RuntimeError:
            continue
        shown = thumbnail(out)
        if shown.size == reference.size and np.abs(shown - reference).mean() < 12:
            return " ".join(input_options + output_options)
    out.unlink(missing_ok=True)
    return None


def _timestamps_sane(path: Path) -> bool:
    """Every packet time within the container's declared duration (+1 s), as PyAV's demuxer reads them."""
    import av

    try:
        with av.open(str(path)) as container:
            declared = (container.duration or 0) / av.time_base
            for packet in container.demux():
                if packet.pts is not None and packet.time_base is not None \
                        and float(packet.pts * packet.time_base) > declared + 1.0:
                    return False
    except av.FFmpegError:
        return True  # not decodable at all: the extractor must say so, which is safe to try
    return True


def _flip_bits(data: bytes, n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(n):
        out[rng.randrange(len(out) // 20, len(out))] ^= 1 << rng.randrange(8)  # spare the header
    return bytes(out)


def write_bit_flips(source: Path, out: Path, n: int) -> int:
    """``source`` with ``n`` seeded bit flips; the first seed whose packet timestamps stay sane (returned).

    A flip that throws one packet's timestamp days ahead makes the decoder allocate tens of GiB (see
    ``test_bit_flip_in_a_timestamp_is_a_clear_error``, which runs that case alone under a memory limit); on a
    large machine that would stall the whole batch, so the batch gets seeds that spare the timestamps.
    """
    data = source.read_bytes()
    for seed in range(100):
        out.write_bytes(_flip_bits(data, n, seed))
        if _timestamps_sane(out):
            return seed
    raise RuntimeError(f"no seed in 0..99 spares the timestamps of {source} with {n} flips")


def write_corpus(folder: Path) -> dict[str, str]:
    """Every case of :data:`CASES` into ``folder`` (plus ``folder/../work`` for intermediates).

    Returns notes per file (how it was made); a case that could not be made is absent from ``folder`` and its note
    says why.
    """
    clips = cremad_clips()
    work = folder.parent / "work"
    folder.mkdir(parents=True)
    work.mkdir(exist_ok=True)
    venc = video_encoder()
    notes: dict[str, str] = {}
    ang = clips["ANG"]

    # a plain MP4 of one clip (index at the end, ffmpeg's default): the base of several cases
    base = work / "base.mp4"
    ffmpeg("-i", ang, "-map", "0:v:0", "-map", "0:a:0", *venc, "-c:a", "aac", base)

    shutil.copyfile(ang, folder / "data_stream_first.flv")
    notes["data_stream_first.flv"] = f"copy of {ang.name}"
    ffmpeg("-i", clips["DIS"], "-map", "0:v:0", "-an", *venc, folder / "no_audio.mp4")
    notes["no_audio.mp4"] = f"{clips['DIS'].name}, -an"
    ffmpeg("-i", clips["FEA"], "-map", "0:a:0", "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
           folder / "audio_only.wav")
    notes["audio_only.wav"] = f"{clips['FEA'].name}, -vn, 16 kHz PCM"
    ffmpeg("-i", clips["HAP"], "-map", "0:a:0", "-vn", "-c:a", "aac", folder / "audio_only.m4a")
    notes["audio_only.m4a"] = f"{clips['HAP'].name}, -vn, AAC"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=480x360:r=30", "-i", clips["NEU"], "-map", "0:v", "-map", "1:a:0",
           "-shortest", *venc, "-c:a", "aac", folder / "no_face.mp4")
    notes["no_face.mp4"] = f"black 480x360 frames + the audio of {clips['NEU'].name}"
    ffmpeg("-i", clips["SAD"], "-t", "1", "-map", "0:v:0", "-map", "0:a:0", "-vf", "scale=3840:2160", *venc,
           "-c:a", "aac", folder / "uhd_4k.mp4")
    notes["uhd_4k.mp4"] = f"first second of {clips['SAD'].name} scaled to 3840x2160"

    transposed = folder / "transposed.mp4"
    ffmpeg("-i", base, "-map", "0", "-vf", "transpose=1", *venc, "-c:a", "copy", transposed)
    notes["transposed.mp4"] = f"{ang.name} turned 90 deg clockwise (transpose=1), no display matrix"
    how = _rotated(transposed, base, folder / "rotated.mp4")
    notes["rotated.mp4"] = (f"transposed.mp4 + display matrix ({how}); ffmpeg shows it upright" if how else
                            "not made: this ffmpeg writes no display matrix with -display_rotation or a rotate tag")

    shutil.copyfile(base, folder / UNICODE_NAME)
    notes[UNICODE_NAME] = f"{ang.name} as MP4"

    # a talking face for a minute (two 30-s chunks), with speech every 7.5 s (eight clips, each padded with silence): a realistic
    # long video. The clips back to back instead are one sentence said ~55 times in a row: extracting that file took
    # 330 s here and whisper kept 36 of its ~220 words (see docs/reliability.md)
    period, voices = 7.5, [clips[k] for k in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD", "ANG", "DIS")]
    inputs = [arg for clip in voices for arg in ("-i", str(clip))]
    graph = "".join(f"[{i}:a:0]apad=whole_dur={period:g}[a{i}];" for i in range(len(voices)))
    graph += "".join(f"[a{i}]" for i in range(len(voices))) + f"concat=n={len(voices)}:v=0:a=1[a]"
    ffmpeg(*inputs, "-stream_loop", "-1", "-i", base, "-filter_complex", graph, "-map", f"{len(voices)}:v:0",
           "-map", "[a]", "-t", f"{LONG_SECONDS:g}", *venc, "-c:a", "aac", folder / "long_1min.mp4")
    notes["long_1min.mp4"] = (f"{ang.name}'s picture looped for {LONG_SECONDS:.0f} s; sound: {len(voices)} clips, "
                              f"one every {period:g} s, silence between")

    (folder / "text_as_video.mp4").write_text("This is a text file, not a video.\n" * 40)
    notes["text_as_video.mp4"] = "40 lines of text"
    (folder / "zero_bytes.mp4").write_bytes(b"")
    notes["zero_bytes.mp4"] = "0 bytes"
    data = ang.read_bytes()
    for percent in (10, 50, 90):
        (folder / f"truncated_{percent}.flv").write_bytes(data[: len(data) * percent // 100])
        notes[f"truncated_{percent}.flv"] = f"first {percent}% of the bytes of {ang.name}"
    mp4 = base.read_bytes()
    (folder / "truncated_50_index_at_end.mp4").write_bytes(mp4[: len(mp4) // 2])
    notes["truncated_50_index_at_end.mp4"] = "first 50% of the bytes of the MP4 (its moov index is at the end)"
    for n in (3, 300):
        seed = write_bit_flips(ang, folder / f"bit_flips_{n}.flv", n)
        notes[f"bit_flips_{n}.flv"] = f"{ang.name} with {n} bit flips after its first 5% (random.Random({seed}))"
    return notes
