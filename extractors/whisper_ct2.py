"""Convert a CTranslate2 whisper model (as faster-whisper uses) into an openai-whisper checkpoint.

CTranslate2 has no Python reader for its ``model.bin``; the format is the one ``ModelSpec._serialize`` writes
(ctranslate2/specs/model_spec.py, binary version 6), all little-endian::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 ndim | ndim x u32 dim | u8 dtype_id | u32 nbytes | nbytes raw data)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is ``u16 length_with_nul | utf-8 bytes | NUL`` and dtype ids are (float32, int8, int16, int32,
float16, bfloat16). A model may be split into byte chunks (``model.bin.part1``, ``model.bin.part2``...): the
chunks of all given directories are concatenated in order.

The mapping (CTranslate2's ``WhisperSpec`` <- openai-whisper's ``Whisper``) is one-to-one except that
CTranslate2 fuses attention projections: self-attention ``linear_0`` = [query; key; value] (the key bias, absent
in whisper, is stored as zeros and checked to be so), cross-attention ``linear_0`` = query and ``linear_1`` =
[key; value]; the output projection is the last linear. Weights keep their dtype (float16 in the bundled models,
as in openai's own checkpoints). Quantized (int8) models are refused: dequantizing would not be faithful.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from pipeline.files import sha256_file, sha256_text

if TYPE_CHECKING:  # torch is imported where tensors are made: reading a model's files needs none
    import torch

CT2_BINARY_VERSION = 6
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16, handled apart
_EOT, _SOT = "<|endoftext|>", "<|startoftranscript|>"


def model_bin_chunks(directory: Path) -> list[Path]:
    """``model.bin``, or its ``model.bin.part1, part2, ...`` chunks in order."""
    if (directory / "model.bin").is_file():
        return [directory / "model.bin"]
    parts = sorted(directory.glob("model.bin.part*"), key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0))
    return parts


def read_ct2_model(chunks: list[Path]) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` (possibly in chunks) -> (spec name, {variable name: array}).

    Aliases are resolved to the array they name (same object). A truncated or corrupt file raises ValueError.
    """
    if not chunks:
        raise ValueError("no model.bin chunks given: a CTranslate2 model directory holds model.bin")
    data = memoryview(b"".join(p.read_bytes() for p in chunks))
    try:
        return _parse(data, chunks[0])
    except (struct.error, UnicodeDecodeError, IndexError, KeyError) as error:
        raise ValueError(f"{chunks[0]}: truncated or corrupt CTranslate2 model ({error})") from None


