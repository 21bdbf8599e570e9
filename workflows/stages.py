"""Skip pipeline stages whose inputs have not changed.

A stage's fingerprint hashes its own options, the fingerprints of the stages it reads from and the identity
of the input files it names (content of small files, size and mtime of large ones). ``<workdir>/stages.json``
records the fingerprint of each stage that finished; a stage whose fingerprint matches the record, and whose
outputs still exist, is skipped. The record is written atomically after each stage, so a killed run reruns only
the stage it was in and those after it.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.files import read_json, sha256_file, sha256_text, write_json

SMALL_FILE = 1 << 20  # files up to this size are identified by content, larger ones by size and mtime


def file_identity(paths: Iterable[str | Path]) -> list[list]:
    """What identifies the files under ``paths`` (folders walked): the content hash of small files (manifests,
    configs: rewriting them unchanged changes nothing), size and mtime of large ones (videos)."""
    out = []
    for root in paths:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in files:
            if not p.exists():
                out.append([str(p), None])
                continue
            st = p.stat()
            if st.st_size <= SMALL_FILE:
                out.append([str(p), sha256_file(p)])
            else:
                out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


@dataclass
class Stage:
    """One step of the pipeline: ``run()`` does the work; ``outputs`` must exist afterwards."""

    name: str
    options: dict | Callable[[], dict]  # a callable is evaluated when the stage's turn comes (after upstream ran)
    run: Callable[[], object]
    after: tuple[str, ...] = ()
    input_files: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    always: bool = False  # stages that are idempotent by themselves (extraction) run every time
    fingerprint: str = field(default="", init=False)


class StageRunner:
    """Runs stages in order, skipping those that are up to date; ``log`` receives one line per stage."""

    def __init__(self, workdir: str | Path, *, force: bool = False, log: Callable[[str], None] = print):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.workdir / "stages.json"
        self.state: dict = read_json(self.state_path, stage="run", hint="delete it to rerun every stage") \
            if self.state_path.exists() else {}
        if not isinstance(self.state, dict):
            raise ValueError(f"{self.state_path}: [run] not a record of stages; delete it to rerun every stage")
        self.force = force
        self.log = log
        self.fingerprints: dict[str, str] = {}

    def _fingerprint(self, stage: Stage) -> str:
        missing = [a for a in stage.after if a not in self.fingerprints]
        if missing:
            raise ValueError(f"stage {stage.name!r} runs after {missing}, which come later in the list")
        blob = json.dumps({
            "options": stage.options() if callable(stage.options) else stage.options,
            "after": {a: self.fingerprints[a] for a in stage.after},
            "files": file_identity(stage.input_files),
        }, sort_keys=True, default=str)
        return sha256_text(blob)[:16]

    def is_current(self, stage: Stage) -> bool:
        recorded = self.state.get(stage.name, {}).get("fingerprint")
        return (not self.force and not stage.always and recorded == stage.fingerprint
                and all(Path(o).exists() for o in stage.outputs))

    def run(self, stages: list[Stage]) -> dict[str, str]:
        """Run ``stages`` in order; returns {stage name: "ran" | "skipped"}."""
        result = {}
        for stage in stages:
            stage.fingerprint = self._fingerprint(stage)
            self.fingerprints[stage.name] = stage.fingerprint
            if self.is_current(stage):
                self.log(f"[{stage.name}] up to date, skipped")
                result[stage.name] = "skipped"
                continue
            self.log(f"[{stage.name}] running")
            t0 = time.perf_counter()
            stage.run()
            missing = [o for o in stage.outputs if not Path(o).exists()]
            if missing:
                raise RuntimeError(f"[{stage.name}] the stage finished without writing {missing}")
            self.state[stage.name] = {"fingerprint": stage.fingerprint, "seconds": round(time.perf_counter() - t0, 2),
                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self._save()
            result[stage.name] = "ran"
        return result

    def _save(self) -> None:
        write_json(self.state_path, self.state)
