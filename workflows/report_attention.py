"""The report's attention figures: one sample's CMU and SCU maps and the CMU/SCU weights, on the sample's real
steps, axes labelled with its words and seconds (``mcr report``; :mod:`workflows.report` writes the page)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipeline.arrays import MODALITIES, ArraySplit, normalize  # noqa: E402
from model.preprocess import mean_pool_steps  # noqa: E402
from workflows.inference import batch_inputs  # noqa: E402

NAMES = {"l": "language", "v": "visual", "a": "acoustic"}  # the model's l/v/a in the store's words


def choose_sample(split: ArraySplit) -> tuple[int, str | None]:
    """The sample whose attention the report draws: the first with words and every stream, else the first with words,
    else the first; and a note for the page when no sample has words (its language maps are then empty)."""
    steps = {m: getattr(split, f"{m}_mask").sum(1) for m in MODALITIES}  # (N,) real steps per modality
    words = steps["language"] > 0
    complete = words & (steps["visual"] > 0) & (steps["acoustic"] > 0)
    for candidates in (complete, words):
        if candidates.any():
            return int(np.flatnonzero(candidates)[0]), None
    return 0, (f"None of the {len(split)} samples of this split has words: the attention maps of the language "
               "stream are empty. Give data with transcripts (--data) to see attention on words.")


def sample_attention(model, split: ArraySplit, index: int, normalizer: dict | None = None
                     ) -> tuple[dict | None, dict, dict]:
    """The model's attention dict for sample ``index`` (or None when the model returns none), its real lengths and
    ``{"l"/"v"/"a": (indices of the real steps, the input's padded length)}`` (padding may lead, as in MulT's files),
    counted in the steps the model attends over (a pooled stream's, ``MCRConfig.pool_a``)."""
    if normalizer is not None:
        split = normalize(split.subset([index]), normalizer)
        index = 0
    inputs, _ = batch_inputs(split, np.array([index]), next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        out = model(*inputs, return_attention=True)
    masks = [mean_pool_steps(x[:1], mask[:1], model.cfg.input_pool(m))[1][0].cpu().numpy()
             for m, x, mask in zip("lva", inputs[:3], inputs[3:])]
    lengths = {m: int(mask.sum()) for m, mask in zip("lva", masks)}
    real = {m: (np.flatnonzero(mask), len(mask)) for m, mask in zip("lva", masks)}
    return out.attention, lengths, real


def step_axes(split: ArraySplit, index: int, source, lengths: dict, aligned: bool = False,
              pools: dict | None = None) -> dict:
    """How to label each modality's real steps, ``{"l"/"v"/"a": (labels, unit)}``: from a feature store (``source``)
    the segment's words (language; all modalities of a word-aligned run) and each acoustic/visual frame's video time
    (unit "s"; a stream pooled by ``pools[m]`` steps, the time of each pool's first frame); otherwise, or when the
    store disagrees with the sample's lengths, step indices (unit "step")."""
    axes = {m: ([str(k) for k in range(n)], "step") for m, n in lengths.items()}
    try:
        if not source or not Path(source, "segments.parquet").is_file():
            return axes
        from pipeline.store import FeatureStore
        from pipeline.views import frame_times, rows_in_window, video_words, words_inside

        store = FeatureStore(source)
        segments = store.segments()
        match = segments[segments["segment_id"].astype(str) == str(split.ids[index])]
        if split.video_ids is not None:
            match = match[match["video_id"] == split.video_ids[index]]
        if len(match) != 1:
            return axes
        seg = match.iloc[0]
        start, end = float(seg["start"]), np.inf if pd.isna(seg["end"]) else float(seg["end"])
        words = video_words(store, seg["video_id"], columns=("start", "end", "word"))
        inside = words_inside(words["start"], words["end"], start, end) if len(words) else []
        seg_words = [str(w).strip() for w in words["word"].to_numpy()[inside]] if len(words) else []
        for m, name in zip("lva", MODALITIES):
            if m == "l" or aligned:
                if len(seg_words) >= lengths[m]:
                    axes[m] = (seg_words[: lengths[m]], "word")
                continue
            times = frame_times(store, name, seg["video_id"])
            times = times[rows_in_window(times, start, end)][::(pools or {}).get(m, 1)]
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
            if not a.size:  # a stream the sample lacks (no words, no face): nothing attended
                ax.axis("off")
                ax.text(0.5, 0.5, f"{label.format(t=NAMES[t], s1=NAMES.get(s1, s1), s2=NAMES.get(s2, s2))}:\n"
                        "no real steps in this sample", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
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
