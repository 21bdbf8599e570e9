"""Each equation of sections 3.3-3.4 recomputed independently in float64 from the paper's formula.

Every test builds a unit (or the model) in float64 with random parameters (biases and LayerNorm gains included, so
no term is trivially 0 or 1), runs it on random inputs whose masks pad some steps (at the end and at the start),
captures what the unit computes (``need_weights`` maps, forward hooks), and recomputes the equation with plain
torch ops written from the paper -- never through the module's own helpers (``attend``, ``masked_softmax``,
``selective_weights``, ``nn.Linear.forward``, ``nn.LayerNorm.forward``...): only the parameter tensors are read.

Where the default form deviates from the literal paper form (docs/model.md, "Deviations"), the default is tested as
documented and the literal form (``exchange="conv"``, ``scu_attention="flat"``, ``time_bias="per_step"``) as
written in the paper.
"""
from __future__ import annotations

import math

import pytest
import torch

from model import build_model
from model.cmu import CMU
from model.scu import SCU
from model.source_update import SourceCombination, SourceUpdate

from .helpers import SMALL_LENGTHS, batch, pad, small_config

F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
D = 8  # d
B = 3


# ---------------------------------------------------------------- independent float64 building blocks

def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """float64, eval mode, every parameter redrawn: matrices ~ N(0, 1/fan_in), vectors (biases, LN gains) ~ N(0, 0.5^2)
    (LN gains around 1)."""
    module.double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            noise = torch.randn(p.shape, generator=g, dtype=F64)
            if p.dim() >= 2:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * noise)
            else:
                p.copy_(0.5 * noise)
    return module


