"""An exponential moving average of a model's weights during training (``TrainConfig.weight_average``).

The averaged model is what is validated, selected and kept: each epoch's validation figure is that of the weights
averaged over the last few hundred steps rather than of the last step's, so model selection on a small validation
split (two RAVDESS actors, 120 clips) jumps less between epochs, and the kept model sits in a flatter place than
any one step's weights (Polyak averaging; docs/model.md says what it measured).

Step ``t`` (from 1) moves the average toward the weights by ``1 - d_t``, with ``d_t = min(decay, (1 + t) / (10 +
t))``: the first steps follow the weights closely, so the average of epoch 1 is not mostly the initialisation (the
``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``).
"""
from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The running average of ``model``'s parameters (buffers copied as they are), in a copy of it."""

    def __init__(self, model: torch.nn.Module, decay: float):
        assert 0.0 < decay < 1.0, f"decay must be in (0, 1), got {decay}"
        self.decay, self.steps = decay, 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One optimizer step's weights of ``model`` into the average."""
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for average, current in zip(self.module.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1.0 - decay)
        for average, current in zip(self.module.buffers(), model.buffers(), strict=True):
            average.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, tensors: dict[str, torch.Tensor], steps: int) -> None:
        """Restore the average of a checkpoint, taken after ``steps`` updates."""
        self.module.load_state_dict(tensors)
        self.steps = steps
