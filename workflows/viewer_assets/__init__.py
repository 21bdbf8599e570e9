"""The viewer's stylesheet and script, inlined into every page by :mod:`workflows.viewer` (no CDN, no framework).

They live here as strings rather than ``.css``/``.js`` files so that they travel with the package without any
package-data configuration. The script reads everything from the page's own elements:

* ``video#player`` (absent when the video was not found),
* ``.timeline`` with ``data-duration`` (seconds), holding one ``button.mark`` per row and a ``.playhead``,
* ``ol.transcript`` holding one ``li.utt`` per row, in the same order as the marks,

each mark and utterance carrying ``data-start``/``data-end`` (seconds) and ``data-i`` (the row's index). Clicking a
mark or an utterance seeks the video to the row's start and plays; on ``timeupdate``/``seeked`` the rows under the
playhead get the class ``current`` (the transcript scrolls to keep it in view).
"""
from __future__ import annotations

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:12px 18px;color:#222;
 background:#fafafa;font-size:14px}
a{color:#1f5fa8}
h1{font-size:20px;margin:4px 0 6px}
.meta{color:#555;font-size:12px;margin:2px 0 8px}
.banner{background:#b00020;color:#fff;padding:10px 14px;border-radius:4px;font-weight:600;margin:6px 0 10px}
.note{background:#fff4d6;border:1px solid #e0c070;padding:6px 10px;border-radius:4px;margin:6px 0}
.layout{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.player{flex:0 1 560px;min-width:280px}
video{width:100%;background:#000;border-radius:4px;display:block}
.novideo{width:100%;aspect-ratio:4/3;background:#333;color:#eee;display:flex;align-items:center;
 justify-content:center;text-align:center;padding:16px;border-radius:4px}
.side{flex:1 1 320px;min-width:260px}
ol.transcript{list-style:none;margin:0;padding:0;max-height:420px;overflow-y:auto;border:1px solid #ddd;
 background:#fff;border-radius:4px;position:relative}
li.utt{padding:6px 8px;border-bottom:1px solid #eee;cursor:pointer;line-height:1.35}
li.utt:hover{background:#f1f5fb}
li.utt.current{background:#fff3b0;box-shadow:inset 4px 0 0 #e0a800}
.time{font-variant-numeric:tabular-nums;color:#555;font-size:12px;margin-right:4px}
.tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;color:#111;margin-right:4px;
 border:1px solid rgba(0,0,0,.15)}
.text{display:block;margin-top:2px}
.small{color:#777;font-size:11px}
.timeline-wrap{margin-top:14px}
.timeline{position:relative;height:var(--h,64px);background:#fff;border:1px solid #ccc;border-radius:3px;
 margin-left:var(--gutter,0px)}
.lane-label{position:absolute;left:calc(-1 * var(--gutter,0px));width:var(--gutter,0px);font-size:11px;
 color:#444;text-align:right;padding-right:6px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.lane-line{position:absolute;left:0;right:0;border-top:1px dashed #e3e3e3}
button.mark{position:absolute;min-width:3px;padding:0;margin:0;border:1px solid rgba(0,0,0,.35);border-radius:2px;
 cursor:pointer;overflow:hidden;font-size:10px;color:#111;white-space:nowrap}
button.mark:hover,button.mark:focus{outline:2px solid #1f5fa8;z-index:3}
button.mark.current{outline:3px solid #e0a800;z-index:2}
.val{position:absolute;left:0;right:0;height:2px;background:#111;pointer-events:none}
.sd{position:absolute;left:50%;width:2px;margin-left:-1px;background:rgba(0,0,0,.55);pointer-events:none}
.zero{position:absolute;left:0;right:0;border-top:1px solid #999}
.playhead{position:absolute;top:-4px;bottom:-4px;width:2px;background:#d00;pointer-events:none;left:0;z-index:4}
.axis{position:relative;height:18px;margin-left:var(--gutter,0px);font-size:11px;color:#555}
.tick{position:absolute;top:0;transform:translateX(-50%);white-space:nowrap}
.tick::before{content:"";position:absolute;left:50%;top:-3px;height:4px;border-left:1px solid #999}
.legend{margin:6px 0 0;font-size:12px;display:flex;flex-wrap:wrap;gap:10px;align-items:center}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid rgba(0,0,0,.3);vertical-align:-2px;
 margin-right:3px}
.gradient{display:inline-block;width:160px;height:12px;border:1px solid rgba(0,0,0,.3);vertical-align:-2px}
table.videos{border-collapse:collapse;background:#fff;margin-top:8px}
table.videos td,table.videos th{border:1px solid #ddd;padding:4px 8px;text-align:left}
table.videos td.num{text-align:right;font-variant-numeric:tabular-nums}
"""

JS = r"""
(function () {
  "use strict";
  var video = document.getElementById("player");
  var timeline = document.querySelector(".timeline");
  var list = document.querySelector("ol.transcript");
  var marks = Array.prototype.slice.call(document.querySelectorAll(".timeline .mark"));
  var utts = Array.prototype.slice.call(document.querySelectorAll("ol.transcript .utt"));
  var head = document.querySelector(".timeline .playhead");
  var duration = timeline ? parseFloat(timeline.getAttribute("data-duration")) || 0 : 0;
  var pinned = -1;  // the row last clicked: highlighted from its very start, whatever the float rounding
  var shown = "";

  function range(el) {
    return [parseFloat(el.getAttribute("data-start")), parseFloat(el.getAttribute("data-end"))];
  }
  var rows = marks.map(range);

  function keepInView(item) {
    if (!list || !item) { return; }
    var top = item.offsetTop, bottom = top + item.offsetHeight;
    if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  function highlight(t) {
    var current = [];
    rows.forEach(function (r, i) {
      var inside = t >= r[0] && t < Math.max(r[1], r[0] + 0.001);
      if (i === pinned && t >= r[0] - 0.05 && t < Math.max(r[1], r[0] + 0.05)) { inside = true; }
      if (inside) { current.push(i); }
    });
    var key = current.join(",");
    if (head && duration > 0) { head.style.left = Math.min(100, Math.max(0, 100 * t / duration)) + "%"; }
    if (key === shown) { return; }
    shown = key;
    marks.forEach(function (m, i) { m.classList.toggle("current", current.indexOf(i) >= 0); });
    utts.forEach(function (u, i) { u.classList.toggle("current", current.indexOf(i) >= 0); });
    if (current.length) { keepInView(utts[current[0]]); }
  }

  function seek(i) {
    var start = rows[i][0];
    pinned = i;
    if (video) {
      video.currentTime = start;
      var playing = video.play();
      if (playing && playing.catch) { playing.catch(function () { /* autoplay refused: stay paused */ }); }
    }
    highlight(start);
  }

  marks.forEach(function (m, i) { m.addEventListener("click", function () { seek(i); }); });
  utts.forEach(function (u, i) {
    u.addEventListener("click", function () { seek(i); });
    u.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); seek(i); }
    });
  });
  if (video) {
    var now = function () {
      if (pinned >= 0 && (video.currentTime < rows[pinned][0] - 0.05 || video.currentTime >= rows[pinned][1])) {
        pinned = -1;
      }
      highlight(video.currentTime);
    };
    video.addEventListener("timeupdate", now);
    video.addEventListener("seeked", now);
    video.addEventListener("error", function () {
      var note = document.getElementById("video-error");
      if (note) { note.hidden = false; }
    });
  }
  highlight(0);
})();
"""