def affine(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    """x W^T (+ b): the parameters of an nn.Linear, applied by hand."""
    y = torch.einsum("...i,oi->...o", x, layer.weight)
    return y if layer.bias is None else y + layer.bias


def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def softmax(x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """exp(x_j) / sum_k exp(x_k) over the last axis, only over positions where ``keep`` (broadcastable) is True."""
    keep = torch.ones_like(x, dtype=torch.bool) if keep is None else keep.expand_as(x)
    shift = torch.where(keep, x, torch.full_like(x, -1e300)).amax(dim=-1, keepdim=True)
    e = torch.where(keep, torch.exp(x - shift), torch.zeros_like(x))
    return e / e.sum(dim=-1, keepdim=True)


def pff(x: torch.Tensor, ffn) -> torch.Tensor:
    """Position-wise feed-forward layer with skip connection (docs/model.md): x + W2 ReLU(W1 LN(x) + b1) + b2."""
    h = torch.clamp(affine(layer_norm(x, ffn.norm), ffn.fc1), min=0.0)
    return x + affine(h, ffn.fc2)


def make_mask(T: int, spans: list[tuple[int, int]]) -> torch.Tensor:
    """(len(spans), T) bool: sample b is real on steps [start, end)."""
    steps = torch.arange(T)
    return torch.stack([(steps >= a) & (steps < b) for a, b in spans])


def rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def capture(module: torch.nn.Module, store: dict, key: str, *, inputs: bool = False):
    """Forward hook storing a module's first output (or its positional inputs) under ``key``."""
    if inputs:
        return module.register_forward_pre_hook(lambda m, args: store.__setitem__(key, args))
    return module.register_forward_hook(
        lambda m, args, out: store.__setitem__(key, out[0] if isinstance(out, tuple) else out))


# ---------------------------------------------------------------- CMU (eqs. 3-5 and Z_ta)

T_S1, T_S2, T_T = 5, 4, 6
M_S1 = make_mask(T_S1, [(0, 5), (0, 3), (1, 5)])  # full, padded at the end, padded at the start
M_S2 = make_mask(T_S2, [(0, 2), (0, 4), (2, 4)])
M_T = make_mask(T_T, [(0, 6), (0, 4), (2, 6)])


def cmu_inputs(seed: int = 10):
    return rand(B, T_S1, D, seed=seed), rand(B, T_S2, D, seed=seed + 1), rand(B, T_T, D, seed=seed + 2)


def cmu_energies(cmu: CMU, z_s1, z_s2, z_t):
    """Q_t = LN(Z_t W_Qt), K_* = LN(Z_* W_K*), V_* = LN(Z_* W_V*), E_{*->t} = Q_t K_*^T / sqrt(d), alpha (eq. 3)."""
    q = layer_norm(affine(z_t, cmu.q_proj), cmu.q_norm)
    k = [layer_norm(affine(z, cmu.k_proj[j]), cmu.k_norm[j]) for j, z in enumerate((z_s1, z_s2))]
    v = [layer_norm(affine(z, cmu.v_proj[j]), cmu.v_norm[j]) for j, z in enumerate((z_s1, z_s2))]
    e = [q @ kj.transpose(1, 2) / math.sqrt(D) for kj in k]  # (B, T_t, T_*)
    # eq. 3: alpha = softmax([Z_s1; Z_s2] . 1) over the T_s1 + T_s2 real steps, split into alpha_s1, alpha_s2
    alpha = softmax(torch.cat([z_s1, z_s2], dim=1) @ torch.ones(D, dtype=F64), torch.cat([M_S1, M_S2], dim=1))
    return q, k, v, e, (alpha[:, :T_S1], alpha[:, T_S1:])


def attention_exchange(ex, k_self, k_other, m_other, e_other):
    """Default (documented) exchange: P_{self<-other} = softmax_{other's real steps}((K_self W_x)(K_other W_y)^T
    / sqrt(d)), E^_{other->t} = E_{other->t} P^T (B, T_t, T_self)."""
    p = softmax(affine(k_self, ex.query) @ affine(k_other, ex.key).transpose(1, 2) / math.sqrt(D), m_other[:, None, :])
    return e_other @ p.transpose(1, 2)


@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "no_mutual"])
def test_eq5_and_eq4_reweighted_mutual_attention_default_exchange(mutual):
    """Eq. 5: Z_{s2->t} = softmax(E_{s2->t} + alpha_s2 (.) E^_{s1->t}) V_s2 (and its mirror eq. 4,
    Z_{s1->t} = softmax(E_{s1->t} + alpha_s1 (.) E^_{s2->t}) V_s1), alpha_* scaling the columns (source steps), the
    softmax over the real source steps. Default exchange E^_{s1->t} = E_{s1->t} P_{s2<-s1}^T (docs/model.md).
    "w/o Mutual Attention" drops the alpha (.) E^ term: softmax(E_{*->t}) V_*."""
    cmu = randomize(CMU(D, 2 * D, mutual_attention=mutual, exchange="attention", attn_dropout=0.0,
                        relu_dropout=0.0, res_dropout=0.0), seed=1)
    z_s1, z_s2, z_t = cmu_inputs()
    with torch.no_grad():
        _, info = cmu(z_s1, z_s2, z_t, M_S1, M_S2, M_T, need_weights=True)
        q, k, v, e, alpha = cmu_energies(cmu, z_s1, z_s2, z_t)
        logits = list(e)
        if mutual:
            e_hat_s1 = attention_exchange(cmu.exchange[1], k[1], k[0], M_S1, e[0])  # (B, T_t, T_s2)
            e_hat_s2 = attention_exchange(cmu.exchange[0], k[0], k[1], M_S2, e[1])  # (B, T_t, T_s1)
            logits = [e[0] + alpha[0][:, None, :] * e_hat_s2, e[1] + alpha[1][:, None, :] * e_hat_s1]
        w_s1 = softmax(logits[0], M_S1[:, None, :])  # eq. 4
        w_s2 = softmax(logits[1], M_S2[:, None, :])  # eq. 5
    torch.testing.assert_close(info["cmu_s2"], w_s2, **TOL)
    torch.testing.assert_close(info["cmu_s1"], w_s1, **TOL)
    assert (info["cmu_s2"] * ~M_S2[:, None, :]).abs().max() == 0, "padded source steps get no weight"
    if mutual:
        torch.testing.assert_close(info["alpha_s1"], alpha[0], **TOL)
        torch.testing.assert_close(info["alpha_s2"], alpha[1], **TOL)
        plain = softmax(e[1], M_S2[:, None, :])
        assert (w_s2 - plain).abs().max() > 1e-3, "the alpha (.) E^ term must matter for this test to mean anything"
    else:
        assert "alpha_s1" not in info


