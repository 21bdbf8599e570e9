"""Redraw the README's screenshots (viewer.png, report.png) from a real run, in Debian's chromium.

The footage is the six shared CREMA-D clips joined with 1 s after each (WebM, which Chromium plays; the FLV
originals it does not). ``mcr predict`` annotates it with RUN, ``mcr view`` draws its page and ``mcr report RUN``
the report; Playwright drives /usr/bin/chromium (no browser download) to photograph both.

  python docs/images/screenshots.py --run demo-out/run      # after `make demo`
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CREMAD = ROOT.parent / "shared" / "data" / "cremad"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


def joined_video(out: Path, pause: float = 1.0) -> Path:
    """The CREMA-D clips back to back, ``pause`` s of the last frame and silence after each: WebM (VP9 + Opus)."""
    clips = sorted(CREMAD.glob("*.flv"))
    if len(clips) < 6:
        raise FileNotFoundError(f"{CREMAD}: the shared CREMA-D clips are missing")
    inputs = [arg for clip in clips for arg in ("-i", str(clip))]
    graph = "".join(f"[{i}:v:0]fps=15,scale=480:360,setsar=1,tpad=stop_mode=clone:stop_duration={pause}[v{i}];"
                    f"[{i}:a:0]aresample=48000,apad=pad_dur={pause}[a{i}];" for i in range(len(clips)))
    graph += "".join(f"[v{i}][a{i}]" for i in range(len(clips))) + f"concat=n={len(clips)}:v=1:a=1[v][a]"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", graph, "-map", "[v]",
                    "-map", "[a]", "-c:v", "libvpx-vp9", "-b:v", "400k", "-c:a", "libopus", str(out)], check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=ROOT / "demo-out" / "run", help="a trained run (mcr train --out)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="where the PNGs go")
    args = p.parse_args(argv)
    args.run, args.out = args.run.resolve(), args.out.resolve()

    from playwright.sync_api import sync_playwright

    from workflows.cli import main as mcr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "footage").mkdir()
        video = joined_video(tmp / "footage" / "cremad_joined.webm")
        table = tmp / "annotations.parquet"
        assert mcr(["predict", str(video), "--model", str(args.run), "--out", str(table), "--workers", "2",
                    "--no-progress"]) == 0
        viewer = args.run / "viewer"
        shutil.rmtree(viewer, ignore_errors=True)
        assert mcr(["view", str(table), "--out", str(viewer)]) == 0
        assert mcr(["report", str(args.run)]) == 0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto((viewer / "cremad_joined" / "index.html").as_uri())
            marks = page.locator("[data-start]")
            marks.nth(min(2, marks.count() - 1)).click()  # seek to the third utterance
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / "viewer.png"))
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.goto((args.run / "report" / "index.html").as_uri())
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "report.png"))
            browser.close()
    print(f"wrote {args.out / 'viewer.png'} and {args.out / 'report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
