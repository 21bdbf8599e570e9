"""The viewer's HTML: a page per video and the index, from the rows :mod:`workflows.viewer` described.

Every text that comes from the table or its metadata (transcripts, ids, labels, paths) goes through :func:`esc`;
the rows' JSON inside ``<script>`` goes through :func:`script_json`.
"""
from __future__ import annotations

import html
import json
import math
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from workflows.viewer_assets import CSS, JS

LANE_PX, GUTTER_PX, REGRESSION_PX = 20, 92, 96
PLACEHOLDER_WARNING = ("Placeholder labels: the model behind these predictions was trained without real emotion "
                       "labels (placeholder_labels in the table's metadata). The labels and scores below show that "
                       "the pipeline runs; they say nothing about how anyone feels.")


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def script_json(obj) -> str:
    """JSON that cannot end or confuse its ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def clock(t: float) -> str:
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _head(title: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<link rel='icon' href='data:,'>"  # no favicon request (a 404 would be a console error)
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>")


def banner(meta: dict) -> str:
    if meta.get("placeholder_labels") not in (True, 1, "true", "True", "yes"):
        return ""
    return f"<div class='banner' role='alert' id='placeholder-warning'>&#9888; {esc(PLACEHOLDER_WARNING)}</div>"


def _extractors(value) -> str:
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, dict):
                v = " ".join(str(v[key]) for key in ("name", "extractor", "version") if v.get(key)) or json.dumps(v)
            parts.append(f"{k}: {v}")
        return ", ".join(parts)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def meta_line(meta: dict, task: str, table: Path) -> str:
    parts = [f"table {table.name}", f"task {task}"]
    if meta.get("run"):
        parts.append(f"model {meta['run']}")
    if meta.get("label_names") and task != "regression":
        parts.append("classes " + ", ".join(map(str, meta["label_names"])))
    if meta.get("scale") is not None and task == "regression":
        parts.append(f"scale {meta['scale']}")
    if meta.get("extractors"):
        parts.append("extractors " + _extractors(meta["extractors"]))
    if meta.get("mcr_version"):
        parts.append(f"mcr-emotion {meta['mcr_version']}")
    return f"<p class='meta'>{esc(' · '.join(parts))}</p>"


def _ticks(duration: float) -> str:
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
                 if duration / s <= 12), 7200)
    marks, t = [], 0.0
    while t <= duration + 1e-9:
        marks.append(f"<span class='tick' style='left:{_num(100 * t / duration)}%'>{esc(clock(t)[:-2])}</span>")
        t += step
    return f"<div class='axis' aria-hidden='true'>{''.join(marks)}</div>"


def _legend(task: str, names: list[str], colours: dict[str, str], scale: tuple[float, float],
            gradient: list[str]) -> str:
    if task == "regression":
        lo, hi = scale
        stops = ", ".join(gradient)
        return (f"<div class='legend'><span>{_num(lo)} negative</span><span class='gradient' "
                f"style='background:linear-gradient(to right, {stops})'></span><span>{_num(hi)} positive</span>"
                "<span class='small'>black line: predicted score; vertical bar: ± its sd; paler: less certain"
                "</span></div>")
    items = "".join(f"<span><span class='swatch' style='background:{colours[n]}'></span>{esc(n)}</span>"
                    for n in names)
    return f"<div class='legend'>{items}</div>"


def _timeline(rows: list[dict], duration: float, task: str, names: list[str], scale: tuple[float, float]) -> str:
    lanes = {n: i for i, n in enumerate(names)}
    if task != "regression":
        for r in rows:
            lanes.setdefault(r["label"], len(lanes))
    height = REGRESSION_PX if task == "regression" else LANE_PX * max(1, len(lanes)) + 4
    gutter = 0 if task == "regression" else GUTTER_PX
    lo, hi = scale
    parts = []
    if task == "regression":
        if lo < 0 < hi:
            parts.append(f"<div class='zero' style='top:{_num(100 * hi / (hi - lo))}%'></div>")
    else:
        for name, k in lanes.items():
            top = 2 + k * LANE_PX
            parts.append(f"<div class='lane-label' style='top:{top}px;height:{LANE_PX}px;line-height:{LANE_PX}px'>"
                         f"{esc(name)}</div><div class='lane-line' style='top:{top + LANE_PX // 2}px'></div>")
    for i, r in enumerate(rows):
        left, width = 100 * r["start"] / duration, 100 * (r["end"] - r["start"]) / duration
        style = f"left:{_num(left)}%;width:{_num(width)}%;background:{r['colour']};opacity:{r['opacity']}"
        inner = ""
        if task == "regression":
            style += ";top:0;height:100%"
            if r["value"] is not None:
                y = 100 * (hi - min(hi, max(lo, r["value"]))) / (hi - lo)
                inner = f"<span class='val' style='top:calc({_num(y)}% - 1px)'></span>"
                if r["sd"]:
                    top = 100 * (hi - min(hi, r["value"] + r["sd"])) / (hi - lo)
                    bottom = 100 * (hi - max(lo, r["value"] - r["sd"])) / (hi - lo)
                    inner += f"<span class='sd' style='top:{_num(top)}%;height:{_num(max(bottom - top, 0))}%'></span>"
        else:
            style += f";top:{2 + lanes[r['label']] * LANE_PX + 2}px;height:{LANE_PX - 4}px"
        label = f"{r['title']}: {r['transcript']}" if r["transcript"] else r["title"]
        parts.append(f"<button type='button' class='mark' data-i='{i}' data-start='{r['start']!r}' "
                     f"data-end='{r['end']!r}' data-label='{esc(r['label'])}' title='{esc(r['title'])}' "
                     f"aria-label='{esc(label)}' style='{style}'>{inner}</button>")
    parts.append("<div class='playhead'></div>")
    return (f"<div class='timeline' data-duration='{duration!r}' style='--h:{height}px;--gutter:{gutter}px'>"
            f"{''.join(parts)}</div>" + _ticks(duration).replace("class='axis'",
                                                                  f"class='axis' style='--gutter:{gutter}px'"))


def _transcript(rows: list[dict]) -> str:
    items = []
    for i, r in enumerate(rows):
        notes = f"<span class='small'>{esc(' · '.join(r['notes']))}</span>" if r["notes"] else ""
        items.append(
            f"<li class='utt' id='utt-{i}' tabindex='0' data-i='{i}' data-start='{r['start']!r}' "
            f"data-end='{r['end']!r}'><span class='time'>{clock(r['start'])}–{clock(r['end'])}</span>"
            f"<span class='tag' style='background:{r['colour']}'>{esc(r['tag'])}</span>{notes}"
            f"<span class='text'>{esc(r['transcript']) or '<i>(no words)</i>'}</span></li>")
    return f"<ol class='transcript' aria-label='transcript'>{''.join(items)}</ol>"


def video_page(entry: dict, *, task: str, names: list[str], meta: dict, track: str, table: Path,
               colours: dict[str, str], scale: tuple[float, float], gradient: list[str]) -> str:
    """The page of one video: player with subtitles, transcript, timeline, legend.

    colours: each class's colour; scale: the sentiment scale (low, high); gradient: its colours, low to high.
    """
    rows, vid = entry["described"], entry["video_id"]
    if entry["media"]:
        player = (f"<video id='player' controls preload='metadata' src='{esc(quote(entry['media']))}'>"
                  f"<track kind='subtitles' srclang='en' label='Predictions' default src='{track}'></video>"
                  f"<p id='video-error' class='note' hidden>This browser cannot play {esc(entry['media'])} (from "
                  f"{esc(entry['source'])}). Convert it, e.g. <code>ffmpeg -i SOURCE -c:v libvpx-vp9 -c:a libopus "
                  "video.webm</code>, and rerun <code>mcr view</code> with that file.</p>")
        if not entry["playable"]:
            player += (f"<p class='note'>{esc(Path(entry['source']).suffix)} files often do not play in browsers; "
                       "if the video stays black, convert it to MP4 or WebM.</p>")
        source = (f"<p class='small'>source {esc(entry['source'])} · <a href='subtitles.vtt' download>"
                  "subtitles.vtt</a></p>")
    else:
        player = ("<div class='novideo'>Video not found: the table has no video_path for it and no file "
                  f"{esc(vid)}.* was found. Rerun <code>mcr view</code> with <code>--videos DIR</code>.</div>")
        source = "<p class='small'><a href='subtitles.vtt' download>subtitles.vtt</a></p>"
    if entry.get("refused"):  # named by the table, but not video or audio: never copied into the folder
        source += (f"<p class='note refused'>Not copied (not a video or audio file): "
                   f"{esc(', '.join(entry['refused']))}</p>")
    data = [{k: r[k] for k in ("segment_id", "start", "end", "label", "value", "sd", "transcript")} for r in rows]
    return "".join([
        _head(f"{vid} – emotion viewer"), "<p><a href='../index.html'>&larr; all videos</a></p>",
        f"<h1>{esc(vid)}</h1>", meta_line(meta, task, table),
        f"<p class='meta'>{len(rows)} utterances · {esc(clock(entry['duration']))}</p>", banner(meta),
        "<div class='layout'><div class='player'>", player, source, "</div>",
        "<div class='side'><h2>Transcript</h2>", _transcript(rows), "</div></div>",
        "<section class='timeline-wrap'><h2>Timeline</h2>",
        _timeline(rows, entry["duration"], task, names, scale),
        _legend(task, names, colours, scale, gradient), "</section>",
        f"<script type='application/json' id='rows-data'>{script_json(data)}</script>",
        f"<script>{JS}</script></body></html>"])


def _summary(rows: list[dict], task: str) -> str:
    if task == "regression":
        values = [r["value"] for r in rows if r["value"] is not None]
        counts = Counter(r["label"] for r in rows)
        mean = f"mean {sum(values) / len(values):+.2f}; " if values else ""
        return esc(mean + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    counts = Counter((r["label"], r["colour"]) for r in rows)
    return " ".join(f"<span><span class='swatch' style='background:{c}'></span>{esc(k)} {n}</span>"
                    for (k, c), n in counts.most_common())


def index_page(entries: list[dict], *, task: str, names: list[str], meta: dict, table: Path,
               failed: list[dict] = ()) -> str:
    """One row per video: link to its page, utterances, duration, the predictions' distribution, the source; and
    one line per file that failed (``video_id``, ``reason``)."""
    rows = []
    for e in entries:
        source = esc(e["source"]) if e["source"] else "<b>not found</b> (pass --videos DIR)"
        rows.append(f"<tr><td><a class='video-link' href='{esc(quote(e['folder']))}/index.html'>{esc(e['video_id'])}"
                    f"</a></td><td class='num'>{e['rows']}</td><td class='num'>{esc(clock(e['duration']))}</td>"
                    f"<td>{_summary(e['described'], task)}</td><td class='small'>{source}</td></tr>")
    total = sum(e["rows"] for e in entries)
    return "".join([
        _head(f"{table.name} – emotion viewer"), f"<h1>Predictions of {esc(table.name)}</h1>",
        meta_line(meta, task, table), banner(meta),
        f"<p>{len(entries)} videos, {total} utterances. Open a video to play it with its predictions.</p>",
        (f"<p class='failed'>{len(failed)} file{'' if len(failed) == 1 else 's'} failed:</p><ul class='failed'>"
         + "".join(f"<li><b>{esc(f['video_id'])}</b>: {esc(f['reason'])}</li>" for f in failed) + "</ul>"
         if failed else ""),
        "<table class='videos'><thead><tr><th>video</th><th>utterances</th><th>duration</th><th>predictions</th>"
        f"<th>source</th></tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"])