@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "no_mutual"])
@pytest.mark.parametrize("need_weights", [False, True], ids=["fused", "maps"])
def test_z_ta_sum_of_ln_target_and_both_source_flows(mutual, need_weights):
    """Section 3.3.1: Z_ta^{[i]} = LN(Z_t^{[i]}) + Z_{s1->t}^{[i]} + Z_{s2->t}^{[i]} (eqs. 4-5 in full: the softmax maps
    times V_*), then Z_ta^{[i+1]} = Z_ta^{[i]} + PFF(Z_ta^{[i]}). Checked on the fused path (alpha folded into the keys,
    torch's fused kernel) and on the path that materialises the maps."""
    cmu = randomize(CMU(D, 2 * D, mutual_attention=mutual, exchange="attention", attn_dropout=0.0,
                        relu_dropout=0.0, res_dropout=0.0), seed=2)
    z_s1, z_s2, z_t = cmu_inputs(seed=20)
    seen: dict = {}
    capture(cmu.ffn, seen, "z_ta", inputs=True)
    with torch.no_grad():
        out, _ = cmu(z_s1, z_s2, z_t, M_S1, M_S2, M_T, need_weights=need_weights)
        q, k, v, e, alpha = cmu_energies(cmu, z_s1, z_s2, z_t)
        logits = list(e)
        if mutual:
            logits = [e[0] + alpha[0][:, None, :] * attention_exchange(cmu.exchange[0], k[0], k[1], M_S2, e[1]),
                      e[1] + alpha[1][:, None, :] * attention_exchange(cmu.exchange[1], k[1], k[0], M_S1, e[0])]
        z_s1_t = softmax(logits[0], M_S1[:, None, :]) @ v[0]  # eq. 4
        z_s2_t = softmax(logits[1], M_S2[:, None, :]) @ v[1]  # eq. 5
        z_ta = layer_norm(z_t, cmu.t_norm) + z_s1_t + z_s2_t
        expected = pff(z_ta, cmu.ffn)
    torch.testing.assert_close(seen["z_ta"][0], z_ta, **TOL)
    torch.testing.assert_close(out, expected, **TOL)


def conv_exchange(conv: torch.nn.Conv1d, e_other: torch.Tensor, t_self: int) -> torch.Tensor:
    """Literal exchange, written as the convolution sum: a 1-D convolution along the target time axis whose input
    channels are the other source's steps and output channels this source's steps ('same' zero padding):
    E^[b, tau, c] = bias[c] + sum_{c', k} W[c, c', k] E[b, tau + k - K//2, c']."""
    T_t, T_other = e_other.shape[1], e_other.shape[2]
    K = conv.weight.shape[2]
    out = conv.bias[:t_self].expand(e_other.shape[0], T_t, t_self).clone()
    for kk in range(K):
        shift = kk - K // 2
        shifted = torch.zeros_like(e_other)
        for tau in range(T_t):
            if 0 <= tau + shift < T_t:
                shifted[:, tau] = e_other[:, tau + shift]
        out += torch.einsum("bti,ci->btc", shifted, conv.weight[:t_self, :T_other, kk])
    return out


