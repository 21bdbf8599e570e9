"""Which precision whisper's encoder runs at on CPU (``encoder_precision``): float32, or bfloat16 under torch's
CPU autocast where the CPU multiplies bfloat16 natively (measured: 1.2-1.3x faster, the same words; see
:mod:`extractors.whisper_words`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a model runs, not when a config is checked (2-3 s on 2 cores)
    import torch

ENCODER_PRECISIONS = ("auto", "float32", "bfloat16")


def check_encoder_precision(precision: str) -> None:
    """A ValueError naming the choices unless ``precision`` is one of ``ENCODER_PRECISIONS``."""
    if precision not in ENCODER_PRECISIONS:
        raise ValueError(f"encoder_precision {precision!r} is not one of {', '.join(ENCODER_PRECISIONS)}")


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX), where autocast pays."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def encoder_bfloat16(device: torch.device | str, precision: str) -> bool:
    """Whether :func:`extractors.whisper_words.encode` runs in bfloat16 at ``encoder_precision`` for a model on ``device`` (CPU only)."""
    import torch

    if torch.device(device).type != "cpu" or precision == "float32":
        return False
    return precision == "bfloat16" or native_bfloat16()
