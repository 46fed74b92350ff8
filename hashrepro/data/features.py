"""On-disk cache of frozen-encoder features, so a frozen pretrained encoder costs one pass.

A DataModule with ``features={"image": {"class_path": "EfficientNetLite0", "init_args":
{...}}}`` serves, for that modality, the encoder's (N, D) features of every item instead of the
item itself (the split does not change). The features are computed once, in eval mode on the
dataset's evaluation transform, and saved as ``<feature_dir>/<dataset>_<modality>_<Encoder>_
<key>.npy``, with a ``.json`` beside it that says what the key covers:

- the encoder: class path, init arguments and a SHA-1 of its weights (so random and pretrained
  weights never share a file; a random initialisation is seeded with 0);
- the dataset and transform: the DataModule class, the number of items and a SHA-1 of the
  transformed inputs of 16 items spread over the set (image size, normalisation, text form).

Extraction is resumable: every finished chunk of items is saved under ``<file>.part/``, so an
interrupted run loses at most one chunk. Models then train on the features with a small
backbone (``TextMLP``, a generic MLP on vectors), and classic baselines fit on them.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hashrepro.data.base import RetrievalData, as_float_tensor

CHUNK = 4096  # items per saved chunk
BATCH = 256  # items per encoder call
PROBES = 16  # items whose transformed inputs enter the key
NOT_IN_KEY = ("frozen", "cache_dir")  # encoder arguments that do not change the features


def resolve(spec: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The encoder class of ``{"class_path", "init_args"}`` and its full arguments.

    Short class names are looked up in :mod:`hashrepro.models.backbones`. Defaults are filled
    in, so ``{}`` and ``{"weights": "package"}`` name the same encoder (and cache file).
    """
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"a feature encoder needs {{class_path, init_args}}, got {spec!r}")
    path = str(spec["class_path"])
    module_name, _, name = path.rpartition(".")
    module = importlib.import_module(module_name or "hashrepro.models.backbones")
    if not hasattr(module, name):
        raise ValueError(f"feature encoder {path!r} not found in {module.__name__}")
    cls = getattr(module, name)
    try:
        bound = inspect.signature(cls).bind(**(spec.get("init_args") or {}))
    except TypeError as err:
        raise ValueError(f"feature encoder {path}: {err}") from err
    bound.apply_defaults()
    return cls, dict(bound.arguments)


def instantiate(cls: type, args: dict[str, Any]) -> nn.Module:
    """Build an encoder in eval mode; a random initialisation is seeded with 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = cls(**args)
    if not isinstance(getattr(encoder, "out_features", None), int):
        raise TypeError(f"feature encoder {cls.__name__} needs an int 'out_features' attribute")
    return encoder.eval()


def weights_digest(module: nn.Module) -> str:
    """SHA-1 of a module's parameters and buffers, in state-dict order."""
    digest = hashlib.sha1()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def item_digest(items: Sequence[Any]) -> str:
    """SHA-1 of transformed inputs (tensors or strings)."""
    digest = hashlib.sha1()
    for item in items:
        if isinstance(item, str):
            digest.update(item.encode())
        else:
            digest.update(torch.as_tensor(item).float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def collate(items: list[Any]) -> Any:
    """A batch: strings stay a list, tensors are stacked."""
    return items if isinstance(items[0], str) else torch.stack([torch.as_tensor(x) for x in items])


@torch.no_grad()
def extract(
    encoder: nn.Module,
    source: Sequence[Any],
    transform: Callable[[Any], Any],
    path: Path,
    desc: str = "features",
) -> np.ndarray:
    """Features (N, D) float32 of every item, chunk by chunk, saved to ``path`` (``.npy``)."""
    from tqdm import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = encoder.to(device).eval()
    parts = path.with_name(path.name + ".part")
    parts.mkdir(parents=True, exist_ok=True)
    chunks = []
    n = len(source)
    with tqdm(total=n, desc=desc, unit="item") as bar:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            chunk_file = parts / f"{start:09d}.npy"
            if chunk_file.is_file():
                chunks.append(np.load(chunk_file))
                bar.update(stop - start)
                continue
            out = []
            for i in range(start, stop, BATCH):
                batch = collate([transform(source[j]) for j in range(i, min(i + BATCH, stop))])
                if isinstance(batch, torch.Tensor):
                    batch = batch.to(device)
                out.append(encoder(batch).float().cpu().numpy())
                bar.update(min(i + BATCH, stop) - i)
            chunk = np.concatenate(out).astype(np.float32)
            tmp = chunk_file.with_name(f".{chunk_file.name}.tmp.npy")
            np.save(tmp, chunk)
            tmp.replace(chunk_file)
            chunks.append(chunk)
    features = np.concatenate(chunks)  # (N, D)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)
    shutil.rmtree(parts, ignore_errors=True)
    return features


def cache_entry(
    dm: Any, data: RetrievalData, modality: str, cls: type, args: dict[str, Any], encoder: nn.Module
) -> dict[str, Any]:
    """What the cache key covers, for one modality of a DataModule (see the module docstring)."""
    source = data.sources[modality]
    transform = dm.transforms("eval").get(modality, as_float_tensor)
    n = len(source)
    probes = sorted({int(i) for i in np.linspace(0, n - 1, num=min(PROBES, n))})
    return {
        "dataset": f"{type(dm).__module__}.{type(dm).__qualname__}",
        "modality": modality,
        "num_items": n,
        "inputs_sha1": item_digest([transform(source[i]) for i in probes]),
        "encoder": f"{cls.__module__}.{cls.__qualname__}",
        "init_args": {k: v for k, v in args.items() if k not in NOT_IN_KEY},
        "weights_sha1": weights_digest(encoder),
    }


def encoded_features(
    dm: Any, data: RetrievalData, modality: str, spec: dict[str, Any]
) -> torch.Tensor:
    """(N, D) features of one modality of ``data``: read from the cache, or computed and cached."""
    cls, args = resolve(spec)
    encoder = instantiate(cls, args)
    entry = cache_entry(dm, data, modality, cls, args, encoder)
    key = hashlib.sha1(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:12]
    name = cls.__name__
    folder = Path(dm.feature_dir)
    path = folder / f"{dm.name}_{modality}_{name}_{key}.npy"
    if path.is_file():
        features = np.load(path)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json").write_text(json.dumps(entry, indent=1, sort_keys=True))
        source = data.sources[modality]
        transform = dm.transforms("eval").get(modality, as_float_tensor)
        features = extract(encoder, source, transform, path, f"{dm.name} {modality} {name}")
    if features.shape[0] != entry["num_items"]:
        raise ValueError(f"feature cache {path} has {features.shape[0]} rows; delete it")
    return torch.from_numpy(features)


def encode_sources(dm: Any, data: RetrievalData) -> RetrievalData:
    """``data`` with each modality named in ``dm.features`` replaced by its encoder features."""
    unknown = set(dm.features) - set(data.sources)
    if unknown:
        raise ValueError(
            f"features: {sorted(unknown)} not among the modalities {sorted(data.sources)}"
        )
    sources = dict(data.sources)
    for modality, spec in dm.features.items():
        sources[modality] = encoded_features(dm, data, modality, spec)
    return RetrievalData(sources, data.labels, data.partition)
