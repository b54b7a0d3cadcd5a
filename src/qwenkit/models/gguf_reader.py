"""A bounded reader for GGUF headers: metadata and tensor table, never the weights.

Every count and length in a GGUF header is checked against the bytes left in the file *before*
anything is read or allocated, so a truncated, corrupt or hostile file (a header claiming 2**60
tensors, a string of 2**63 bytes) fails at once with a ModelFormatError instead of hanging or
exhausting memory. The file is memory-mapped; only the header pages are touched.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

from qwenkit.errors import ModelFormatError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 3
MAX_STRING_BYTES = 64 << 20
DEFAULT_ALIGNMENT = 32
TOKENS_KEY = "tokenizer.ggml.tokens"
_MIN_TENSOR_INFO = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset
_MIN_KV = 8 + 4 + 1  # key length, value type, smallest value
_STRING, _ARRAY = 8, 9
# GGUF value type -> (struct format, size)
_SCALARS: Mapping[int, tuple[str, int]] = MappingProxyType({
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
})
_MIN_SIZE: Mapping[int, int] = MappingProxyType(
    {**{k: v[1] for k, v in _SCALARS.items()}, _STRING: 8, _ARRAY: 12}
)
SPECIAL_TOKEN_KEYS: Mapping[str, str] = MappingProxyType({
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "eot": "tokenizer.ggml.eot_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
})

Scalar = Union[int, float, bool, str]  # noqa: UP007  (a runtime alias; 3.10 needs Union)


@dataclass(frozen=True)
class SpecialToken:
    role: str  # bos, eos, eot, pad, unk
    id: int
    text: str | None


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]
    type_name: str
    n_elements: int
    offset: int  # from the start of the data section


@dataclass(frozen=True)
class GGUFMetadata:
    """What a GGUF says about itself. ``metadata`` holds every scalar key; arrays only by length."""

    path: Path
    version: int
    file_size: int
    architecture: str
    metadata: Mapping[str, Scalar] = field(repr=False)
    array_lengths: Mapping[str, int] = field(repr=False)
    tensors: tuple[GGUFTensor, ...] = field(repr=False)
    special_tokens: tuple[SpecialToken, ...] = ()
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0
    chat_template: str | None = field(default=None, repr=False)

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def token_count(self) -> int:
        return self.array_lengths.get(TOKENS_KEY, 0)

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def file_type_name(self) -> str | None:
        return None if self.file_type is None else file_type_name(self.file_type)

    def arch_int(self, key: str) -> int | None:
        """An integer ``<architecture>.<key>`` (e.g. ``block_count``), None when absent or not an int."""
        value = self.metadata.get(f"{self.architecture}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    def tensor_type_histogram(self) -> dict[str, int]:
        return dict(Counter(t.type_name for t in self.tensors).most_common())


@lru_cache(maxsize=1)
def _gguf_tables() -> tuple[dict[int, str], dict[int, str], dict[int, tuple[int, int]]]:
    """(file type names, tensor type names, tensor type -> (block size, bytes per block)) from ``gguf``."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
    except ImportError:
        return {}, {}, {}
    file_types = {int(t): t.name.removeprefix("MOSTLY_").removeprefix("ALL_") for t in LlamaFileType}
    tensor_types = {int(t): t.name for t in GGMLQuantizationType}
    sizes = {int(t): (int(b), int(s)) for t, (b, s) in GGML_QUANT_SIZES.items()}
    return file_types, tensor_types, sizes


def file_type_name(value: int) -> str:
    """llama.cpp's ``general.file_type`` number as a name, e.g. 15 -> Q4_K_M."""
    return _gguf_tables()[0].get(value, f"file type {value}")


