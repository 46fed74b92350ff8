"""Load a trained model and its data from a config and a checkpoint; turn a query into codes.

A query is an image file, a text, or a dataset item. An image file is converted to the format
of the dataset's own image items (size, channels, layout, dtype and range, learnt from item 0)
so that the dataset's evaluation transform applies to it unchanged. Text queries work for data
whose text items are strings; datasets whose text items are feature vectors (bag of words,
MFEAT views) take a dataset item (``--item``) instead.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hashrepro.data.base import RetrievalDataModule, as_float_tensor
from hashrepro.models.base import HashingModule

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")


def load_trained(
    configs: list[str], ckpt_path: str, overrides: list[str]
) -> tuple[HashingModule, RetrievalDataModule]:
    """The configured model with the checkpoint's weights (eval mode) and the datamodule."""
    from hashrepro.cli import make_cli

    ckpt = Path(ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint (a Lightning .ckpt from `fit`)")
    args = [a for c in configs for a in ("--config", c)]
    with _quiet("lightning.pytorch", "lightning.fabric"), warnings.catch_warnings():
        # no Trainer banner (nothing is trained); sys.argv holds `search ...`, not these args
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = make_cli([*args, "--trainer.logger", "false", *overrides], run=False)
    model, dm = cli.model, cli.datamodule
    # the user's own checkpoint, as with `fit --ckpt_path`: it may hold non-tensor state
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if "state_dict" not in state:
        raise ValueError(f"{ckpt} has no state_dict; expected a Lightning checkpoint")
    model.load_state_dict(state["state_dict"])
    return model.eval(), dm


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise the given loggers to WARNING for the duration."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def raw_query(dm: RetrievalDataModule, query: str | None, item: int | None, modality: str) -> Any:
    """The query as a raw item of ``modality`` (like ``dm.data.sources[modality][i]``)."""
    if modality not in dm.modalities:
        raise ValueError(f"{type(dm).__name__} has no {modality!r} items; it has {dm.modalities}")
    source = dm.data.sources[modality]
    if item is not None:
        if not 0 <= item < len(source):
            raise ValueError(f"--item {item} is out of range: the data has {len(source)} items")
        return source[item]
    if query is None:
        raise ValueError("give a query: --query <image file or text> or --item <dataset index>")
    reference = source[0]
    if modality == "text":
        if not isinstance(reference, str):
            raise ValueError(
                f"{type(dm).__name__}'s text items are feature vectors, not strings; "
                "query with --item <index> --query_modality text"
            )
        return query
    path = Path(query)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file (PNG, JPEG, ... readable by Pillow)")
    return image_like(path, reference)


def query_modality(query: str | None, item: int | None, chosen: str | None) -> str:
    """``chosen``, else ``image`` for an image file or an item, else ``text``."""
    if chosen is not None:
        return chosen
    if item is not None or query is None:
        return "image"
    looks_like_file = Path(query).suffix.lower() in IMAGE_SUFFIXES or Path(query).is_file()
    return "image" if looks_like_file else "text"


def image_like(path: Path, reference: Any) -> Any:
    """Read an image file in the layout, size, dtype and value range of ``reference``."""
    ref = np.asarray(reference.numpy() if isinstance(reference, torch.Tensor) else reference)
    layout = _layout(ref)
    if layout is None:
        raise ValueError(
            f"cannot turn an image file into this dataset's image items (shape {ref.shape}); "
            "query with --item <index>"
        )
    channels, height, width = layout
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))
    except OSError as err:
        raise ValueError(f"{path}: not an image Pillow can read ({err})") from None
    pixels = pixels.reshape(height, width, channels)  # (H, W, C) uint8
    if ref.ndim == 3 and ref.shape[0] == channels and ref.shape[-1] != channels:
        pixels = pixels.transpose(2, 0, 1)  # (C, H, W)
    elif ref.ndim == 2:
        pixels = pixels[..., 0]
    if ref.dtype == np.uint8:
        out = np.ascontiguousarray(pixels)
    else:
        scale = 255.0 if float(ref.max()) > 1.0 else 1.0  # items in [0, 1] or in [0, 255]
        out = pixels.astype(ref.dtype) / 255.0 * scale
    return torch.from_numpy(out) if isinstance(reference, torch.Tensor) else out


def _layout(ref: np.ndarray) -> tuple[int, int, int] | None:
    """(channels, height, width) of an image item stored as (H, W), (C, H, W) or (H, W, C)."""
    if ref.ndim == 2:
        return 1, ref.shape[0], ref.shape[1]
    if ref.ndim == 3 and ref.shape[0] in (1, 3) and ref.shape[-1] not in (1, 3):
        return ref.shape[0], ref.shape[1], ref.shape[2]
    if ref.ndim == 3 and ref.shape[-1] in (1, 3):
        return ref.shape[-1], ref.shape[0], ref.shape[1]
    return None


@torch.no_grad()
def encode_query(model: HashingModule, dm: RetrievalDataModule, raw: Any, modality: str):
    """(1, K) real-valued code of one raw item, through the data's evaluation transform."""
    transform = dm.transforms("eval").get(modality, as_float_tensor)
    x = transform(raw)
    x = x.unsqueeze(0) if isinstance(x, torch.Tensor) else [x]
    batch = {modality: x, "index": torch.tensor([-1])}
    codes = model.encode(batch)
    if modality not in codes:
        raise ValueError(f"{type(model).__name__} gives no {modality!r} codes")
    return codes[modality].float().cpu()