def _parse(data: memoryview, where: Path) -> tuple[str, dict[str, np.ndarray]]:
    """:func:`read_ct2_model` of the concatenated chunks; ``where`` names the file in errors."""
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal offset
        length = unpack("H")
        text = bytes(data[offset:offset + length - 1]).decode("utf-8")
        offset += length
        return text

    version = unpack("I")
    if version != CT2_BINARY_VERSION:
        raise ValueError(f"{where}: CTranslate2 binary version {version}, this reader knows {CT2_BINARY_VERSION}")
    spec = string()
    unpack("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = tuple(unpack("I") for _ in range(unpack("B")))
        dtype_id, nbytes = unpack("B"), unpack("I")
        raw = data[offset:offset + nbytes]
        offset += nbytes
        if len(raw) < nbytes:
            raise ValueError(f"{where}: truncated CTranslate2 model (variable {name} is cut short)")
        if _DTYPES[dtype_id] is None:  # bfloat16 -> float32 (exact)
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, _DTYPES[dtype_id])
        if array.size != int(np.prod(shape)):
            raise ValueError(f"{where}: variable {name} has {array.size} values for shape {shape} (truncated?)")
        variables[name] = array.reshape(shape)
    for _ in range(unpack("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if offset != len(data):
        raise ValueError(f"{where}: {len(data) - offset} trailing bytes after the model (corrupt, or chunks missing)")
    return spec, variables


def _count(variables: dict[str, np.ndarray], prefix: str) -> int:
    return len({m.group(1) for k in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", k))})


def dims_of(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper ``ModelDimensions`` fields read off the CTranslate2 variables."""
    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    return dict(
        n_mels=int(variables["encoder/conv1/weight"].shape[1]),
        n_audio_ctx=int(n_audio_ctx), n_audio_state=int(n_audio_state),
        n_audio_head=int(variables["encoder/num_heads"]), n_audio_layer=_count(variables, "encoder"),
        n_vocab=int(n_vocab), n_text_ctx=int(variables["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(n_text_state), n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=_count(variables, "decoder"),
    )


def _attention(out: dict, dst: str, get, src: str, *, fused_qkv: bool, d: int) -> None:
    """One attention block's query/key/value/out (+ its pre-norm) from CTranslate2's fused linears."""
    if fused_qkv:
        w, b = get(f"{src}/linear_0/weight"), get(f"{src}/linear_0/bias")  # (3d, d), (3d,)
        q_w, k_w, v_w = w[:d], w[d:2 * d], w[2 * d:]
        q_b, k_b, v_b = b[:d], b[d:2 * d], b[2 * d:]
        o = "linear_1"
    else:
        q_w, q_b = get(f"{src}/linear_0/weight"), get(f"{src}/linear_0/bias")
        kv_w, kv_b = get(f"{src}/linear_1/weight"), get(f"{src}/linear_1/bias")  # (2d, d), (2d,)
        k_w, v_w, k_b, v_b = kv_w[:d], kv_w[d:], kv_b[:d], kv_b[d:]
        o = "linear_2"
    if np.any(k_b):
        raise ValueError(f"{src}: whisper's key projection has no bias, this model's is non-zero")
    out.update({f"{dst}.query.weight": q_w, f"{dst}.query.bias": q_b, f"{dst}.key.weight": k_w,
                f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b,
                f"{dst}.out.weight": get(f"{src}/{o}/weight"), f"{dst}.out.bias": get(f"{src}/{o}/bias"),
                f"{dst}_ln.weight": get(f"{src}/layer_norm/gamma"), f"{dst}_ln.bias": get(f"{src}/layer_norm/beta")})


def _block(out: dict, dst: str, get, src: str, *, d: int, cross: bool) -> None:
    _attention(out, f"{dst}.attn", get, f"{src}/self_attention", fused_qkv=True, d=d)
    if cross:
        _attention(out, f"{dst}.cross_attn", get, f"{src}/attention", fused_qkv=False, d=d)
    out.update({f"{dst}.mlp.0.weight": get(f"{src}/ffn/linear_0/weight"),
                f"{dst}.mlp.0.bias": get(f"{src}/ffn/linear_0/bias"),
                f"{dst}.mlp.2.weight": get(f"{src}/ffn/linear_1/weight"),
                f"{dst}.mlp.2.bias": get(f"{src}/ffn/linear_1/bias"),
                f"{dst}.mlp_ln.weight": get(f"{src}/ffn/layer_norm/gamma"),
                f"{dst}.mlp_ln.bias": get(f"{src}/ffn/layer_norm/beta")})


def state_dict_of(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """openai-whisper ``model_state_dict`` from CTranslate2 ``WhisperSpec`` variables; every variable is used."""
    import torch

    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        used.add(name)
        return variables[name]

    if variables["encoder/conv1/weight"].dtype == np.int8 or any(k.endswith("/weight_scale") for k in variables):
        raise ValueError("quantized (int8) CTranslate2 model: convert a float16/float32 one instead")
    dims = dims_of(variables)
    flags = {k: bool(variables[k]) for k in ("decoder/scale_embeddings", "decoder/alibi")}
    if any(flags.values()):
        raise ValueError(f"not a whisper-like decoder: {flags}")
    out: dict[str, np.ndarray] = {
        "encoder.conv1.weight": get("encoder/conv1/weight"), "encoder.conv1.bias": get("encoder/conv1/bias"),
        "encoder.conv2.weight": get("encoder/conv2/weight"), "encoder.conv2.bias": get("encoder/conv2/bias"),
        "encoder.positional_embedding": get("encoder/position_encodings/encodings"),
        "encoder.ln_post.weight": get("encoder/layer_norm/gamma"),
        "encoder.ln_post.bias": get("encoder/layer_norm/beta"),
        "decoder.token_embedding.weight": get("decoder/embeddings/weight"),
        "decoder.positional_embedding": get("decoder/position_encodings/encodings"),
        "decoder.ln.weight": get("decoder/layer_norm/gamma"), "decoder.ln.bias": get("decoder/layer_norm/beta"),
    }
    for i in range(dims["n_audio_layer"]):
        _block(out, f"encoder.blocks.{i}", get, f"encoder/layer_{i}", d=dims["n_audio_state"], cross=False)
    for i in range(dims["n_text_layer"]):
        _block(out, f"decoder.blocks.{i}", get, f"decoder/layer_{i}", d=dims["n_text_state"], cross=True)
    projection, embedding = variables["decoder/projection/weight"], variables["decoder/embeddings/weight"]
    if not (np.shares_memory(projection, embedding) or np.array_equal(projection, embedding)):
        raise ValueError("whisper ties its output projection to the token embedding; this model does not")
    scalars_or_tied = {k for k, v in variables.items() if v.ndim == 0} | {"decoder/projection/weight"}
    unused = set(variables) - used - scalars_or_tied
    if unused:
        raise ValueError(f"CTranslate2 variables without an openai-whisper counterpart: {sorted(unused)}")
    return {k: torch.from_numpy(np.array(v)) for k, v in out.items()}  # copies: the buffer is read-only


def read_vocabulary(directory: Path) -> list[str]:
    """The CTranslate2 token list (``vocabulary.txt``, one per line, or ``vocabulary.json``)."""
    if (directory / "vocabulary.json").is_file():
        return json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
    return (directory / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]


def alignment_heads_mask(dims: dict[str, int], *, alignment_model: str | None, config: dict) -> torch.Tensor:
    """(n_text_layer, n_text_head) bool: openai-whisper's ``_ALIGNMENT_HEADS[alignment_model]`` when known,
    else the ``alignment_heads`` [[layer, head], ...] of CTranslate2's config.json, else whisper's default
    (every head of the last half of the layers)."""
    import gzip
    import base64

    import torch
    import whisper

    shape = (dims["n_text_layer"], dims["n_text_head"])
    if alignment_model in whisper._ALIGNMENT_HEADS:
        raw = gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS[alignment_model]))
        return torch.from_numpy(np.frombuffer(raw, dtype=bool).copy()).reshape(shape)
    mask = torch.zeros(shape, dtype=torch.bool)
    if config.get("alignment_heads"):
        for layer, head in config["alignment_heads"]:
            mask[layer, head] = True
    else:
        mask[shape[0] // 2:] = True
    return mask


def convert(directories: list[Path], output: Path | BinaryIO, *, alignment_model: str | None = None
            ) -> Path | BinaryIO:
    """Write the openai-whisper checkpoint of the CTranslate2 model in ``directories`` to ``output`` (a path or a
    binary file open for writing); returns ``output``.

    ``directories[0]`` holds ``config.json`` and the vocabulary; the ``model.bin`` chunks of all directories,
    in order, make the model. The checkpoint is ``{"dims", "model_state_dict", "alignment_heads"}`` (tensors
    and plain types only: loadable with ``torch.load(weights_only=True)``).
    """
    import torch

    directories = [Path(d) for d in directories]
    chunks = [c for d in directories for c in model_bin_chunks(d)]
    spec, variables = read_ct2_model(chunks)
    if spec != "WhisperSpec":
        raise ValueError(f"{directories[0]}: a CTranslate2 {spec}, not a whisper model")
    try:
        dims = dims_of(variables)
        state_dict = state_dict_of(variables)
    except KeyError as error:
        raise ValueError(f"{directories[0]}: not a whisper model, it lacks the variable {error}") from None
    except ValueError as error:
        raise ValueError(f"{directories[0]}: {error}") from None
    vocabulary = read_vocabulary(directories[0])
    if len(vocabulary) != dims["n_vocab"]:
        raise ValueError(f"{directories[0]}: {len(vocabulary)} vocabulary entries for {dims['n_vocab']} logits")
    # openai-whisper's tokenizer is chosen by n_vocab (multilingual iff >= 51865); check the ids agree with it
    multilingual = dims["n_vocab"] >= 51865
    for token, index in ((_EOT, 50257 if multilingual else 50256), (_SOT, 50258 if multilingual else 50257)):
        if vocabulary[index] != token:
            raise ValueError(f"{directories[0]}: the vocabulary disagrees with whisper's ({token} is not at {index})")
    config_path = directories[0] / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    checkpoint = {
        "dims": dims,
        "model_state_dict": state_dict,
        "alignment_heads": alignment_heads_mask(dims, alignment_model=alignment_model, config=config),
    }
    torch.save(checkpoint, output)
    return output


def directory_fingerprint(directory: Path) -> str:
    """A short stable id of a CTranslate2 model directory: name, size and first MiB of config.json and each chunk."""
    files = [p for p in [directory / "config.json", *model_bin_chunks(directory)] if p.is_file()]
    return sha256_text("\n".join(f"{p.name} {p.stat().st_size} {sha256_file(p, limit=1 << 20)}" for p in files))[:16]
