"""PNG plots and a one-page HTML report of a trained run (matplotlib, Agg backend: no display needed).

``RUN/report/``: ``curves.png`` (training and validation loss per epoch, and the validation metric), 
``confusion.png``, for one sample ``attention_layer<i>.png`` (CMU and SCU attention maps per target modality, as
the paper's Figs. 3-4) and ``weights.png`` (CMU's selective weights alpha per source step and SCU's gamma of each
layer, as Fig. 5), and ``index.html`` with the metrics table.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.arrays import ArraySplit, normalize  # noqa: E402
from pipeline.files import atomic_write  # noqa: E402
from workflows.inference import batch_inputs  # noqa: E402
from workflows.runs import load_run, run_dirs  # noqa: E402

NAMES = {"l": "language", "v": "visual", "a": "acoustic"}  # the model's l/v/a in the store's words
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


def plot_confusion(confusion: dict, path: Path, title: str) -> None:
    """Each confusion matrix of ``pipeline.metrics.confusion`` as an annotated heatmap (rows: truth)."""
    fig, axes = plt.subplots(1, len(confusion), figsize=(4.2 * len(confusion), 4), squeeze=False)
    for ax, (name, cm) in zip(axes[0], confusion.items()):
        matrix = np.asarray(cm["matrix"])
        ax.imshow(matrix, cmap="Blues")
        ticks = range(len(cm["classes"]))
        ax.set_xticks(ticks, [str(c) for c in cm["classes"]])
        ax.set_yticks(ticks, [str(c) for c in cm["classes"]])
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > matrix.max() / 2 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_attention(model, split: ArraySplit, index: int, normalizer: dict | None = None
                     ) -> tuple[dict | None, dict]:
    """The model's attention dict for sample ``index`` (or None when the model returns none) and its real lengths."""
    if normalizer is not None:
        split = normalize(split.subset([index]), normalizer)
        index = 0
    inputs, _ = batch_inputs(split, np.array([index]), next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        out = model(*inputs, return_attention=True)
    lengths = {m: int(mask.sum()) for m, mask in zip("lva", inputs[3:])}
    return out.attention, lengths


def _matrix(x) -> np.ndarray | None:
    """Sample 0 of a (1, ..., Tq, Tk) attention tensor as (Tq, Tk), heads averaged when present."""
    if not torch.is_tensor(x):
        return None
    a = x.detach().float().cpu().numpy()[0]
    while a.ndim > 2:
        a = a.mean(0)
    return a


def plot_attention_layer(layer: dict, lengths: dict, path: Path, title: str) -> bool:
    """One row per target modality: CMU maps (target x each source) and SCU maps (cross to [s1; s2], self)."""
    targets = [t for t in "lva" if t in layer]
    columns = [("cmu_s1", "CMU {t} <- {s1}"), ("cmu_s2", "CMU {t} <- {s2}"), ("scu_cross", "SCU {t} <- [{s1}; {s2}]"),
               ("scu_self", "SCU {t} <- {t} (self)")]
    columns = [c for c in columns if any(c[0] in layer[t] for t in targets)]
    if not targets or not columns:
        return False
    fig, axes = plt.subplots(len(targets), len(columns), figsize=(3.6 * len(columns), 3.2 * len(targets)),
                             squeeze=False)
    for r, t in enumerate(targets):
        s1, s2 = layer[t].get("sources", ("?", "?"))
        for c, (key, label) in enumerate(columns):
            ax = axes[r][c]
            a = _matrix(layer[t].get(key))
            if a is None:
                ax.axis("off")
                continue
            keys_len = {"cmu_s1": lengths.get(s1), "cmu_s2": lengths.get(s2), "scu_self": lengths.get(t),
                        "scu_cross": None}[key]
            a = a[: lengths.get(t) or a.shape[0], : keys_len or a.shape[1]]  # real steps only
            im = ax.imshow(a, aspect="auto", cmap="viridis")
            if key == "scu_cross" and lengths.get(s1) is not None:
                ax.axvline(a.shape[1] - 0.5 if a.shape[1] <= lengths[s1] else lengths[s1] - 0.5, color="w", lw=0.8)
            ax.set(title=label.format(t=NAMES[t], s1=NAMES.get(s1, s1), s2=NAMES.get(s2, s2)),
                   xlabel="source step", ylabel="target step")
            ax.title.set_fontsize(8)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_weights(layers: list[dict], lengths: dict, path: Path) -> bool:
    """CMU's alpha over each source's steps (per target) and SCU's gamma per layer."""
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
                a = alpha[0].float().cpu().numpy()[: lengths.get(s) or None]
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


def write_report(run: str | Path, *, split: ArraySplit | None = None, sample: int = 0, layer: int | None = None,
                 out: str | Path | None = None) -> Path:
    """Write the report of ``run`` into ``out`` (default ``RUN/report``); return the HTML file's path.

    split: data to draw the attention sample from (already loaded; e.g. the run's test split); None: no sample
        plots. sample: index of the sample in ``split``. layer: reinforcement layer of the heatmaps (default: last).
    """
    run = Path(run)
    out = Path(out) if out else run / "report"
    dirs = run_dirs(run)
    trained = load_run(run)
    cfg = trained.config
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
    if f"{conf_split}_confusion" in seed_metrics:
        plot_confusion(seed_metrics[f"{conf_split}_confusion"], out / "confusion.png",
                       f"{conf_split} split, best validation epoch ({chosen.name})")
        figures.append(("confusion.png", f"Confusion matrix ({conf_split})"))
    sample_note = ""
    if split is not None and len(split):
        if not 0 <= sample < len(split):
            raise ValueError(f"[report] --sample {sample} is outside the split's {len(split)} samples")
        attention, lengths = sample_attention(trained.model, split, sample, trained.normalizer)
        layers = (attention or {}).get("layers") or []
        if layers:
            i = len(layers) - 1 if layer is None else layer
            if not 0 <= i < len(layers):
                raise ValueError(f"[report] --layer {i} is outside the model's layers 0..{len(layers) - 1}")
            if plot_attention_layer(layers[i], lengths, out / f"attention_layer{i}.png",
                                    f"sample {split.ids[sample]}, reinforcement layer {i}"):
                figures.append((f"attention_layer{i}.png", f"CMU and SCU attention, layer {i}"))
            if plot_weights(layers, lengths, out / "weights.png"):
                figures.append(("weights.png", "CMU alpha and SCU gamma"))
        label = split.labels[sample]
        sample_note = (f"<p>Attention sample: <code>{html.escape(split.ids[sample])}</code>, label "
                       f"{html.escape(str(np.round(label, 3).tolist()))}, real steps {lengths}.</p>")
    page = "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>MCR run {html.escape(run.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>Run {html.escape(str(run))}</h1>",
        f"<p>{html.escape(cfg.arch.upper())}, task {html.escape(cfg.task)}, preset "
        f"{html.escape(str(trained.train.get('preset')))}, {len(dirs)} seed(s); best validation epoch "
        f"{trained.best_epoch} of {chosen.name}; data {html.escape(str(trained.data.get('source', '?')))}.</p>",
        unfinished, "<h2>Metrics</h2>", _metrics_table(metrics), sample_note,
        *[f"<h2>{html.escape(caption)}</h2><img src='{name}' alt='{html.escape(caption)}'>"
          for name, caption in figures],
        "</body></html>"])
    atomic_write(out / "index.html", page)
    return out / "index.html"


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default
