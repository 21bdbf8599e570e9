"""The stream-rate pooling (``MCRConfig.pool_m``): a masked strided mean before the pre-processing."""
from __future__ import annotations

import pytest
import torch

from model import MCRConfig, build_model
from model.preprocess import mean_pool_steps

from .helpers import SMALL_LENGTHS, batch, pad, small_config


def test_mean_pool_steps_averages_real_steps_only():
    x = torch.arange(1.0, 11.0).reshape(1, 10, 1)  # steps 1..10
    mask = torch.tensor([[True] * 7 + [False] * 3])  # 7 real steps, then garbage-free padding
    pooled, pooled_mask = mean_pool_steps(x * mask[..., None] + 99 * ~mask[..., None], mask, 4)
    assert pooled.shape == (1, 3, 1) and pooled_mask.tolist() == [[True, True, False]]
    assert pooled[0, :, 0].tolist() == [2.5, 6.0, 0.0]  # (1+2+3+4)/4, (5+6+7)/3: padding never counted
    unmasked, none = mean_pool_steps(x, None, 4)  # no mask: every step real, the last window has 2
    assert none is None and unmasked[0, :, 0].tolist() == [2.5, 6.5, 9.5]
    assert mean_pool_steps(x, mask, 1)[0] is x


@pytest.mark.parametrize("arch", ["mcr", "mult"])
def test_a_pooled_model_sees_what_a_model_of_prepooled_inputs_sees(arch):
    pooled_cfg = small_config(arch=arch, pool_a=3, embed_dropout=0.0)
    plain_cfg = small_config(arch=arch, embed_dropout=0.0)
    torch.manual_seed(0)
    pooled_model = build_model(pooled_cfg).eval()
    plain_model = build_model(plain_cfg).eval()
    plain_model.load_state_dict(pooled_model.state_dict())  # pooling adds no parameters
    inputs = batch(pooled_cfg, 2, {**SMALL_LENGTHS, "a": 12})
    x_a, mask_a = pad(inputs["x_a"], None, 5)  # 12 real steps and 5 of garbage padding
    x_a_pooled, mask_pooled = mean_pool_steps(inputs["x_a"], None, 3)  # 4 steps
    with torch.no_grad():
        got = pooled_model(**{**inputs, "x_a": x_a, "mask_a": mask_a}).output
        want = plain_model(**{**inputs, "x_a": x_a_pooled}).output
    assert torch.allclose(got, want, atol=1e-5)


def test_pool_sizes_are_checked_and_old_configs_read_as_unpooled():
    with pytest.raises(ValueError, match="pool_a"):
        MCRConfig(pool_a=0)
    old = MCRConfig().to_dict()
    for key in ("pool_l", "pool_v", "pool_a"):
        del old[key]  # a checkpoint written before the option
    assert MCRConfig.from_dict(old).input_pool("a") == 1


def test_the_reports_attention_steps_are_the_pooled_ones():
    import numpy as np

    from pipeline.arrays import ArraySplit
    from workflows.report_attention import sample_attention

    cfg = small_config(pool_a=4)
    model = build_model(cfg).eval()
    rng = np.random.default_rng(0)
    lengths, real = (5, 6, 30), (4, 6, 21)
    xs = [rng.normal(size=(1, t, cfg.input_dim(m))).astype(np.float32) for m, t in zip("lva", lengths)]
    masks = [np.arange(t)[None] < r for t, r in zip(lengths, real)]
    split = ArraySplit(*xs, *masks, labels=np.zeros(1, np.float32), ids=["s0"])
    attention, steps, real_steps = sample_attention(model, split, 0)
    assert steps == {"l": 4, "v": 6, "a": 6}  # 21 acoustic frames in pools of 4
    assert real_steps["a"][0].tolist() == list(range(6))
    assert attention["layers"][0]["l"]["cmu_s2"].shape[-1] == 6  # what the model attended over
