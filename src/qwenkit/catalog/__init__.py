"""The Qwen family catalog: every model as data, with its architecture and Qwen's recommendations."""

from __future__ import annotations

from qwenkit.catalog.loader import Catalog, load_catalog, variant_to_dict
from qwenkit.catalog.parse import CatalogDataError
from qwenkit.catalog.schema import (
    Architecture,
    Generation,
    Mirror,
    Modality,
    SamplingDefaults,
    Specialisation,
    Thinking,
    ToolFormat,
    Variant,
)

__all__ = [
    "Architecture",
    "Catalog",
    "CatalogDataError",
    "Generation",
    "Mirror",
    "Modality",
    "SamplingDefaults",
    "Specialisation",
    "Thinking",
    "ToolFormat",
    "Variant",
    "load_catalog",
    "variant_to_dict",
]
