"""Running a model over an :class:`ArraySplit`: devices, batches of tensors, mixed precision, raw outputs.

Shared by training (its validation passes), evaluation, prediction and the report; none of those import the trainer.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.arrays import MODALITIES, ArraySplit, normalize


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine has no CUDA device; use --device cpu (or auto)")
    return torch.device(name)


def batch_inputs(split: ArraySplit, index: np.ndarray, device: torch.device
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The model's inputs (x_l, x_v, x_a, mask_l, mask_v, mask_a) and the labels of ``index``, on ``device``.

    Steps after the batch's last real one are cut: the model masks padding, so this changes nothing but the time.
    (Leading padding, as in MulT's files, stays: cutting it would shift the positional embeddings.)
    """
    xs, masks = [], []
    for m in MODALITIES:
        mask = getattr(split, f"{m}_mask")[index]  # (B, T)
        real = np.flatnonzero(mask.any(0))
        end = int(real[-1]) + 1 if len(real) else 1
        xs.append(getattr(split, m)[index, :end])  # (B, T', d)
        masks.append(mask[:, :end])
    inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in xs + masks]
    return inputs, torch.from_numpy(split.labels[index]).to(device)


def autocast(device: torch.device, amp: bool):
    """bfloat16 (or float16) autocast on CUDA when ``amp``; a no-op context elsewhere."""
    if device.type == "cuda" and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict_arrays(model: torch.nn.Module, split: ArraySplit, *, normalizer: dict | None = None,
                   batch_size: int = 256, amp: bool = False) -> np.ndarray:
    """The model's raw outputs for every sample: (N, 1) | (N, 4, 2) | (N, n_classes) float32.

    normalizer: the run's per-feature statistics (:func:`pipeline.arrays.fit_normalizer` of its training split);
        when given, the split is first standardised as the run's training data was.
    batch_size: samples per forward pass.
    amp: mixed precision on CUDA.
    """
    if normalizer is not None:
        split = normalize(split, normalizer)
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    for start in range(0, len(split), batch_size):
        inputs, _ = batch_inputs(split, np.arange(start, min(start + batch_size, len(split))), device)
        with autocast(device, amp):
            outputs.append(model(*inputs).output.float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def require_finite(outputs: np.ndarray, checkpoint, ids, *, stage: str) -> np.ndarray:
    """``outputs``, unless some are NaN or infinite: then a one-line error naming ``checkpoint``.

    Inputs reach the model with non-finite values zeroed, so such outputs mean damaged weights; they must never
    become a class or a metric. ``ids``: what each output row is (video ids), named in the message.
    """
    bad = ~np.isfinite(outputs.reshape(len(outputs), -1)).all(1)
    if bad.any():
        names = list(dict.fromkeys(str(ids[i]) for i in np.flatnonzero(bad)))
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise ValueError(f"{checkpoint}: [{stage}] the model produced non-finite outputs for {int(bad.sum())} of "
                         f"{len(outputs)} segments (of {', '.join(names[:3])}{more}); the weights may be corrupt: "
                         "retrain, or restore the checkpoint from a backup")
    return outputs
