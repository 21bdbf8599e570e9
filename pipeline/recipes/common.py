"""What the recipes share: finding media files by name, ids by the folder scan's rule, speaker-independent splits."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from pipeline.corpus import VIDEO_EXTENSIONS, video_id_from_path


def media_files(root: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Files under ``root`` (recursively) with one of ``extensions``, sorted; hidden files and folders skipped
    (archives unpacked on macOS carry ``._name`` companions)."""
    wanted = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def by_stem(files: Iterable[Path], prefer: str | None = None) -> dict[str, Path]:
    """File stem -> file; when several share a stem, the one with ``prefer`` among its folders, else the first."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in files:
        groups[p.stem].append(p)
    chosen = {}
    for stem, paths in groups.items():
        preferred = [p for p in paths if prefer and prefer in p.parent.parts]
        chosen[stem] = (preferred or paths)[0]
    return chosen


def id_of(file_name: str | Path) -> str:
    """A video id from a file name, by the folder scan's rule (``_dI--eQ6qVU.mp4`` -> ``dI--eQ6qVU``)."""
    return video_id_from_path(Path(file_name).name)


def row(path: Path | str, segment_id: str, *, video_id: str | None = None, start: float | None = None,
        end: float | None = None, split: str | None = None, **labels: Any) -> dict[str, Any]:
    """One manifest row; the video id defaults to the file name's."""
    return {"path": str(Path(path).resolve()), "video_id": video_id or id_of(path), "segment_id": segment_id,
            "start": start, "end": end, "split": split, **labels}


def speaker_splits(speakers: Iterable[Any], valid: float = 0.1, test: float = 0.1) -> dict[Any, str]:
    """Speaker -> ``train``/``valid``/``test``, deterministic and speaker-independent: speakers in sorted order,
    the last ``test`` share to test, the ``valid`` share before them to valid (at least one each), the rest to
    train. Fewer than three speakers make no split (empty mapping)."""
    ordered = sorted(set(speakers))
    n = len(ordered)
    if n < 3:
        return {}
    n_test, n_valid = max(1, round(test * n)), max(1, round(valid * n))
    return {s: "test" if i >= n - n_test else "valid" if i >= n - n_test - n_valid else "train"
            for i, s in enumerate(ordered)}


def read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV's rows as dicts, header names stripped; tolerant of stray bytes (some releases are not UTF-8)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]


def find_one(root: Path, name: str) -> Path | None:
    """The first file called ``name`` under ``root`` (the shallowest, then sorted), or None."""
    found = sorted((p for p in root.rglob(name) if p.is_file()), key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None
