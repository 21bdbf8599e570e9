"""PNG plots and a one-page HTML report of a trained run (matplotlib, Agg backend: no display needed).

``RUN/report/``: ``curves.png`` (training and validation loss per epoch, and the validation metric), 
``confusion.png`` (class names on the axes), for one sample ``attention_layer<i>.png`` (CMU and SCU attention maps
per target modality, as the paper's Figs. 3-4, their axes labelled with the sample's words and the seconds of its
frames when the data is a feature store, else with step indices) and ``weights.png`` (CMU's selective weights alpha
per source step and SCU's gamma of each layer, as Fig. 5), and ``index.html`` with the metrics, a per-class table
(precision, recall, F1 and support from the confusion matrix) and a link to the predictions viewer when there is one.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.arrays import IEMOCAP_EMOTIONS, ArraySplit  # noqa: E402
from pipeline.files import atomic_write, read_json  # noqa: E402
from workflows.report_attention import (  # noqa: E402
    choose_sample, plot_attention_layer, plot_weights, sample_attention, step_axes)
from workflows.report_page import per_class_html, report_html  # noqa: E402
from workflows.runs import is_placeholder, load_run, run_dirs  # noqa: E402
from workflows.viewer import viewer_href  # noqa: E402

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


def per_class_rows(confusion: dict, names: list[str] | None = None) -> list[tuple[str, dict]]:
    """(class name, :func:`per_class` stats) per class (for IEMOCAP's one-vs-rest matrices, one row per emotion, its
    "present" class)."""
    rows = []
    binary = len(confusion) > 1 and all(list(cm["classes"]) == [0, 1] for cm in confusion.values())
    for name, cm in confusion.items():
        stats, labels = per_class(cm["matrix"]), class_names(name, cm["classes"], names)
        rows += [(name, stats[1])] if binary else list(zip(labels, stats))
    return rows


def per_class_table(confusion: dict, names: list[str] | None = None) -> str:
    """HTML: one row per class of :func:`per_class_rows`."""
    return per_class_html(per_class_rows(confusion, names))


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


def write_report(run: str | Path, *, split: ArraySplit | None = None, sample: int | None = None,
                 layer: int | None = None,
                 out: str | Path | None = None, source: str | Path | None = None,
                 viewer: str | Path | None = None) -> Path:
    """Write the report of ``run`` into ``out`` (default ``RUN/report``); return the HTML file's path.

    split: data to draw the attention sample from (already loaded; e.g. the run's test split); None: no sample
        plots. sample: index of the sample in ``split`` (default: the first with words, :func:`choose_sample`).
        layer: reinforcement layer of the heatmaps (default: last).
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
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []

    plot_curves(histories, cfg.task, out / "curves.png")
    figures.append(("curves.png", "Training and validation curves"))
    conf_split = "test" if "test_confusion" in seed_metrics else "valid"
    per_class_info = None
    if f"{conf_split}_confusion" in seed_metrics:
        confusion = seed_metrics[f"{conf_split}_confusion"]
        plot_confusion(confusion, out / "confusion.png", f"{conf_split} split, best validation epoch ({chosen.name})",
                       names)
        figures.append(("confusion.png", f"Confusion matrix ({conf_split})"))
        what = {"regression": "sentiment class (Acc7)", "iemocap": "emotion, present vs. absent"}.get(cfg.task, "class")
        per_class_info = {"split": conf_split, "what": what, "rows": per_class_rows(confusion, names)}
    sample_info = None
    if split is not None and len(split):
        note = None
        if sample is None:
            sample, note = choose_sample(split)
        if not 0 <= sample < len(split):
            raise ValueError(f"[report] --sample {sample} is outside the split's {len(split)} samples")
        if note is None and not split.language_mask[sample].any():
            note = f"Sample {sample} has no words: the attention maps of the language stream are empty."
        attention, lengths, real = sample_attention(trained.model, split, sample, trained.normalizer)
        labels = step_axes(split, sample, source or trained.data.get("source"), lengths, trained.aligned,
                           {m: cfg.input_pool(m) for m in "lva"})
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
        sample_info = {"id": split.ids[sample], "words": words, "lengths": lengths,
                       "label": sample_label(cfg.task, split.labels[sample], names or split.classes), "note": note}
    link = viewer_href(out, out.parent / "viewer" if viewer is None else viewer)
    page = report_html(
        run_name=run.name, run_path=str(run), placeholder=is_placeholder(trained), arch=cfg.arch.upper(),
        task=cfg.task, preset=trained.train.get("preset"), seeds=len(dirs), best_epoch=trained.best_epoch,
        chosen=chosen.name, source=trained.data.get("source", "?"), unfinished=not seed_metrics,
        classes=trained.label_names if cfg.task != "regression" else [], viewer=link, metrics=metrics,
        per_class=per_class_info, sample=sample_info, figures=figures)
    atomic_write(out / "index.html", page)
    return out / "index.html"


def _read_json(path: Path, default):
    return read_json(path, stage="report", hint="retrain, or restore the file") if path.exists() else default
