"""The HTML of ``mcr report``: Jinja2 templates with autoescape, the one place where the report's values become HTML.

Everything on the page may come from a file someone else wrote (the run directory's name, its config, a checkpoint's
metadata, metrics.json, the data's class names, a sample's id and words), so no value is put into HTML by hand: each
reaches the page through a template, which escapes it (``<``, ``>``, ``&``, both quotes), and the link to the viewer
is URL-quoted too (a folder named ``javascript:...`` stays a relative path).
"""
from __future__ import annotations

from urllib.parse import quote

import jinja2
from markupsafe import Markup

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

_PER_CLASS = _ENV.from_string(
    "<table class='per-class'><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
    "<th>predicted</th></tr>"
    "{% for label, cells in rows %}<tr><th>{{ label }}</th>{% for c in cells %}<td>{{ c }}</td>{% endfor %}</tr>"
    "{% endfor %}</table>")

_METRICS = _ENV.from_string(
    "<table><tr><th></th>{% for n in names %}<th>{{ n }}</th>{% endfor %}</tr>"
    "{% for split, cells in rows %}<tr><th>{{ split }}</th>{% for c in cells %}<td>{{ c }}</td>{% endfor %}</tr>"
    "{% endfor %}</table>")

_PAGE = _ENV.from_string("""\
<!doctype html><html><head><meta charset='utf-8'>
<title>MCR run {{ run_name }}</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 16px}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}.note{color:#666;font-size:90%}\
</style></head><body>
<h1>Run {{ run_path }}</h1>
{% if placeholder %}
<p style='background:#b00020;color:#fff;padding:8px;font-weight:bold' role='alert'>&#9888; Trained on PLACEHOLDER \
labels (random numbers, e.g. `make demo`): these metrics and plots show that the pipeline runs, not how well anything \
is recognised.</p>
{% endif %}
<p>{{ arch }}, task {{ task }}, preset {{ preset }}, {{ seeds }} seed(s); best validation epoch {{ best_epoch }} of \
{{ chosen }}; data {{ source }}.</p>
{% if classes %}
<p>Classes: {{ classes | join(', ') }}.</p>
{% endif %}
{% if viewer %}
<p><a class='viewer' href='{{ viewer }}'>Predictions viewer</a> (videos with their predicted timeline and transcript)\
</p>
{% endif %}
{% if unfinished %}
<p><b>Training has not finished</b> (no metrics.json yet): the report shows the epochs so far. Rerun `mcr train` \
with the same options to resume.</p>
{% endif %}
<h2>Metrics</h2>{{ metrics }}
{% if per_class %}
<h2>Per-class metrics ({{ per_class.split }}, per {{ per_class.what }})</h2>{{ per_class.table }}\
<p class='note'>support: true samples of the class; predicted: samples predicted as it.</p>
{% endif %}
{% if sample %}
<p>Attention sample: <code>{{ sample.id }}</code>, label {{ sample.label }}, real steps {{ sample.lengths }}\
{% if sample.words %}: &ldquo;{{ sample.words }}&rdquo;{% endif %}.</p>
{% if sample.note %}<p class='note'>{{ sample.note }}</p>{% endif %}
{% endif %}
{% for name, caption in figures %}
<h2>{{ caption }}</h2><img src='{{ name }}' alt='{{ caption }}'>
{% endfor %}
</body></html>""")


def number(v) -> str:
    """A metric as the tables show it: 4 decimals, "–" when undefined, anything else as text (escaped later)."""
    if v is None:
        return "–"
    return f"{v:.4f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def per_class_html(rows: list[tuple[str, dict]]) -> str:
    """The per-class table: ``(class name, per-class stats of workflows.report.per_class)`` per row."""
    return _PER_CLASS.render(rows=[(label, [number(st["precision"]), number(st["recall"]), number(st["f1"]),
                                            st["support"], st["predicted"]]) for label, st in rows])


def metrics_html(metrics: dict) -> str:
    """One row per split (valid, test), one column per metric (mean ± std for a multi-seed summary)."""
    rows, names = [], []
    for split in ("valid", "test"):
        values = metrics.get(split)
        if not isinstance(values, dict):
            continue
        names = names or list(values)
        cells = [f"{number(v.get('mean'))} ± {number(v.get('std'))}" if isinstance(v, dict) else number(v)
                 for v in map(values.get, names)]
        rows.append((split, cells))
    return _METRICS.render(names=names, rows=rows)


def report_html(*, viewer: str | None, metrics: dict, per_class: dict | None, **values) -> str:
    """The page. viewer: the relative link to the viewer's index (None: no link); metrics: as in metrics.json;
    per_class: ``{"split", "what", "rows"}`` (rows as :func:`per_class_html` takes them) or None; values: the
    template's other fields (run_name, run_path, placeholder, arch, task, preset, seeds, best_epoch, chosen, source,
    classes, unfinished, sample: ``{"id", "label", "lengths", "words", "note"}`` or None, figures: ``[(file, caption)]``)."""
    if per_class is not None:
        per_class = {**per_class, "table": Markup(per_class_html(per_class["rows"]))}
    return _PAGE.render(viewer=quote(viewer) if viewer else None, per_class=per_class,
                        metrics=Markup(metrics_html(metrics)), **values)
