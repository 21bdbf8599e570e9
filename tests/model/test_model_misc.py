"""Determinism, introspection, and the literal (length-dependent) forms of the paper's parameters."""
from __future__ import annotations

import pytest
import torch

from model import build_model
from model.scu import LITERAL_PARAM_LIMIT

from .helpers import SMALL_LENGTHS, batch, small_config


@pytest.mark.parametrize("arch", ["mcr", "mult"])
def test_same_seed_same_outputs(arch):
    cfg = small_config(arch=arch)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(cfg).train()  # dropout on: the seed must fix it too
        out = model(**batch(cfg, 3, SMALL_LENGTHS))
        out.output.sum().backward()
        outs.append((out.output.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))
    torch.manual_seed(124)
    other = build_model(cfg).train()(**batch(cfg, 3, SMALL_LENGTHS)).output
    assert not torch.equal(other, outs[0][0])


def test_attention_maps_for_every_layer_and_target():
    cfg = small_config(n_layers=3)
    model = build_model(cfg).eval()
    B = 2
    with torch.no_grad():
        plain = model(**batch(cfg, B, SMALL_LENGTHS))
        out = model(**batch(cfg, B, SMALL_LENGTHS), return_attention=True)
    assert plain.attention is None
    assert torch.allclose(plain.output, out.output, atol=1e-5), "introspection must not change the output"
    layers = out.attention["layers"]
    assert len(layers) == 3
    for layer in layers:
        assert set(layer) == {"l", "v", "a"}
        for t, info in layer.items():
            s1, s2 = info["sources"]
            T_t, T_ds = SMALL_LENGTHS[t], SMALL_LENGTHS[s1] + SMALL_LENGTHS[s2]
            assert info["cmu_s1"].shape == (B, T_t, SMALL_LENGTHS[s1])
            assert info["scu_cross"].shape == (B, T_t, T_ds)
            assert info["scu_self"].shape == (B, T_t, T_t)
            assert torch.allclose(info["scu_cross"].sum(-1), torch.ones(B, T_t), atol=1e-5)
            assert torch.allclose(info["scu_gamma"].sum(-1), torch.ones(B), atol=1e-6)


def test_mult_attention_maps():
    cfg = small_config(arch="mult", mult_layers=2)
    out = build_model(cfg).eval()(**batch(cfg, 2, SMALL_LENGTHS), return_attention=True)
    maps = out.attention["crossmodal"]
    assert len(maps) == 6 and len(maps["v_to_l"]) == 2
    assert maps["v_to_l"][-1].shape == (2, SMALL_LENGTHS["l"], SMALL_LENGTHS["v"])


def test_literal_forms_have_length_dependent_parameters():
    cfg = small_config(exchange="conv", exchange_kernel=3, time_bias="per_step", scu_attention="flat",
                       max_len_l=10, max_len_v=13, max_len_a=12)
    model = build_model(cfg)
    cmu_l = model.layers[0].cmu["l"]  # sources (v, a)
    # E_{a->l} (T_l x T_a) -> E^ (T_l x T_v): a Conv1d with T_a in and T_v out channels
    assert cmu_l.exchange[0].conv.weight.shape == (13, 12, 3)
    assert cmu_l.exchange[1].conv.weight.shape == (12, 13, 3)
    assert model.sums[0].updates["v"].b_s.bias.shape == (13, cfg.d_model)
    assert model.sums[0].combine["l"].b_s1.bias.shape == (13, cfg.d_model)
    n = 10 * cfg.d_model
    assert model.layers[0].scu["l"].attention_layer.w[0].weight.shape == (n, n)
    x = batch(cfg, 2, SMALL_LENGTHS)
    assert torch.isfinite(model(**x).output).all()
    x["x_v"] = torch.randn(2, 14, cfg.d_v)
    with pytest.raises(AssertionError, match="built for"):
        model(**x)


def test_literal_flat_attention_refuses_what_does_not_fit():
    """W in R^{T_t d x T_t d} at unaligned MOSI's T_V = 500, d = 40 is 4e8 parameters per branch."""
    with pytest.raises(ValueError, match="scu_attention='flat'"):
        build_model(small_config(d_model=40, n_heads=10, scu_attention="flat", max_len_l=50, max_len_v=500,
                                 max_len_a=375))
    assert LITERAL_PARAM_LIMIT < 2 * (500 * 40) ** 2


@pytest.mark.parametrize("arch", ["mcr", "mult"])
def test_bf16_autocast_runs_forward_and_backward(arch):
    """The --amp bf16 benchmark path, on CPU: mixed float32/bfloat16 tensors must meet without dtype errors."""
    cfg = small_config(arch=arch)
    model = build_model(cfg).train()
    masks = {f"mask_{m}": torch.ones(2, T, dtype=torch.bool) for m, T in SMALL_LENGTHS.items()}
    masks["mask_v"][0, 5:] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch(cfg, 2, SMALL_LENGTHS), **masks)
    assert torch.isfinite(out.output.float()).all()
    out.output.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cmu_maps_follow_eqs_3_to_5_written_out():
    """The fused form (alpha folded into the keys) equals softmax(E_s1 + alpha_s1 (.) E_s2 P^T) computed naively."""
    cfg = small_config(n_layers=1)
    model = build_model(cfg).eval()
    x = batch(cfg, 2, SMALL_LENGTHS)
    with torch.no_grad():
        info = model(**x, return_attention=True).attention["layers"][0]["l"]
        cmu = model.layers[0].cmu["l"]
        z = model.preprocess({m: x[f"x_{m}"] for m in "lva"}, {m: None for m in "lva"})
        d = cfg.d_model
        q = cmu.q_norm(cmu.q_proj(z["l"]))
        k1, k2 = (cmu.k_norm[j](cmu.k_proj[j](z[s])) for j, s in enumerate(("v", "a")))
        logits = torch.cat([z["v"].sum(-1), z["a"].sum(-1)], dim=1)
        alpha = torch.softmax(logits, dim=1)  # eq. 3
        alpha_v, alpha_a = alpha[:, :SMALL_LENGTHS["v"]], alpha[:, SMALL_LENGTHS["v"]:]
        ex = cmu.exchange[0]  # P_{v<-a}: rows over v's steps, a distribution over a's steps
        p_va = torch.softmax(ex.query(k1) @ ex.key(k2).transpose(1, 2) / d ** 0.5, dim=-1)
        e_v, e_a = q @ k1.transpose(1, 2) / d ** 0.5, q @ k2.transpose(1, 2) / d ** 0.5
        e_hat_a = e_a @ p_va.transpose(1, 2)  # (B, T_l, T_v)
        expected = torch.softmax(e_v + alpha_v[:, None, :] * e_hat_a, dim=-1)  # eq. 4
    assert torch.allclose(info["alpha_s1"], alpha_v, atol=1e-6) and torch.allclose(info["alpha_s2"], alpha_a)
    assert torch.allclose(info["cmu_s1"], expected, atol=1e-5)
    plain = torch.softmax(e_v, dim=-1)
    assert (expected - plain).abs().max() > 1e-4, "the mutual term must matter for this check to mean anything"