class _Cursor:
    """Bounds-checked little-endian reads over the mapped file."""

    def __init__(self, buf: mmap.mmap, size: int, path: Path) -> None:
        self.buf, self.size, self.path, self.pos = buf, size, path, 0

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.path} is truncated or corrupt: {what} (at byte {self.pos:,} of {self.size:,})",
            hint="re-download it (qwenkit rm, then qwenkit pull) or check where it came from",
        )

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} runs past the end of the file")

    def scalar(self, vtype: int, what: str) -> Any:
        fmt, size = _SCALARS[vtype]
        self.need(size, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar(4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(10, what))

    def string(self, what: str, keep: bool = True) -> str:
        length = self.u64(f"length of {what}")
        if length > MAX_STRING_BYTES:
            raise self.fail(f"{what} claims {length:,} bytes")
        self.need(length, what)
        start, self.pos = self.pos, self.pos + length
        return self.buf[start:self.pos].decode("utf-8", errors="replace") if keep else ""


def _read_array(cur: _Cursor, key: str, depth: int, keep: bool) -> tuple[int, list[str] | None]:
    """Read or skip an array value; returns its length and, for a kept string array, its items."""
    if depth > MAX_ARRAY_DEPTH:
        raise cur.fail(f"{key}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
    elem_type = cur.u32(f"element type of {key}")
    count = cur.u64(f"length of {key}")
    if elem_type not in _MIN_SIZE:
        raise cur.fail(f"{key}: unknown element type {elem_type}")
    if count * _MIN_SIZE[elem_type] > cur.size - cur.pos:
        raise cur.fail(f"{key} claims {count:,} elements, more than the file can hold")
    if elem_type in _SCALARS:
        cur.need(count * _SCALARS[elem_type][1], key)
        cur.pos += count * _SCALARS[elem_type][1]
        return count, None
    if elem_type == _STRING:
        items = [cur.string(f"item of {key}", keep) for _ in range(count)]
        return count, items if keep else None
    for _ in range(count):
        _read_array(cur, key, depth + 1, keep=False)
    return count, None


@dataclass
class _Header:
    scalars: dict[str, Scalar] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tokens: list[str] | None = None


def _read_kv(cur: _Cursor, index: int, header: _Header) -> None:
    key = cur.string(f"key #{index}")
    vtype = cur.u32(f"value type of {key}")
    if vtype in _SCALARS:
        header.scalars[key] = cur.scalar(vtype, key)
    elif vtype == _STRING:
        header.scalars[key] = cur.string(key)
    elif vtype == _ARRAY:
        count, items = _read_array(cur, key, 1, keep=key == TOKENS_KEY)
        header.array_lengths[key] = count
        if items is not None:
            header.tokens = items
    else:
        raise cur.fail(f"{key}: unknown value type {vtype}")


def _read_tensor(cur: _Cursor, index: int) -> tuple[str, tuple[int, ...], int, int]:
    name = cur.string(f"name of tensor #{index}")
    n_dims = cur.u32(f"dimension count of {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise cur.fail(f"tensor {name!r} claims {n_dims} dimensions")
    shape = tuple(cur.u64(f"shape of {name}") for _ in range(n_dims))
    return name, shape, cur.u32(f"type of {name}"), cur.u64(f"offset of {name}")


def _check_version(cur: _Cursor) -> int:
    version = cur.u32("version")
    if version in SUPPORTED_VERSIONS:
        return version
    if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
        raise ModelFormatError(f"{cur.path} is a big-endian GGUF, which qwenkit does not read")
    raise ModelFormatError(f"{cur.path}: GGUF version {version} is not supported (only 2 and 3)")


def _tensors(cur: _Cursor, count: int, alignment: int) -> tuple[tuple[GGUFTensor, ...], int]:
    raw = [_read_tensor(cur, i) for i in range(count)]
    data_offset = -(-cur.pos // alignment) * alignment
    _, names, sizes = _gguf_tables()
    tensors = []
    for name, shape, ttype, offset in raw:
        n_elements = 1
        for dim in shape:
            n_elements *= dim
        if ttype in sizes:
            block, per_block = sizes[ttype]
            end = data_offset + offset + -(-n_elements // block) * per_block
            if end > cur.size:
                cur.pos = cur.size
                raise cur.fail(f"tensor {name!r} ends at byte {end:,}, past the end of the file")
        tensors.append(GGUFTensor(name, shape, names.get(ttype, f"type{ttype}"), n_elements, offset))
    return tuple(tensors), data_offset


def _special_tokens(scalars: Mapping[str, Scalar], tokens: list[str] | None) -> tuple[SpecialToken, ...]:
    found = []
    for role, key in SPECIAL_TOKEN_KEYS.items():
        value = scalars.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            text = tokens[value] if tokens is not None and 0 <= value < len(tokens) else None
            found.append(SpecialToken(role, value, text))
    return tuple(found)


def _parse(cur: _Cursor) -> GGUFMetadata:
    cur.need(4, "magic")
    magic = bytes(cur.buf[0:4])
    if magic != GGUF_MAGIC:
        raise ModelFormatError(f"{cur.path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    cur.pos = 4
    version = _check_version(cur)
    tensor_count, kv_count = cur.u64("tensor count"), cur.u64("key-value count")
    if tensor_count * _MIN_TENSOR_INFO + kv_count * _MIN_KV > cur.size - cur.pos:
        raise cur.fail(f"the header claims {tensor_count:,} tensors and {kv_count:,} keys, more than fit")
    header = _Header()
    for index in range(kv_count):
        _read_kv(cur, index, header)
    alignment = header.scalars.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"general.alignment {alignment!r} is not a power of two")
    tensors, data_offset = _tensors(cur, tensor_count, alignment)
    arch = header.scalars.get("general.architecture")
    template = header.scalars.get("tokenizer.chat_template")
    return GGUFMetadata(
        path=cur.path, version=version, file_size=cur.size,
        architecture=arch if isinstance(arch, str) else "unknown",
        metadata=MappingProxyType(header.scalars), array_lengths=MappingProxyType(header.array_lengths),
        tensors=tensors, special_tokens=_special_tokens(header.scalars, header.tokens),
        alignment=alignment, data_offset=data_offset,
        chat_template=template if isinstance(template, str) and template.strip() else None,
    )


def read_gguf_metadata(path: str | Path) -> GGUFMetadata:
    """Metadata and tensor table of a GGUF file, without reading its weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path} is not a regular file")
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < 4:
                raise ModelFormatError(f"{path} is not a GGUF file ({size} bytes)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size, path))
    except OSError as exc:
        raise ModelFormatError(f"could not read {path}: {exc.strerror or exc}") from None