@pytest.mark.parametrize("kernel", [1, 3])
def test_eq4_eq5_literal_conv_exchange(kernel):
    """Eqs. 4-5 with the paper's literal exchange (exchange="conv"): E^_{s1->t} in R^{T_t x T_s2} is a 1-D convolution
    of E_{s1->t} with T_s1 input and T_s2 output channels; Z_{s2->t} = softmax(E_{s2->t} + alpha_s2 (.) E^_{s1->t})
    V_s2, Z_{s1->t} likewise, Z_ta = LN(Z_t) + Z_{s1->t} + Z_{s2->t} + PFF. As documented, E's padded target rows and
    padded source columns are zero before the convolution; the maximum lengths exceed the inputs' (channel slicing)."""
    cmu = randomize(CMU(D, 2 * D, mutual_attention=True, exchange="conv", exchange_kernel=kernel,
                        max_len_s1=T_S1 + 2, max_len_s2=T_S2 + 1, attn_dropout=0.0, relu_dropout=0.0,
                        res_dropout=0.0), seed=3)
    z_s1, z_s2, z_t = cmu_inputs(seed=30)
    with torch.no_grad():
        out, info = cmu(z_s1, z_s2, z_t, M_S1, M_S2, M_T, need_weights=True)
        q, k, v, e, alpha = cmu_energies(cmu, z_s1, z_s2, z_t)
        real = [M_T[:, :, None] & M_S1[:, None, :], M_T[:, :, None] & M_S2[:, None, :]]
        e0 = [e[j] * real[j] for j in range(2)]  # padded rows and columns zeroed
        e_hat_s2 = conv_exchange(cmu.exchange[0].conv, e0[1], T_S1)  # (B, T_t, T_s1)
        e_hat_s1 = conv_exchange(cmu.exchange[1].conv, e0[0], T_S2)  # (B, T_t, T_s2)
        w_s1 = softmax(e[0] + alpha[0][:, None, :] * e_hat_s2, M_S1[:, None, :])  # eq. 4
        w_s2 = softmax(e[1] + alpha[1][:, None, :] * e_hat_s1, M_S2[:, None, :])  # eq. 5
        expected = pff(layer_norm(z_t, cmu.t_norm) + w_s1 @ v[0] + w_s2 @ v[1], cmu.ffn)
    rows = M_T  # what a padded target row holds is irrelevant; the real rows must match exactly
    torch.testing.assert_close(info["cmu_s2"][rows], w_s2[rows], **TOL)
    torch.testing.assert_close(info["cmu_s1"][rows], w_s1[rows], **TOL)
    torch.testing.assert_close(out[rows], expected[rows], **TOL)
    assert (w_s2 - softmax(e[1], M_S2[:, None, :]))[rows].abs().max() > 1e-3, "the exchange term must matter"


# ---------------------------------------------------------------- SCU (eqs. 9-11)

T_DS = T_S1 + T_S2
M_DS = torch.cat([M_S1, M_S2], dim=1)


def run_scu(scu: SCU, seed: int):
    z_ds, z_t = rand(B, T_DS, D, seed=seed), rand(B, T_T, D, seed=seed + 1)
    seen: dict = {}
    capture(scu.cross, seen, "z_ds_t")  # eq. 7's output Z_{ds->t}
    capture(scu.self_attn, seen, "z_t")  # eq. 8's output Z'_t
    capture(scu.ffn, seen, "z_tb", inputs=True)  # eq. 11's Z_tb, before the PFF
    with torch.no_grad():
        out, info = scu(z_ds, z_t, M_DS, M_T, need_weights=True)
        out_fused, _ = scu(z_ds, z_t, M_DS, M_T, need_weights=False)
    torch.testing.assert_close(out_fused, out, **TOL)
    return seen, out, info["scu_gamma"]


