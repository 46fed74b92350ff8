"""Hashing models: nn.Module networks and losses, wired by thin LightningModules.

The models are imported on first access, so the framework-free primitives of
:mod:`hashrepro.models.common` (used by the baselines and the retrieval code too) load without
Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODELS = {
    "DPSH": "hashrepro.models.dpsh",
    "HashCNN": "hashrepro.models.hashcnn",
    "HashingModule": "hashrepro.models.base",
    "ReconstructHashing": "hashrepro.models.reconstruct",
}

__all__ = ["DPSH", "HashCNN", "HashingModule", "ReconstructHashing"]


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        return getattr(importlib.import_module(_MODELS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
