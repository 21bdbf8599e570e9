from pathlib import Path

from workflows.stages import Stage, StageRunner


def _pipeline(tmp_path: Path, calls: list[str], *, option: int = 1):
    src = tmp_path / "input.txt"
    a_out, b_out = tmp_path / "a.txt", tmp_path / "b.txt"

    def run_a():
        calls.append("a")
        a_out.write_text(src.read_text().upper())

    def run_b():
        calls.append("b")
        b_out.write_text(a_out.read_text() * 2)

    return [Stage("a", {"option": option}, run_a, input_files=(str(src),), outputs=(str(a_out),)),
            Stage("b", {}, run_b, after=("a",), outputs=(str(b_out),))]


def test_rerun_skips_unchanged_and_reruns_downstream_of_a_change(tmp_path):
    (tmp_path / "input.txt").write_text("x")
    calls: list[str] = []
    assert StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls)) == {"a": "ran", "b": "ran"}
    assert StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls)) == {"a": "skipped", "b": "skipped"}
    assert calls == ["a", "b"]

    # an option of the first stage changed: both rerun, since b reads a's output
    StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls, option=2))
    assert calls == ["a", "b", "a", "b"]

    # the input file changed
    (tmp_path / "input.txt").write_text("yy")
    StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls, option=2))
    assert (tmp_path / "b.txt").read_text() == "YYYY"


def test_missing_output_or_force_reruns(tmp_path):
    (tmp_path / "input.txt").write_text("x")
    calls: list[str] = []
    StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls))
    (tmp_path / "b.txt").unlink()
    assert StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls)) == {"a": "skipped", "b": "ran"}
    StageRunner(tmp_path, force=True, log=lambda _: None).run(_pipeline(tmp_path, calls))
    assert calls == ["a", "b", "b", "a", "b"]


def test_a_killed_stage_is_not_recorded(tmp_path):
    (tmp_path / "input.txt").write_text("x")
    calls: list[str] = []
    stages = _pipeline(tmp_path, calls)

    def crash():
        raise RuntimeError("killed")

    stages[1].run = crash
    try:
        StageRunner(tmp_path, log=lambda _: None).run(stages)
    except RuntimeError:
        pass
    assert StageRunner(tmp_path, log=lambda _: None).run(_pipeline(tmp_path, calls)) == {"a": "skipped", "b": "ran"}