def check_eqs_10_11(scu: SCU, seen: dict, out, gamma, beta: torch.Tensor) -> None:
    """beta (B, 2) [ds->t, t] from eq. 9 -> eq. 10 gamma, eq. 11 Z_tb, then the PFF with skip."""
    # eq. 9 alone: gamma is a softmax of beta, so log(gamma_ds / gamma_t) = beta_ds - beta_t
    torch.testing.assert_close(torch.log(gamma[:, 0] / gamma[:, 1]), beta[:, 0] - beta[:, 1], **TOL)
    # eq. 10: gamma_* = exp(beta_*) / sum_{* in {ds->t, t}} exp(beta_*)
    expected_gamma = torch.exp(beta) / torch.exp(beta).sum(dim=1, keepdim=True)
    torch.testing.assert_close(gamma, expected_gamma, **TOL)
    assert ((gamma > 0.02) & (gamma < 0.98)).all(), "both branches must carry weight for eq. 11 to be tested"
    # eq. 11: Z_tb = sum_* gamma_* (.) Z_*
    z_tb = expected_gamma[:, 0, None, None] * seen["z_ds_t"] + expected_gamma[:, 1, None, None] * seen["z_t"]
    torch.testing.assert_close(seen["z_tb"][0], z_tb, **TOL)
    torch.testing.assert_close(out, pff(z_tb, scu.ffn), **TOL)


def test_eq9_to_11_pooled_attention_layer_default():
    """Eq. 9 (default pooled form, docs/model.md): W_* = I_T (x) W_d, U = 1_T (x) u averaged over the real target
    steps, beta_* = (1/|real|) sum_{real tau} u^T (W_* z_{*,tau} + b_*); eq. 10 gamma_* = exp(beta_*) / sum exp(beta);
    eq. 11 Z_tb = gamma_{ds->t} (.) Z_{ds->t} + gamma_t (.) Z'_t; Z_tb^{[i+1]} = Z_tb + PFF(Z_tb)."""
    scu = randomize(SCU(D, 2, 2 * D, attention_layer=True, form="pooled", attn_dropout=0.0, relu_dropout=0.0,
                        res_dropout=0.0), seed=4)
    seen, out, gamma = run_scu(scu, seed=40)
    layer = scu.attention_layer
    u = layer.u.weight[0]  # (d,), no bias
    betas = []
    with torch.no_grad():
        for j, z in enumerate((seen["z_ds_t"], seen["z_t"])):
            w, b = layer.w[j].weight, layer.w[j].bias
            per_step = torch.stack([torch.stack([u @ (w @ z[n, tau] + b) for tau in range(T_T)])
                                    for n in range(B)])  # (B, T_t)
            m = M_T.to(F64)
            betas.append((per_step * m).sum(dim=1) / m.sum(dim=1))
        check_eqs_10_11(scu, seen, out, gamma, torch.stack(betas, dim=1))


def test_eq9_to_11_flat_attention_layer_literal():
    """Eq. 9 literal (scu_attention="flat"): Z^_* in R^{T d x 1} is Z_* reshaped (step after step; padded steps zeroed
    and the vector zero-filled to T_max d, as documented), beta_* = U^T (W_* Z^_* + b_*) with
    W_* in R^{T d x T d}, b_*, U in R^{T d}; eqs. 10-11 as in the default form."""
    T_max = T_T + 1
    scu = randomize(SCU(D, 2, 2 * D, attention_layer=True, form="flat", max_len_t=T_max, attn_dropout=0.0,
                        relu_dropout=0.0, res_dropout=0.0), seed=5)
    seen, out, gamma = run_scu(scu, seed=50)
    layer = scu.attention_layer
    U = layer.u.weight[0]  # (T_max d,)
    betas = []
    with torch.no_grad():
        for j, z in enumerate((seen["z_ds_t"], seen["z_t"])):
            w, b = layer.w[j].weight, layer.w[j].bias
            beta_j = []
            for n in range(B):
                rows = [z[n, tau] if tau < T_T and M_T[n, tau] else torch.zeros(D, dtype=F64) for tau in range(T_max)]
                z_hat = torch.cat(rows)  # (T_max d,)
                beta_j.append(U @ (w @ z_hat + b))
            betas.append(torch.stack(beta_j))
        check_eqs_10_11(scu, seen, out, gamma, torch.stack(betas, dim=1))


