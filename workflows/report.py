"""PNG plots and a one-page HTML report of a trained run (matplotlib, Agg backend: no display needed).

``RUN/report/``: ``curves.png`` (training and validation loss per epoch, and the validation metric), 
``confusion.png`` (class names on the axes), for one sample ``attention_layer<i>.png`` (CMU and SCU attention maps
per target modality, as the paper's Figs. 3-4, their axes labelled with the sample's words and the seconds of its
frames when the data is a feature store, else with step indices) and ``weights.png`` (CMU's selective weights alpha
per source step and SCU's gamma of each layer, as Fig. 5), and ``index.html`` with the metrics, a per-class table
(precision, recall, F1 and support from the confusion matrix) and a link to the predictions viewer when there is one.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipeline.arrays import IEMOCAP_EMOTIONS, MODALITIES, ArraySplit, normalize  # noqa: E402
from pipeline.files import atomic_write  # noqa: E402
from workflows.inference import batch_inputs  # noqa: E402
from workflows.runs import load_run, run_dirs  # noqa: E402
from workflows.viewer import viewer_href  # noqa: E402

NAMES = {"l": "language", "v": "visual", "a": "acoustic"}  # the model's l/v/a in the store's words
SENTIMENT_NAMES = {-3: "strongly negative", -2: "negative", -1: "weakly negative", 0: "neutral",
                   1: "weakly positive", 2: "positive", 3: "strongly positive"}  # MOSI's Acc7 classes
CURVE_METRIC = {"regression": ("val_mae", "validation MAE"), "iemocap": ("val_mean_acc", "validation mean accuracy"),
                "classification": ("val_acc", "validation accuracy")}


def plot_curves(histories: dict[str, list[dict]], task: str, path: Path) -> None:
    """Train / validation loss and the task's validation metric per epoch, one line per seed."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    key, label = CURVE_METRIC[task]
    for i, (name, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        color = f"C{i}"
        ax_loss.plot(epochs, [h["train_loss"] for h in history], color=color, ls="--", label=f"{name} train")
        ax_loss.plot(epochs, [h["val_loss"] for h in history], color=color, label=f"{name} valid")
        values = [np.nan if h.get(key) is None else h[key] for h in history]
        ax_metric.plot(epochs, values, color=color, label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training and validation loss")
    ax_metric.set(xlabel="epoch", ylabel=label, title=label)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def class_names(name: str, classes: list, names: list[str] | None = None) -> list[str]:
    """Readable names of confusion matrix ``name``'s classes: Acc7's sentiment words, "<emotion>"/"not <emotion>",
    or the run's class names (``names``) for class indices."""
    if name == "acc7":
        return [f"{int(c):+d} {SENTIMENT_NAMES.get(int(c), '')}".strip() if int(c) else "0 neutral" for c in classes]
    if name in IEMOCAP_EMOTIONS and list(classes) == [0, 1]:
        return [f"not {name}", name]
    return [str(names[c]) if names and isinstance(c, int) and 0 <= c < len(names) else str(c) for c in classes]


def per_class(matrix) -> list[dict]:
    """Precision, recall, F1 (None when undefined), support (true count) and predicted count of each class."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = []
    for tp, support, predicted in zip(np.diag(m), m.sum(1), m.sum(0)):
        p, r = (tp / predicted if predicted else None), (tp / support if support else None)
        f1 = 2 * tp / (support + predicted) if support + predicted else None  # = 2pr / (p + r) where defined
        rows.append({"precision": p, "recall": r, "f1": f1, "support": int(support), "predicted": int(predicted)})
    return rows


def per_class_table(confusion: dict, names: list[str] | None = None) -> str:
    """HTML: one row per class (for IEMOCAP's one-vs-rest matrices, one row per emotion, its "present" class)."""
    head, body = "<tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>predicted</th></tr>", []
    binary = len(confusion) > 1 and all(list(cm["classes"]) == [0, 1] for cm in confusion.values())
    for name, cm in confusion.items():
        stats, labels = per_class(cm["matrix"]), class_names(name, cm["classes"], names)
        pairs = [(name, stats[1])] if binary else list(zip(labels, stats))
        for label, st in pairs:
            body.append(f"<tr><th>{html.escape(label)}</th>" + "".join(
                f"<td>{_num(st[k])}</td>" for k in ("precision", "recall", "f1"))
                        + f"<td>{st['support']}</td><td>{st['predicted']}</td></tr>")
    return f"<table class='per-class'>{head}{''.join(body)}</table>"


def plot_confusion(confusion: dict, path: Path, title: str, names: list[str] | None = None) -> None:
    """Each confusion matrix of ``pipeline.metrics.confusion`` as an annotated heatmap (rows: truth), class names on
    the axes (``names``: the run's class names for a classification's indices)."""
    widths = [max(4.2, 1.6 + 0.62 * len(cm["classes"])) for cm in confusion.values()]  # room for the names
    fig, axes = plt.subplots(1, len(confusion), figsize=(sum(widths), max(widths) * 0.95), squeeze=False)
    for ax, (name, cm) in zip(axes[0], confusion.items()):
        matrix = np.asarray(cm["matrix"])
        ax.imshow(matrix, cmap="Blues")
        ticks = range(len(cm["classes"]))
        labels = class_names(name, cm["classes"], names)
        long = max(map(len, labels)) > 6
        ax.set_xticks(ticks, labels, rotation=40 if long else 0, ha="right" if long else "center", fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > matrix.max() / 2 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_attention(model, split: ArraySplit, index: int, normalizer: dict | None = None
                     ) -> tuple[dict | None, dict, dict]:
    """The model's attention dict for sample ``index`` (or None when the model returns none), its real lengths and
    ``{"l"/"v"/"a": (indices of the real steps, the input's padded length)}`` (padding may lead, as in MulT's files)."""
    if normalizer is not None:
        split = normalize(split.subset([index]), normalizer)
        index = 0
    inputs, _ = batch_inputs(split, np.array([index]), next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        out = model(*inputs, return_attention=True)
    masks = [mask[0].cpu().numpy() for mask in inputs[3:]]
    lengths = {m: int(mask.sum()) for m, mask in zip("lva", masks)}
    real = {m: (np.flatnonzero(mask), len(mask)) for m, mask in zip("lva", masks)}
    return out.attention, lengths, real


def step_axes(split: ArraySplit, index: int, source, lengths: dict, aligned: bool = False) -> dict:
    """How to label each modality's real steps, ``{"l"/"v"/"a": (labels, unit)}``: from a feature store (``source``)
    the segment's words (language; all modalities of a word-aligned run) and each acoustic/visual frame's video time
    (unit "s"); otherwise, or when the store disagrees with the sample's lengths, step indices (unit "step")."""
    axes = {m: ([str(k) for k in range(n)], "step") for m, n in lengths.items()}
    try:
        if not source or not Path(source, "segments.parquet").is_file():
            return axes
        from pipeline.store import FeatureStore

        store = FeatureStore(source)
        segments = store.segments()
        match = segments[segments["segment_id"].astype(str) == str(split.ids[index])]
        if split.video_ids is not None:
            match = match[match["video_id"] == split.video_ids[index]]
        if len(match) != 1:
            return axes
        seg = match.iloc[0]
        start, end = float(seg["start"]), np.inf if pd.isna(seg["end"]) else float(seg["end"])
        words = store.read_stream("language", [seg["video_id"]], columns=["word", "start", "end"]).to_pydict()
        mid = (np.asarray(words["start"], float) + np.asarray(words["end"], float)) / 2
        seg_words = [str(w).strip() for w, t in zip(words["word"], mid) if start <= t < end]
        for m, name in zip("lva", MODALITIES):
            if m == "l" or aligned:
                if len(seg_words) >= lengths[m]:
                    axes[m] = (seg_words[: lengths[m]], "word")
                continue
            times = np.asarray(store.read_stream(name, [seg["video_id"]], columns=["time"]).column("time"), float)
            times = times[(times >= start) & (times < end)]
            if len(times) >= lengths[m]:
                axes[m] = ([f"{t:.2f} s" for t in times[: lengths[m]]], "s")
    except (OSError, ValueError, KeyError):  # a store that cannot say leaves the indices
        return axes
    return axes


def _label_axis(ax, which: str, labels: list[str], unit: str) -> None:
    """Tick labels of one heatmap axis: every word of a short sentence, else about eight evenly spaced steps."""
    set_ticks, set_title = (ax.set_xticks, ax.set_xlabel) if which == "x" else (ax.set_yticks, ax.set_ylabel)
    names = {"word": "words", "s": "video time", "step": f"{'source' if which == 'x' else 'target'} step"}
    set_title(" | ".join(names.get(u, u) for u in unit.split(" | ")), fontsize=8)
    n = len(labels)
    every = n <= 12 or (unit == "word" and n <= 40)
    ticks = np.arange(n) if every else np.unique(np.linspace(0, n - 1, min(n, 8)).round().astype(int))
    if n:
        set_ticks(ticks, [labels[i] for i in ticks], fontsize=6 if every else 7, rotation=90 if which == "x" else 0)


def _matrix(x) -> np.ndarray | None:
    """Sample 0 of a (1, ..., Tq, Tk) attention tensor as (Tq, Tk), heads averaged when present."""
    if not torch.is_tensor(x):
        return None
    a = x.detach().float().cpu().numpy()[0]
    while a.ndim > 2:
        a = a.mean(0)
    return a


def _keys(key: str, t: str, s1: str, s2: str, real: dict, axes: dict, width: int):
    """The columns of a heatmap that are real steps of its keys, their labels and units (None: keep all)."""
    if key != "scu_cross":
        src = {"cmu_s1": s1, "cmu_s2": s2, "scu_self": t}[key]
        return real.get(src, (None, None))[0], *axes.get(src, ([], "step")), None
    (i1, n1), (i2, n2) = real.get(s1, (None, 0)), real.get(s2, (None, 0))
    if i1 is None or i2 is None or n1 + n2 != width:  # not [s1; s2] of the inputs' lengths: show it as it is
        return None, [], "step", None
    (l1, u1), (l2, u2) = axes.get(s1, ([], "step")), axes.get(s2, ([], "step"))
    return np.concatenate([i1, n1 + i2]), l1 + l2, u1 if u1 == u2 else f"{u1} | {u2}", len(i1)


def plot_attention_layer(layer: dict, lengths: dict, path: Path, title: str, real: dict | None = None,
                         axes_labels: dict | None = None) -> bool:
    """One row per target modality: CMU maps (target x each source) and SCU maps (cross to [s1; s2], self), over
    the ``real`` steps (:func:`sample_attention`; default: the first ``lengths``), axes labelled by ``axes_labels``
    (:func:`step_axes`; default: step indices)."""
    real = real or {m: (np.arange(n), None) for m, n in lengths.items()}
    axes_labels = {**{m: ([str(k) for k in range(len(i))], "step") for m, (i, _) in real.items()},
                   **(axes_labels or {})}
    targets = [t for t in "lva" if t in layer]
    columns = [("cmu_s1", "CMU {t} <- {s1}"), ("cmu_s2", "CMU {t} <- {s2}"), ("scu_cross", "SCU {t} <- [{s1}; {s2}]"),
               ("scu_self", "SCU {t} <- {t} (self)")]
    columns = [c for c in columns if any(c[0] in layer[t] for t in targets)]
    if not targets or not columns:
        return False
    fig, axes = plt.subplots(len(targets), len(columns), figsize=(4.4 * len(columns), 4.2 * len(targets)),
                             squeeze=False)
    for r, t in enumerate(targets):
        s1, s2 = layer[t].get("sources", ("?", "?"))
        for c, (key, label) in enumerate(columns):
            ax = axes[r][c]
            a = _matrix(layer[t].get(key))
            if a is None:
                ax.axis("off")
                continue
            rows = real.get(t, (None, None))[0]
            cols, col_labels, unit, split_at = _keys(key, t, s1, s2, real, axes_labels, a.shape[1])
            a = a[rows[rows < a.shape[0]]] if rows is not None else a  # real steps only
            a = a[:, cols[cols < a.shape[1]]] if cols is not None else a
            im = ax.imshow(a, aspect="auto", cmap="viridis")
            if split_at is not None and 0 < split_at < a.shape[1]:
                ax.axvline(split_at - 0.5, color="w", lw=0.8)
            ax.set_title(label.format(t=NAMES[t], s1=NAMES.get(s1, s1), s2=NAMES.get(s2, s2)), fontsize=8)
            _label_axis(ax, "y", axes_labels[t][0][: a.shape[0]], axes_labels[t][1])
            _label_axis(ax, "x", col_labels[: a.shape[1]] if cols is not None else [], unit)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_weights(layers: list[dict], lengths: dict, path: Path, real: dict | None = None) -> bool:
    """CMU's alpha over each source's real steps (per target) and SCU's gamma per layer."""
    targets = sorted({t for layer in layers for t in layer if t in "lva"}, key="lva".index)
    has_alpha = any("alpha_s1" in layer.get(t, {}) for layer in layers for t in targets)
    has_gamma = any("scu_gamma" in layer.get(t, {}) for layer in layers for t in targets)
    if not (has_alpha or has_gamma):
        return False
    fig, axes = plt.subplots(1, len(targets) + 1, figsize=(4 * (len(targets) + 1), 3.4), squeeze=False)
    last = layers[-1]
    for ax, t in zip(axes[0], targets):
        s1, s2 = last.get(t, {}).get("sources", ("?", "?"))
        for key, s, style in (("alpha_s1", s1, "-o"), ("alpha_s2", s2, "-s")):
            alpha = last.get(t, {}).get(key)  # (1, T_s)
            if torch.is_tensor(alpha):
                a = alpha[0].float().cpu().numpy()
                a = a[real[s][0][real[s][0] < len(a)]] if real and s in real else a[: lengths.get(s) or None]
                ax.plot(np.arange(len(a)), a, style, ms=3, label=f"alpha {NAMES.get(s, s)}")
        ax.set(title=f"target {NAMES[t]}: alpha (last layer)", xlabel="source step", ylabel="weight")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax = axes[0][-1]
    width = 0.8 / max(1, len(targets))
    for j, t in enumerate(targets):
        gammas = [layer[t]["scu_gamma"][0].float().cpu().numpy() for layer in layers
                  if t in layer and torch.is_tensor(layer[t].get("scu_gamma"))]
        if gammas:
            g = np.stack(gammas)  # (layers, 2): weight of the crossmodal branch, of the self branch
            ax.bar(np.arange(len(g)) + j * width, g[:, 0], width, label=f"{NAMES[t]}: cross branch", alpha=0.8)
    ax.set_xticks(np.arange(len(layers)) + width * (len(targets) - 1) / 2, [str(i) for i in range(len(layers))])
    ax.set(title="SCU gamma of the crossmodal branch", xlabel="layer", ylabel="gamma", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _metrics_table(metrics: dict) -> str:
    """HTML table: one row per split, one column per metric (mean ± std for summaries)."""
    rows, names = [], []
    for split in ("valid", "test"):
        values = metrics.get(split)
        if not isinstance(values, dict):
            continue
        names = names or list(values)
        cells = []
        for n in names:
            v = values.get(n)
            if isinstance(v, dict):
                cells.append(f"{_num(v.get('mean'))} ± {_num(v.get('std'))}")
            else:
                cells.append(_num(v))
        rows.append(f"<tr><th>{split}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _num(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def sample_label(task: str, label, names: list[str] | None) -> str:
    """A sample's label in words: the score and its Acc7 class, the emotions present, or the class name."""
    value = np.asarray(label)
    if task == "iemocap":
        flags = value.argmax(-1) if value.ndim == 2 else value.reshape(-1)
        return ", ".join(e for e, f in zip(IEMOCAP_EMOTIONS, flags) if f) or "no emotion"
    x = value.reshape(-1)[0]
    if task == "regression":
        return f"{float(x):+.3f} ({SENTIMENT_NAMES[int(np.round(np.clip(x, -3, 3)))]})"
    return names[int(x)] if names and 0 <= int(x) < len(names) else str(int(x))


def write_report(run: str | Path, *, split: ArraySplit | None = None, sample: int = 0, layer: int | None = None,
                 out: str | Path | None = None, source: str | Path | None = None,
                 viewer: str | Path | None = None) -> Path:
    """Write the report of ``run`` into ``out`` (default ``RUN/report``); return the HTML file's path.

    split: data to draw the attention sample from (already loaded; e.g. the run's test split); None: no sample
        plots. sample: index of the sample in ``split``. layer: reinforcement layer of the heatmaps (default: last).
    source: where ``split`` came from (default: the run's training data); a feature store gives the heatmaps' axes
        the sample's words and seconds. viewer: the folder of ``mcr view`` to link (default: ``../viewer`` beside
        the report, when present).
    """
    run, out = Path(run), Path(out) if out else Path(run) / "report"
    dirs, trained = run_dirs(run), load_run(run)
    cfg = trained.config
    names = trained.classes if cfg.task == "classification" else None
    histories = {d.name if len(dirs) > 1 else "run": _read_json(d / "history.json", []) for d in dirs}
    chosen = trained.run_dir
    seed_metrics = _read_json(chosen / "metrics.json", {})
    metrics = _read_json(run / "summary.json", seed_metrics)
    unfinished = "" if seed_metrics else ("<p><b>Training has not finished</b> (no metrics.json yet): the report "
                                          "shows the epochs so far. Rerun `mcr train` with the same options to "
                                          "resume.</p>")
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []

    plot_curves(histories, cfg.task, out / "curves.png")
    figures.append(("curves.png", "Training and validation curves"))
    conf_split = "test" if "test_confusion" in seed_metrics else "valid"
    per_class_html = ""
    if f"{conf_split}_confusion" in seed_metrics:
        confusion = seed_metrics[f"{conf_split}_confusion"]
        plot_confusion(confusion, out / "confusion.png", f"{conf_split} split, best validation epoch ({chosen.name})",
                       names)
        figures.append(("confusion.png", f"Confusion matrix ({conf_split})"))
        what = {"regression": "sentiment class (Acc7)", "iemocap": "emotion, present vs. absent"}.get(cfg.task, "class")
        per_class_html = (f"<h2>Per-class metrics ({conf_split}, per {what})</h2>{per_class_table(confusion, names)}"
                          "<p class='note'>support: true samples of the class; predicted: samples predicted as it.</p>")
    sample_note = ""
    if split is not None and len(split):
        if not 0 <= sample < len(split):
            raise ValueError(f"[report] --sample {sample} is outside the split's {len(split)} samples")
        attention, lengths, real = sample_attention(trained.model, split, sample, trained.normalizer)
        labels = step_axes(split, sample, source or trained.data.get("source"), lengths, trained.aligned)
        layers = (attention or {}).get("layers") or []
        if layers:
            i = len(layers) - 1 if layer is None else layer
            if not 0 <= i < len(layers):
                raise ValueError(f"[report] --layer {i} is outside the model's layers 0..{len(layers) - 1}")
            if plot_attention_layer(layers[i], lengths, out / f"attention_layer{i}.png",
                                    f"sample {split.ids[sample]}, reinforcement layer {i}", real, labels):
                figures.append((f"attention_layer{i}.png", f"CMU and SCU attention, layer {i}"))
            if plot_weights(layers, lengths, out / "weights.png", real):
                figures.append(("weights.png", "CMU alpha and SCU gamma"))
        words = " ".join(labels["l"][0]) if labels["l"][1] == "word" else ""
        sample_note = (f"<p>Attention sample: <code>{html.escape(split.ids[sample])}</code>, label "
                       f"{html.escape(sample_label(cfg.task, split.labels[sample], names or split.classes))}, "
                       f"real steps {lengths}" + (f": &ldquo;{html.escape(words)}&rdquo;" if words else "") + ".</p>")
    link = viewer_href(out, out.parent / "viewer" if viewer is None else viewer)
    classes = trained.label_names if cfg.task != "regression" else []
    page = "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>MCR run {html.escape(run.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 16px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}"
        ".note{color:#666;font-size:90%}</style></head><body>",
        f"<h1>Run {html.escape(str(run))}</h1>",
        f"<p>{html.escape(cfg.arch.upper())}, task {html.escape(cfg.task)}, preset "
        f"{html.escape(str(trained.train.get('preset')))}, {len(dirs)} seed(s); best validation epoch "
        f"{trained.best_epoch} of {chosen.name}; data {html.escape(str(trained.data.get('source', '?')))}.</p>",
        f"<p>Classes: {html.escape(', '.join(map(str, classes)))}.</p>" if classes else "",
        f"<p><a class='viewer' href='{html.escape(link)}'>Predictions viewer</a> (videos with their predicted "
        "timeline and transcript)</p>" if link else "",
        unfinished, "<h2>Metrics</h2>", _metrics_table(metrics), per_class_html, sample_note,
        *[f"<h2>{html.escape(caption)}</h2><img src='{name}' alt='{html.escape(caption)}'>"
          for name, caption in figures],
        "</body></html>"])
    atomic_write(out / "index.html", page)
    return out / "index.html"


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default
