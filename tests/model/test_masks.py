"""Padding never changes the output; eq. 3's alpha is a distribution over the real source steps; an entirely
missing modality gives finite outputs and gradients."""
from __future__ import annotations

import pytest
import torch

from model import build_model

from .helpers import SMALL_LENGTHS, batch, grads_missing, pad, small_config

LITERAL = dict(exchange="conv", exchange_kernel=3, time_bias="per_step", scu_attention="flat",
               max_len_l=12, max_len_v=16, max_len_a=14)
VARIANTS = {
    "mcr": {},
    "mcr_literal": LITERAL,
    "mcr_mean_pool_serial": {"pooling": "mean", "structure": "serial"},
    "mcr_language_only": {"modalities": ("l",)},
    "mcr_kernels_1_3_5": {"kernel_l": 1, "kernel_v": 3, "kernel_a": 5},
    "mult": {"arch": "mult", "mult_kernel": 3},
}


def _ragged_masks(B: int, lengths: dict[str, int], seed: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.arange(T)[None, :] < torch.randint(1, T + 1, (B, 1), generator=g) for m, T in lengths.items()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("padded", ["l", "v", "a", "all"])
def test_appending_padding_leaves_outputs_unchanged(variant, padded):
    cfg = small_config(**VARIANTS[variant])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    B = 4
    x = batch(cfg, B, SMALL_LENGTHS)
    masks = _ragged_masks(B, SMALL_LENGTHS)
    with torch.no_grad():
        ref = model(**x, **{f"mask_{m}": masks[m] for m in masks}, return_attention=False).output
        padded_x, padded_m = dict(x), dict(masks)
        for m in (("l", "v", "a") if padded == "all" else (padded,)):
            padded_x[f"x_{m}"], padded_m[m] = pad(x[f"x_{m}"], masks[m], 3)
        out = model(**padded_x, **{f"mask_{m}": padded_m[m] for m in padded_m}).output
    assert torch.allclose(out, ref, atol=1e-5, rtol=0), (out - ref).abs().max()


def test_no_mask_equals_all_true_mask():
    cfg = small_config()
    model = build_model(cfg).eval()
    x = batch(cfg, 2, SMALL_LENGTHS)
    with torch.no_grad():
        a = model(**x).output
        b = model(**x, **{f"mask_{m}": torch.ones(2, T, dtype=torch.bool) for m, T in SMALL_LENGTHS.items()}).output
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("exchange", ["attention", "conv"])
def test_alpha_is_a_distribution_over_real_source_steps(exchange):
    cfg = small_config(exchange=exchange, max_len_l=7, max_len_v=11, max_len_a=9)
    model = build_model(cfg).eval()
    B = 3
    masks = _ragged_masks(B, SMALL_LENGTHS)
    with torch.no_grad():
        out = model(**batch(cfg, B, SMALL_LENGTHS), **{f"mask_{m}": masks[m] for m in masks},
                    return_attention=True)
    assert len(out.attention["layers"]) == cfg.n_layers
    for layer in out.attention["layers"]:
        for t, info in layer.items():
            s1, s2 = info["sources"]
            a1, a2 = info["alpha_s1"], info["alpha_s2"]
            assert a1.shape == (B, SMALL_LENGTHS[s1]) and a2.shape == (B, SMALL_LENGTHS[s2])
            total = a1.sum(1) + a2.sum(1)
            assert torch.allclose(total, torch.ones(B), atol=1e-6), total
            assert (a1[~masks[s1]] == 0).all() and (a2[~masks[s2]] == 0).all()
            assert (a1[masks[s1]] > 0).all()
            # the CMU maps are distributions over each source's real steps, zero on its padding
            for key, s in (("cmu_s1", s1), ("cmu_s2", s2)):
                w = info[key]
                assert w.shape == (B, SMALL_LENGTHS[t], SMALL_LENGTHS[s])
                assert torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-5)
                assert (w.masked_select(~masks[s][:, None, :].expand_as(w)) == 0).all()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("missing", ["l", "v", "a"])
def test_an_entirely_masked_modality_gives_finite_outputs_and_gradients(variant, missing):
    cfg = small_config(**VARIANTS[variant])
    if missing not in cfg.modalities:
        pytest.skip("modality not used by this variant")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    B = 3
    x = batch(cfg, B, SMALL_LENGTHS)
    masks = {m: torch.ones(B, T, dtype=torch.bool) for m, T in SMALL_LENGTHS.items()}
    # sample 0 has no step at all of `missing`: one zero step, masked (a silent video has no words)
    x[f"x_{missing}"] = torch.cat([torch.zeros(1, 1, cfg.input_dim(missing)).expand(B, 1, -1),
                                   x[f"x_{missing}"]], dim=1)
    masks[missing] = torch.cat([torch.zeros(B, 1, dtype=torch.bool), masks[missing]], dim=1)
    masks[missing][0] = False
    out = model(**x, **{f"mask_{m}": masks[m] for m in masks})
    assert torch.isfinite(out.output).all()
    out.output.float().square().sum().backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert bad == []
    if variant != "mcr_language_only":
        assert grads_missing(model) == []