# ---------------------------------------------------------------- SUM (eqs. 13-16)

T_S = 6


@pytest.mark.parametrize("time_bias", ["shared", "per_step"])
def test_eq13_eq14_selective_memory(time_bias):
    """Eq. 13: mu_s = sigma(Z^_s W^_s + Z_t^{[i+1]} W_t + b^_s + b_t), Z^_s = F_s(Z_s^{[i]}) (PFF with skip);
    eq. 14: Z_s^{[i+1]} = (1 - mu_s) (.) tanh(Z_t^{[i+1]}) + mu_s (.) Z^_s. Biases: shared over time (R^d, default)
    or literal per step (R^{T_s x d}, rows 0..T_s-1 of a T_max x d table). mu_s is also read back from the output
    (mu = (Z_s^{[i+1]} - tanh Z_t) / (Z^_s - tanh Z_t)) so that eq. 13 is checked on its own."""
    max_len = None if time_bias == "shared" else T_S + 3
    unit = randomize(SourceUpdate(D, 2 * D, mode="sum", has_target=True, max_len=max_len, relu_dropout=0.0,
                                  res_dropout=0.0), seed=6)
    z_s, z_t = rand(B, T_S, D, seed=60), rand(B, T_S, D, seed=61)
    seen: dict = {}
    capture(unit.ffn, seen, "z_hat")
    with torch.no_grad():
        out = unit(z_s, z_t)
        z_hat = pff(z_s, unit.ffn)
        b_hat_s = unit.b_s.bias if max_len is None else unit.b_s.bias[:T_S]  # (d,) or (T_s, d)
        b_t = unit.b_t.bias if max_len is None else unit.b_t.bias[:T_S]
        mu = sigmoid(z_hat @ unit.w_s.weight.T + z_t @ unit.w_t.weight.T + b_hat_s + b_t)  # eq. 13
        expected = (1 - mu) * torch.tanh(z_t) + mu * z_hat  # eq. 14
    torch.testing.assert_close(seen["z_hat"], z_hat, **TOL)
    torch.testing.assert_close(out, expected, **TOL)
    denom = z_hat - torch.tanh(z_t)
    ok = denom.abs() > 1e-2
    mu_read = (out - torch.tanh(z_t)) / denom
    torch.testing.assert_close(mu_read[ok], mu[ok], rtol=1e-9, atol=1e-9)
    assert ok.float().mean() > 0.9 and ((mu > 0.05) & (mu < 0.95)).float().mean() > 0.5


@pytest.mark.parametrize("time_bias, lengths", [("shared", (5, 4)), ("per_step", (5, 4)), ("per_step", (7, 8))],
                         ids=["shared", "per_step-shorter_than_max", "per_step-at_max"])
