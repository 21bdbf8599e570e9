"""Every Table 5 switch builds, runs, trains every parameter it has, and changes the parameters as its row says."""
from __future__ import annotations

import pytest
import torch

from model import ABLATIONS, build_model

from .helpers import SMALL_LENGTHS, batch, grads_missing, small_config


def _names(model) -> set[str]:
    return {n for n, _ in model.named_parameters()}


def _has(names: set[str], fragment: str) -> bool:
    return any(fragment in n for n in names)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_builds_runs_and_trains(name):
    cfg = small_config().with_ablation(name)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    out = model(**batch(cfg, 2, SMALL_LENGTHS))
    assert out.output.shape == (2, 1) and torch.isfinite(out.output).all()
    out.output.square().sum().backward()
    assert grads_missing(model) == []


def test_ablations_change_the_parameters_as_their_rows_say():
    full = _names(build_model(small_config()))
    assert _has(full, ".cmu.") and _has(full, ".scu.") and _has(full, "exchange") and _has(full, "attention_layer")
    assert _has(full, "sums.0.updates") and _has(full, ".w_s.") and _has(full, "combine")

    def names(ablation: str) -> set[str]:
        return _names(build_model(small_config().with_ablation(ablation)))

    # modality only: no parameters of the other modalities' pre-processing; one target, its sources itself
    lang = names("language_only")
    assert _has(lang, "preprocess.per_modality.l") and not _has(lang, "per_modality.v") \
        and not _has(lang, "per_modality.a")
    assert {n.split(".")[3] for n in lang if n.startswith("layers.0.cmu")} == {"l"}
    # one crossmodal direction: CMU/SCU for that target only; its sources update by feed-forward only
    va_l = names("va_to_l_only")
    assert {n.split(".")[3] for n in va_l if n.startswith("layers.") and ".cmu." in n} == {"l"}
    assert not _has(va_l, ".w_s.") and _has(va_l, "sums.0.updates.v.ffn") and not _has(va_l, "updates.l")
    assert _has(va_l, "combine.l") and not _has(va_l, "combine.v")
    # source modality reinforcement
    low = names("low_level_feature")
    assert not _has(low, "sums.")
    ffl = names("high_level_ffl")
    assert _has(ffl, "sums.0.updates") and not _has(ffl, ".w_s.") and not _has(ffl, "combine")
    no_smm = names("sum_without_smm")
    assert not _has(no_smm, ".w_s.") and not _has(no_smm, ".w_t.") and _has(no_smm, "combine")
    # target modality reinforcement
    no_cmu = names("without_cmu")
    assert not _has(no_cmu, ".cmu.") and _has(no_cmu, ".scu.")
    no_mutual = names("without_mutual_attention")
    assert _has(no_mutual, ".cmu.") and not _has(no_mutual, "exchange")
    no_scu = names("without_scu")
    assert not _has(no_scu, ".scu.") and not _has(no_scu, "combine") and _has(no_scu, ".cmu.")
    no_layer = names("without_attention_layer")
    assert _has(no_layer, ".scu.") and not _has(no_layer, "attention_layer")
    # serial: the same parameters, wired differently
    assert names("serial_structure") == full


def test_serial_structure_feeds_cmu_output_to_scu():
    torch.manual_seed(0)
    parallel = build_model(small_config()).eval()
    serial = build_model(small_config(structure="serial")).eval()
    serial.load_state_dict(parallel.state_dict())
    x = batch(parallel.cfg, 2, SMALL_LENGTHS)
    with torch.no_grad():
        assert not torch.allclose(parallel(**x).output, serial(**x).output)


def test_without_mutual_attention_is_plain_crossmodal_attention():
    """With alpha * E_hat removed, CMU's maps are softmax(Q K^T / sqrt(d)) exactly."""
    cfg = small_config(mutual_attention=False)
    model = build_model(cfg).eval()
    x = batch(cfg, 1, SMALL_LENGTHS)
    with torch.no_grad():
        out = model(**x, return_attention=True)
        info = out.attention["layers"][0]["l"]
        assert "alpha_s1" not in info
        cmu = model.layers[0].cmu["l"]
        z = model.preprocess({m: x[f"x_{m}"] for m in "lva"}, {m: None for m in "lva"})
        q = cmu.q_norm(cmu.q_proj(z["l"]))
        k = cmu.k_norm[0](cmu.k_proj[0](z["v"]))
        expected = torch.softmax(q @ k.transpose(1, 2) / cfg.d_model ** 0.5, dim=-1)
    assert torch.allclose(info["cmu_s1"], expected, atol=1e-5)


def test_unimodal_ignores_the_other_modalities():
    cfg = small_config(modalities=("v",))
    model = build_model(cfg).eval()
    x = batch(cfg, 2, SMALL_LENGTHS)
    with torch.no_grad():
        a = model(**x).output
        b = model(x_l=None, x_v=x["x_v"], x_a=None).output
    assert torch.equal(a, b)
