"""MCRConfig serialisation and validation; Table 1 presets and their override files."""
from __future__ import annotations

import json

import pytest

from model import ABLATIONS, PRESETS, MCRConfig, build_model, load_preset
from model.mcr import MCR
from model.mult import MulT


def test_config_round_trips_through_json():
    cfg = MCRConfig(task="classification", n_classes=5, modalities=("l",), targets=("l",), max_len_l=30,
                    exchange="conv", time_bias="per_step")
    data = json.loads(json.dumps(cfg.to_dict()))
    back = MCRConfig.from_dict(data)
    assert back == cfg
    assert back.modalities == ("l",) and isinstance(back.modalities, tuple)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        MCRConfig.from_dict({"d_modle": 40})


@pytest.mark.parametrize("changes, message", [
    ({"arch": "lstm"}, "arch"),
    ({"task": "ranking"}, "task"),
    ({"modalities": ("l", "v")}, "modalities"),
    ({"targets": ("x",)}, "targets"),
    ({"use_cmu": False, "use_scu": False}, "cannot both"),
    ({"d_model": 40, "n_heads": 7}, "divisible"),
    ({"exchange": "conv"}, "max_len"),
    ({"structure": "serial", "use_scu": False}, "serial"),
])
def test_invalid_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        MCRConfig(**changes)


def test_every_table5_row_has_a_switch():
    rows = {"language_only", "video_only", "audio_only", "va_to_l_only", "la_to_v_only", "lv_to_a_only",
            "low_level_feature", "high_level_ffl", "sum_without_smm", "without_cmu", "without_mutual_attention",
            "without_scu", "without_attention_layer", "serial_structure"}
    assert rows <= set(ABLATIONS)
    for name in rows:
        assert MCRConfig().with_ablation(name) != MCRConfig(), name


def test_presets_match_table1():
    expected = {"mosi": (64, 1e-3, 120, 10, (3, 3, 3), 3), "mosei": (16, 1e-3, 30, 8, (3, 3, 3), 4),
                "iemocap": (32, 2e-3, 60, 10, (3, 3, 5), 3)}
    for name, (bs, lr, epochs, heads, kernels, layers) in expected.items():
        p = PRESETS[name]
        assert (p.batch_size, p.lr, p.epochs) == (bs, lr, epochs)
        m = p.model
        assert (m.d_model, m.n_heads, (m.kernel_l, m.kernel_v, m.kernel_a), m.n_layers) == (40, heads, kernels,
                                                                                          layers)
    assert PRESETS["iemocap"].model.task == "iemocap" and PRESETS["mosi"].model.task == "regression"


def test_build_model_picks_the_architecture():
    assert isinstance(build_model(MCRConfig(d_model=8, n_heads=2, n_layers=1)), MCR)
    assert isinstance(build_model(MCRConfig(arch="mult", d_model=8, n_heads=2, mult_layers=1,
                                            mult_mem_layers=1)), MulT)


def test_load_preset_applies_json_and_toml_overrides(tmp_path):
    js = tmp_path / "o.json"
    js.write_text(json.dumps({"epochs": 3, "model": {"n_layers": 2, "arch": "mult"}}))
    p = load_preset("mosei", js)
    assert (p.epochs, p.batch_size, p.model.n_layers, p.model.arch, p.model.n_heads) == (3, 16, 2, "mult", 8)
    toml = tmp_path / "o.toml"
    toml.write_text('lr = 0.0005\n[model]\ntask = "classification"\nn_classes = 7\n')
    p = load_preset("mosi", toml)
    assert (p.lr, p.model.task, p.model.n_classes, p.epochs) == (0.0005, "classification", 7, 120)
    assert PRESETS["mosi"].model.task == "regression", "load_preset must not mutate PRESETS"


def test_load_preset_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="unknown preset"):
        load_preset("cmu-mosi")
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": ')
    with pytest.raises(ValueError, match="bad.json"):
        load_preset("mosi", bad)
    typo = tmp_path / "typo.json"
    typo.write_text('{"epoch": 3}')
    with pytest.raises(ValueError, match="unknown keys"):
        load_preset("mosi", typo)
