"""The typed configuration of MCR (Yang et al. 2023, sections 3.2-3.4) and of the MulT baseline.

One dataclass, :class:`MCRConfig`, holds the sizes, the dropouts, the switch for every ablation row of the paper's
Table 5 (see :data:`ABLATIONS`) and the choice between the default length-free forms of the paper's
sequence-length-dependent parameters and their literal forms (see ``docs/model.md``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pipeline.arrays import IEMOCAP_EMOTIONS, TASKS
from pipeline.options import Bound, bounded, check_fields

MODALITIES = ("l", "v", "a")  # inside the model: language, visual, acoustic
ARCHS = ("mcr", "mult")
SOURCE_UPDATES = ("sum", "sum_no_smm", "ffl", "low_level")
STRUCTURES = ("parallel", "serial")
EXCHANGE_FORMS = ("attention", "conv")
BIAS_FORMS = ("shared", "per_step")
SCU_ATTENTION_FORMS = ("pooled", "flat")
POOLINGS = ("last", "mean")
FEATURES = Bound(int, 1, 100_000)  # input feature sizes (whisper-large's encoder states: 1280)
KERNEL = Bound(int, 1, 255)
LAYERS = Bound(int, 1, 64, why="a deeper model does not fit in memory")
RATE = Bound(float, 0, 1, high_open=True)  # dropouts
STEPS = Bound(int, 1, 10_000_000)
POOL = Bound(int, 1, 10_000)


@dataclass
class MCRConfig:
    """Everything that defines one model. ``to_dict``/``from_dict`` round-trip it through JSON."""

    # Input feature sizes d_{L,V,A} (GloVe 300, Facet 35, COVAREP 74 in the paper's section 4.2).
    d_l: int = bounded(300, FEATURES)
    d_v: int = bounded(35, FEATURES)
    d_a: int = bounded(74, FEATURES)
    arch: str = "mcr"
    """``"mcr"`` (the paper's model) or ``"mult"`` (Tsai et al. 2019, the paper's "MuT" row)."""
    task: str = "regression"
    """``"regression"`` (B, 1), ``"iemocap"`` (B, 4 emotions, 2 logits) or ``"classification"`` (B, n_classes)."""
    n_classes: int = bounded(2, Bound(int, 1, 100_000))
    """Number of classes for ``task="classification"``."""
    # Table 1: feature size, attention heads, kernel sizes L/V/A, reinforcement layers.
    d_model: int = bounded(40, Bound(int, 1, 4096, why="a wider model does not fit in memory"))
    n_heads: int = bounded(10, Bound(int, 1, 256))
    kernel_l: int = bounded(3, KERNEL)
    kernel_v: int = bounded(3, KERNEL)
    kernel_a: int = bounded(3, KERNEL)
    n_layers: int = bounded(3, LAYERS)
    n_encoder_layers: int = bounded(1, Bound(int, 0, 64, why=LAYERS.why))
    """Layers of the transformer encoder over [Z_L; Z_V; Z_A] (section 3.2; the paper does not give a number)."""
    ffn_mult: int = bounded(4, Bound(int, 1, 64))
    """Hidden size of every position-wise feed-forward layer, as a multiple of d_model."""
    pooling: str = "last"
    """How the encoder output becomes one vector per modality: its last real step (as MulT) or the masked mean."""
    # Dropouts (MulT's reference defaults, except attention-weight dropout; the paper gives none).
    embed_dropout: float = bounded(0.25, RATE)
    attn_dropout: float = bounded(0.0, RATE)
    """Dropout on attention weights. 0 by default: any other value makes PyTorch leave its fused attention kernel
    for one that materialises every (B, h, T_t, T_s) map (3x the memory on CPU at MOSI shapes)."""
    relu_dropout: float = bounded(0.1, RATE)
    res_dropout: float = bounded(0.1, RATE)
    out_dropout: float = bounded(0.0, RATE)

    # ---- Table 5 ablation switches (names in ABLATIONS) ----
    modalities: tuple[str, ...] = MODALITIES
    """Modalities the model uses: all three, or one ("Language/Video/Audio Only": sources = the modality itself)."""
    targets: tuple[str, ...] | None = None
    """Target modalities that are reinforced; None = all of ``modalities`` ("[V, A -> L] Only" = ("l",))."""
    source_update: str = "sum"
    """``"sum"`` (eqs. 12-16), ``"sum_no_smm"`` (eq. 14 replaced by a sum), ``"ffl"`` (feed-forward only),
    ``"low_level"`` (sources stay the pre-processed sequences)."""
    use_cmu: bool = True
    """False: "w/o CMU", Z_t = Z_tb and no CMU parameters exist."""
    mutual_attention: bool = True
    """False: "w/o Mutual Attention", eqs. 4-5 lose the alpha * E_hat term (no exchange parameters)."""
    use_scu: bool = True
    """False: "w/o SCU", Z_t = Z_ta and no SCU (nor Z_ds gate) parameters exist."""
    scu_attention_layer: bool = True
    """False: "w/o Attention Layer", eqs. 9-11 replaced by the sum of the two SCU branches."""
    structure: str = "parallel"
    """``"serial"``: "w/ Serial Structure", each layer runs CMU then SCU on CMU's output."""

    # ---- forms of the sequence-length-dependent parameters (docs/model.md, "Deviations") ----
    exchange: str = "attention"
    """Source-dimension exchange of eqs. 4-5: ``"attention"`` (length-free, default) or ``"conv"`` (literal 1-D
    convolution with T_s1 input and T_s2 output channels; needs max_len_*)."""
    exchange_kernel: int = bounded(1, KERNEL)
    """Kernel size (along the target time axis) of the literal exchange convolution."""
    time_bias: str = "shared"
    """Biases of eqs. 13 and 15: ``"shared"`` over time (R^d, default) or ``"per_step"`` (literal R^{T x d})."""
    scu_attention: str = "pooled"
    """Eq. 9: ``"pooled"`` (W in R^{d x d} per step, averaged over real steps, default) or ``"flat"`` (literal W in
    R^{T_t d x T_t d}; only where it fits, see LITERAL_PARAM_LIMIT)."""
    max_len_l: int | None = bounded(None, STEPS)
    max_len_v: int | None = bounded(None, STEPS)
    max_len_a: int | None = bounded(None, STEPS)

    # ---- stream rate (docs/model.md, "Deviations") ----
    pool_l: int = bounded(1, POOL)
    pool_v: int = bounded(1, POOL)
    pool_a: int = bounded(1, POOL)
    """pool_m > 1: every pool_m consecutive steps of modality m are averaged into one (over their real steps; padding
    is left out) before the pre-processing, so a 100 Hz acoustic stream with pool_a=4 reaches the model at 25 Hz and
    its attention costs 16x less. 1 (every step, as the paper) by default; training on a store sets it from
    ``TrainConfig.stream_rate``. max_len_m counts pooled steps."""

    # ---- MulT baseline ----
    mult_layers: int = bounded(5, LAYERS)
    """Layers of each of MulT's six crossmodal transformers (its reference code's default ``nlevels``)."""
    mult_mem_layers: int = bounded(3, LAYERS)
    """Layers of each of MulT's three memory (self-attention) transformers."""
    mult_kernel: int = bounded(1, KERNEL)
    """Kernel size of MulT's Conv1d input projections (1 in its reference code)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried along (e.g. the preset name); never read by the model."""

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        if self.targets is not None:
            self.targets = tuple(self.targets)
        self.validate()

    # -- derived --
    @property
    def active_targets(self) -> tuple[str, ...]:
        return self.modalities if self.targets is None else self.targets

    def sources_of(self, target: str) -> tuple[str, str]:
        """(s1, s2) for a target: the two other modalities, or (t, t) in a unimodal model (section 4.5.1)."""
        if len(self.modalities) == 1:
            return (target, target)
        s1, s2 = (m for m in self.modalities if m != target)
        return (s1, s2)

    def input_dim(self, m: str) -> int:
        return {"l": self.d_l, "v": self.d_v, "a": self.d_a}[m]

    def kernel(self, m: str) -> int:
        return {"l": self.kernel_l, "v": self.kernel_v, "a": self.kernel_a}[m]

    def max_len(self, m: str) -> int | None:
        return {"l": self.max_len_l, "v": self.max_len_v, "a": self.max_len_a}[m]

    def input_pool(self, m: str) -> int:
        """How many input steps of modality m become one (see ``pool_a``)."""
        return {"l": self.pool_l, "v": self.pool_v, "a": self.pool_a}[m]

    @property
    def output_dim(self) -> int:
        return {"regression": 1, "iemocap": 2 * len(IEMOCAP_EMOTIONS), "classification": self.n_classes}[self.task]

    @property
    def uses_literal_forms(self) -> bool:
        return self.exchange == "conv" or self.time_bias == "per_step" or self.scu_attention == "flat"

    def _check_numbers(self) -> None:
        """Every size and rate within its bound (:mod:`pipeline.options`); odd kernels."""
        check_fields(MCRConfig, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                     "MCRConfig.{}".format)
        for name in ("kernel_l", "kernel_v", "kernel_a"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"MCRConfig.{name}={getattr(self, name)}: must be odd, so that the convolution "
                                 "keeps the sequence length")

    def validate(self) -> None:
        def one_of(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"MCRConfig.{name}={value!r}; expected one of {allowed}")

        for name, allowed in (("arch", ARCHS), ("task", TASKS), ("source_update", SOURCE_UPDATES),
                              ("structure", STRUCTURES), ("exchange", EXCHANGE_FORMS), ("time_bias", BIAS_FORMS),
                              ("scu_attention", SCU_ATTENTION_FORMS), ("pooling", POOLINGS)):
            one_of(name, allowed)
        if len(self.modalities) not in (1, 3) or any(m not in MODALITIES for m in self.modalities) \
                or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"MCRConfig.modalities={self.modalities!r}: use all of {MODALITIES} or exactly one")
        if not self.active_targets or any(t not in self.modalities for t in self.active_targets):
            raise ValueError(f"MCRConfig.targets={self.targets!r} must be a non-empty subset of {self.modalities}")
        if not (self.use_cmu or self.use_scu):
            raise ValueError("MCRConfig: use_cmu and use_scu cannot both be False (nothing reinforces a target)")
        if self.structure == "serial" and not (self.use_cmu and self.use_scu):
            raise ValueError("MCRConfig: the serial structure needs both CMU and SCU")
        self._check_numbers()
        if self.d_model % self.n_heads:
            raise ValueError(f"MCRConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.task == "classification" and self.n_classes < 2:
            raise ValueError(f"MCRConfig.n_classes={self.n_classes} must be >= 2 for classification")
        if self.arch == "mult" and self.modalities != MODALITIES:
            raise ValueError("MCRConfig: the MulT baseline uses all three modalities")
        if self.arch == "mcr" and self.uses_literal_forms:
            missing = [m for m in self.modalities if self.max_len(m) is None]
            if missing:
                raise ValueError(f"MCRConfig: the literal length-dependent forms (exchange={self.exchange!r}, "
                                 f"time_bias={self.time_bias!r}, scu_attention={self.scu_attention!r}) need "
                                 f"max_len_{'/'.join(missing)}")

    # -- serialisation --
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["modalities"] = list(self.modalities)
        out["targets"] = None if self.targets is None else list(self.targets)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MCRConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"MCRConfig.from_dict: unknown keys {unknown}")
        return cls(**d)

    def replace(self, **changes: Any) -> "MCRConfig":
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def with_ablation(self, name: str) -> "MCRConfig":
        """This config with the switches of one Table 5 row (a key of :data:`ABLATIONS`)."""
        if name not in ABLATIONS:
            raise KeyError(f"unknown ablation {name!r}; known: {sorted(ABLATIONS)}")
        return self.replace(**ABLATIONS[name])


ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    # Importance of modality
    "language_only": {"modalities": ("l",)},
    "video_only": {"modalities": ("v",)},
    "audio_only": {"modalities": ("a",)},
    # Importance of crossmodal interaction
    "va_to_l_only": {"targets": ("l",)},
    "la_to_v_only": {"targets": ("v",)},
    "lv_to_a_only": {"targets": ("a",)},
    # Effectiveness of source modality reinforcement
    "low_level_feature": {"source_update": "low_level"},
    "high_level_ffl": {"source_update": "ffl"},
    "sum_without_smm": {"source_update": "sum_no_smm"},
    # Effectiveness of target modality reinforcement
    "without_cmu": {"use_cmu": False},
    "without_mutual_attention": {"mutual_attention": False},
    "without_scu": {"use_scu": False},
    "without_attention_layer": {"scu_attention_layer": False},
    # Rationality of structure
    "serial_structure": {"structure": "serial"},
}
"""Every row of the paper's Table 5, as the MCRConfig fields it changes."""