def test_eq15_eq16_gated_source_combination(time_bias, lengths):
    """Eq. 15: phi = sigma([Z_s1^{[i+1]}; Z_s2^{[i+1]}] W_s + b_s); eq. 16: Z_ds^{[i+1]} = phi (.) tanh([Z_s1; Z_s2]).
    Literal b_s in R^{(T_s1+T_s2) x d}: at the maximum lengths it is [b_s1 table; b_s2 table]; at shorter lengths each
    source's steps keep their own rows (docs/model.md). Shared: one R^d bias per source block. phi is also read back
    from the output (Z_ds / tanh([Z_s1; Z_s2])) so that eq. 15 is checked on its own."""
    max1, max2 = 7, 8
    T1, T2 = lengths
    shared = time_bias == "shared"
    unit = randomize(SourceCombination(D, max_len_s1=None if shared else max1, max_len_s2=None if shared else max2),
                     seed=7)
    z1, z2 = rand(B, T1, D, seed=70), rand(B, T2, D, seed=71)
    with torch.no_grad():
        out = unit(z1, z2)
        z = torch.cat([z1, z2], dim=1)  # [Z_s1; Z_s2] (B, T1 + T2, d)
        if shared:
            b = torch.stack([unit.b_s1.bias] * T1 + [unit.b_s2.bias] * T2)
        elif (T1, T2) == (max1, max2):
            b = torch.cat([unit.b_s1.bias, unit.b_s2.bias])  # the paper's b_s in R^{(T_s1+T_s2) x d}
        else:
            b = torch.cat([unit.b_s1.bias[:T1], unit.b_s2.bias[:T2]])
        phi = sigmoid(z @ unit.w.weight.T + b)  # eq. 15
        expected = phi * torch.tanh(z)  # eq. 16
    assert b.shape == (T1 + T2, D)
    torch.testing.assert_close(out, expected, **TOL)
    ok = torch.tanh(z).abs() > 1e-2
    torch.testing.assert_close((out / torch.tanh(z))[ok], phi[ok], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- the layer stack: Z_t = Z_ta + Z_tb, SUM wiring

def _model_inputs(cfg, seed: int = 0):
    x = {k: v.double() for k, v in batch(cfg, B, SMALL_LENGTHS, seed=seed).items()}
    masks = {}
    for i, m in enumerate("lva"):
        x[f"x_{m}"], masks[f"mask_{m}"] = pad(x[f"x_{m}"], None, 2, seed=seed + i)
        x[f"x_{m}"] = x[f"x_{m}"].double()
        masks[f"mask_{m}"][1, SMALL_LENGTHS[m] - 2:] = False  # one sample shorter still
    return x, masks


@pytest.mark.parametrize("literal", [False, True], ids=["default", "literal"])
def test_z_t_is_z_ta_plus_z_tb_and_feeds_sum(literal):
    """Section 3.2 / 3.4: Z_t^{[i+1]} = Z_ta^{[i+1]} + Z_tb^{[i+1]} (CMU's and SCU's outputs of the same layer);
    SUM^{[i]} (eq. 12) gates each source s against Z_t^{[i+1]} of the same modality (eqs. 13-14,
    Z^_s = F_s(Z_s^{[i]})), builds each target's Z_ds^{[i+1]} from its own (s1, s2) (eqs. 15-16), and layer i+1's
    CMU/SCU read exactly these. Layer 0 reads the pre-processed sequences and Z_ds^{[0]} = [Z_s1; Z_s2]."""
    extra = dict(exchange="conv", exchange_kernel=3, time_bias="per_step", scu_attention="flat",
                 max_len_l=10, max_len_v=14, max_len_a=12) if literal else {}
    cfg = small_config(n_layers=2, **extra)
    model = randomize(build_model(cfg), seed=8)
    x, masks = _model_inputs(cfg)
    seen: dict = {}
    capture(model.preprocess, seen, "z0")
    for i in range(2):
        for t in "lva":
            capture(model.layers[i].cmu[t], seen, f"cmu{i}{t}")
            capture(model.layers[i].cmu[t], seen, f"cmu_in{i}{t}", inputs=True)
            capture(model.layers[i].scu[t], seen, f"scu{i}{t}")
            capture(model.layers[i].scu[t], seen, f"scu_in{i}{t}", inputs=True)
        capture(model.layers[i], seen, f"layer{i}")
    model.sums[0].register_forward_hook(lambda m, args, out: seen.__setitem__("sum", out))
    with torch.no_grad():
        model(**x, **masks)
        z0 = seen["z0"]
        new_src, z_ds = seen["sum"]
        for t in "lva":
            s1, s2 = cfg.sources_of(t)
            # layer 0 inputs: the pre-processed copies, Z_ds^{[0]} = [Z_s1; Z_s2]
            for j, s in enumerate((s1, s2)):
                torch.testing.assert_close(seen[f"cmu_in0{t}"][j], z0[s], rtol=0, atol=0)
            torch.testing.assert_close(seen[f"scu_in0{t}"][0], torch.cat([z0[s1], z0[s2]], dim=1), rtol=0, atol=0)
            for i in range(2):  # Z_t^{[i+1]} = Z_ta^{[i+1]} + Z_tb^{[i+1]}
                torch.testing.assert_close(seen[f"layer{i}"][t], seen[f"cmu{i}{t}"] + seen[f"scu{i}{t}"], **TOL)
            # SUM^{[0]}: eqs. 13-14 for source s = t's modality, against Z_t^{[1]} of the same modality
            up = model.sums[0].updates[t]
            z_hat = pff(z0[t], up.ffn)
            z_t1 = seen["layer0"][t]
            T = z_t1.shape[1]
            bias = (up.b_s.bias[:T] + up.b_t.bias[:T]) if literal else (up.b_s.bias + up.b_t.bias)
            mu = sigmoid(z_hat @ up.w_s.weight.T + z_t1 @ up.w_t.weight.T + bias)
            torch.testing.assert_close(new_src[t], (1 - mu) * torch.tanh(z_t1) + mu * z_hat, **TOL)
        for t in "lva":
            s1, s2 = cfg.sources_of(t)
            comb = model.sums[0].combine[t]
            z = torch.cat([new_src[s1], new_src[s2]], dim=1)
            T1, T2 = new_src[s1].shape[1], new_src[s2].shape[1]
            if literal:
                b = torch.cat([comb.b_s1.bias[:T1], comb.b_s2.bias[:T2]])
            else:
                b = torch.stack([comb.b_s1.bias] * T1 + [comb.b_s2.bias] * T2)
            expected_ds = sigmoid(z @ comb.w.weight.T + b) * torch.tanh(z)  # eqs. 15-16
            torch.testing.assert_close(z_ds[t], expected_ds, **TOL)
            # layer 1 reads Z_s^{[1]}, Z_ds^{[1]} and Z_t^{[1]}
            torch.testing.assert_close(seen[f"cmu_in1{t}"][0], new_src[s1], rtol=0, atol=0)
            torch.testing.assert_close(seen[f"cmu_in1{t}"][1], new_src[s2], rtol=0, atol=0)
            torch.testing.assert_close(seen[f"cmu_in1{t}"][2], seen["layer0"][t], rtol=0, atol=0)
            torch.testing.assert_close(seen[f"scu_in1{t}"][0], z_ds[t], rtol=0, atol=0)
            torch.testing.assert_close(seen[f"scu_in1{t}"][1], seen["layer0"][t], rtol=0, atol=0)


def test_serial_structure_feeds_z_ta_to_scu():
    """"w/ Serial Structure" (Table 5, docs/model.md): Z_t^{[i+1]} = SCU(Z_ds^{[i]}, CMU(Z_s1, Z_s2, Z_t^{[i]})),
    no sum."""
    cfg = small_config(n_layers=1, structure="serial")
    model = randomize(build_model(cfg), seed=9)
    x, masks = _model_inputs(cfg, seed=3)
    seen: dict = {}
    for t in "lva":
        capture(model.layers[0].cmu[t], seen, f"cmu{t}")
        capture(model.layers[0].scu[t], seen, f"scu{t}")
        capture(model.layers[0].scu[t], seen, f"scu_in{t}", inputs=True)
    capture(model.layers[0], seen, "layer")
    with torch.no_grad():
        model(**x, **masks)
    for t in "lva":
        torch.testing.assert_close(seen[f"scu_in{t}"][1], seen[f"cmu{t}"], rtol=0, atol=0)
        torch.testing.assert_close(seen["layer"][t], seen[f"scu{t}"], rtol=0, atol=0)
