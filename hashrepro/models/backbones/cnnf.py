"""CNN-F (VGG-F) of Chatfield et al. 2014, with weights read from MatConvNet's ``.mat`` file."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hashrepro.data.formats import DataFileError, load_mat

__all__ = ["CNNF", "read_matconvnet_cnnf"]

CNNF_PAGE = "https://www.vlfeat.org/matconvnet/pretrained/"  # where imagenet-vgg-f.mat lives
# Per-channel RGB mean of the newer imagenet-vgg-f.mat (0-255 scale); used without a file.
_DEFAULT_MEAN = (122.80329895019531, 114.88525390625, 101.57212829589844)
# LRN [N, kappa, alpha, beta] in MatConvNet's convention (Krizhevsky et al.); the file's own
# values replace these when weights are loaded.
_DEFAULT_LRN = (5, 2.0, 1e-4, 0.75)
_LAYER_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")


def _field(struct: Any, name: str, default: Any = None) -> Any:
    """Return field ``name`` of a scipy ``mat_struct``, or ``default`` when absent."""
    return getattr(struct, name) if name in getattr(struct, "_fieldnames", ()) else default


def _cells(value: Any) -> list[Any]:
    """Flatten a MATLAB cell / struct array loaded with ``squeeze_me=True`` into a list."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel())
    return [value]


def read_matconvnet_cnnf(path: str | Path) -> dict[str, Any]:
    """Read the parts of MatConvNet's ``imagenet-vgg-f.mat`` (SimpleNN format) that CNN-F needs.

    Two layouts are understood (optionally wrapped in a top-level ``net`` struct):

    * old: top-level ``layers`` and ``normalization`` (with ``averageImage``);
    * new: top-level ``layers`` and ``meta``, with ``meta.normalization.averageImage``.

    ``layers`` is a 1 x L cell of structs with ``name`` and ``type``; ``conv`` layers carry
    ``weights`` = {filters H x W x in x out, biases} (or, in very old files, separate
    ``filters`` / ``biases`` fields); ``normalize`` / ``lrn`` layers carry
    ``param`` = [N kappa alpha beta]. Fully connected layers are ``conv`` layers too.

    Returns:
        ``{"convs": [(name, filters, biases), ...], "lrn": [param, ...], "mean": averageImage}``
        in file order, as numpy arrays with MATLAB's trailing singleton dimensions possibly
        squeezed away.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFileError: the file is unreadable or has none of the layouts above (one line).

    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"CNN-F weights not found: {file}; download imagenet-vgg-f.mat from MatConvNet's "
            f"pretrained models page {CNNF_PAGE} and pass its path"
        )
    expected = "MatConvNet's imagenet-vgg-f.mat (a MATLAB v5 SimpleNN model file)"
    mat = load_mat("CNN-F weights", file, expected, squeeze_me=True, struct_as_record=False)
    root: Any = mat["net"] if "net" in mat and "layers" not in mat else None
    layers = _field(root, "layers") if root is not None else mat.get("layers")
    if layers is None:
        raise DataFileError(f"{file} has no 'layers': not a MatConvNet SimpleNN model file")
    top = {k: _field(root, k) for k in ("normalization", "meta")} if root is not None else mat
    normalization = top.get("normalization")  # old layout
    if normalization is None:
        normalization = _field(top.get("meta"), "normalization")  # new layout
    mean = _field(normalization, "averageImage")
    if mean is None:
        raise DataFileError(f"{file} has no normalization.averageImage (old or meta layout)")

    convs, lrn = [], []
    for layer in _cells(layers):
        kind = str(_field(layer, "type", ""))
        if kind == "conv":
            weights = _field(layer, "weights")
            if weights is not None:
                filters, biases = _cells(weights)
            else:
                filters, biases = _field(layer, "filters"), _field(layer, "biases")
            convs.append((str(_field(layer, "name", "")), np.asarray(filters), np.asarray(biases)))
        elif kind in ("normalize", "lrn"):
            lrn.append(np.asarray(_field(layer, "param"), dtype=np.float64).ravel())
    return {"convs": convs, "lrn": lrn, "mean": np.asarray(mean, dtype=np.float32)}


def _matching(array: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Reshape ``array`` to ``shape``, allowing it to differ only by singleton dimensions."""
    squeezed = tuple(d for d in shape if d != 1)
    if np.squeeze(array).shape != squeezed:
        raise DataFileError(f"{what}: file has shape {array.shape}, model expects {shape}")
    return np.reshape(array, shape)


class CNNF(nn.Module):
    """CNN-F / VGG-F (Chatfield et al., BMVC 2014), the image network of DCMH, DPSH and others.

    conv1 64@11x11 s4 + LRN + max-pool, conv2 256@5x5 p2 + LRN + max-pool, conv3-5 256@3x3 p1
    + max-pool, fc6 4096, fc7 4096 (ReLU after every conv/fc); the 1000-way fc8 is dropped and
    the output is the 4096-d fc7 activation. pool1 pads one pixel at the bottom/right, as in
    MatConvNet, so a 224x224 input gives 6x6 maps before fc6. Inputs must be 224x224.

    Input convention (MatConvNet's): RGB pixels in 0-255, minus ``averageImage`` of the
    ``.mat`` file, which is either a 3-vector (per-channel mean, stored here as a (3, 1, 1)
    buffer) or a full 224x224x3 mean image (stored as a (3, 224, 224) buffer). With
    ``subtract_mean=True`` (default) :meth:`forward` does this itself via :meth:`preprocess`,
    i.e. it expects ``x * input_scale`` to be 0-255 pixels; with ``subtract_mean=False`` the
    caller must feed already mean-subtracted pixels.

    Args:
        weights: ``None`` for random init (mean = the per-channel mean of imagenet-vgg-f.mat),
            or the path of MatConvNet's ``imagenet-vgg-f.mat``
            (https://www.vlfeat.org/matconvnet/pretrained/). Its LRN parameters replace the
            defaults too.
        subtract_mean: apply :meth:`preprocess` at the start of :meth:`forward`.
        input_scale: inputs are multiplied by this before the mean is subtracted: 1.0 for
            0-255 inputs, 255.0 for [0, 1] tensors such as ``ToTensor`` output.
        dropout: dropout after fc6 and fc7 (the .mat deployment model, as DCMH fine-tunes
            it, has none).
        width: testing aid only: multiplies every channel / unit count (e.g. 1/32 gives a tiny
            network with the real layout); the real weights need ``width=1.0``.

    """

    def __init__(
        self,
        weights: str | None = None,
        subtract_mean: bool = True,
        input_scale: float = 1.0,
        dropout: float = 0.0,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        c1, c2, fc = (max(1, round(n * width)) for n in (64, 256, 4096))
        self.out_features = fc
        self.subtract_mean = subtract_mean
        self.input_scale = input_scale
        lrn_n, lrn_k, lrn_alpha, lrn_beta = _DEFAULT_LRN
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, c1, 11, stride=4),
                relu1=nn.ReLU(inplace=True),
                norm1=nn.LocalResponseNorm(lrn_n, lrn_alpha * lrn_n, lrn_beta, lrn_k),
                pad1=nn.ZeroPad2d((0, 1, 0, 1)),  # post-ReLU, so zero = MatConvNet's padding
                pool1=nn.MaxPool2d(3, stride=2),
                conv2=nn.Conv2d(c1, c2, 5, padding=2),
                relu2=nn.ReLU(inplace=True),
                norm2=nn.LocalResponseNorm(lrn_n, lrn_alpha * lrn_n, lrn_beta, lrn_k),
                pool2=nn.MaxPool2d(3, stride=2),
                conv3=nn.Conv2d(c2, c2, 3, padding=1),
                relu3=nn.ReLU(inplace=True),
                conv4=nn.Conv2d(c2, c2, 3, padding=1),
                relu4=nn.ReLU(inplace=True),
                conv5=nn.Conv2d(c2, c2, 3, padding=1),
                relu5=nn.ReLU(inplace=True),
                pool5=nn.MaxPool2d(3, stride=2),
            )
        )
        self.fc6 = nn.Linear(c2 * 6 * 6, fc)
        self.fc7 = nn.Linear(fc, fc)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mean", torch.tensor(_DEFAULT_MEAN).view(3, 1, 1))
        if weights is not None:
            self.load_matconvnet(weights)

    def _layer(self, name: str) -> nn.Conv2d | nn.Linear:
        return getattr(self, name) if name.startswith("fc") else getattr(self.features, name)

    @torch.no_grad()
    def load_matconvnet(self, path: str | Path) -> None:
        """Load conv1-fc7, the LRN parameters and the mean image from ``imagenet-vgg-f.mat``.

        MatConvNet filters are H x W x in x out and become PyTorch's out x in x H x W; fc6's
        6x6x256x4096 filter is flattened to (4096, 256*6*6) in (C, H, W) order, matching
        ``torch.flatten`` of the pool5 maps. Shapes are checked against this model.
        """
        net = read_matconvnet_cnnf(path)
        if len(net["convs"]) < len(_LAYER_NAMES):
            raise DataFileError(f"{path}: {len(net['convs'])} conv layers, CNN-F needs 7")
        for name, (_, filters, biases) in zip(_LAYER_NAMES, net["convs"], strict=False):
            layer = self._layer(name)
            if isinstance(layer, nn.Conv2d):
                out_ch, in_ch, kh, kw = layer.weight.shape
            elif name == "fc6":  # a 6x6 conv on the (C, 6, 6) pool5 maps
                out_ch, in_ch, kh, kw = layer.out_features, layer.in_features // 36, 6, 6
            else:  # fc7: a 1x1 conv
                out_ch, in_ch, kh, kw = layer.out_features, layer.in_features, 1, 1
            w = _matching(filters, (kh, kw, in_ch, out_ch), f"{path} {name} filters")
            b = _matching(biases, (out_ch,), f"{path} {name} biases")
            w = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))  # (out, in, H, W)
            layer.weight.copy_(w.reshape(layer.weight.shape))
            layer.bias.copy_(torch.from_numpy(b))
        norms = (self.features.norm1, self.features.norm2)
        for norm, param in zip(norms, net["lrn"][:2], strict=False):
            n, kappa, alpha, beta = (float(p) for p in param)
            # MatConvNet: x / (kappa + alpha * sum x^2)^beta; PyTorch divides alpha by size.
            norm.size, norm.k, norm.alpha, norm.beta = int(n), kappa, alpha * n, beta
        mean = net["mean"]
        if mean.size == 3:
            mean = torch.from_numpy(mean.reshape(3, 1, 1).copy())  # (3, 1, 1)
        elif mean.ndim == 3 and mean.shape[2] == 3:
            mean = torch.from_numpy(np.ascontiguousarray(mean.transpose(2, 0, 1)))  # (3, H, W)
        else:
            raise DataFileError(f"{path}: averageImage has shape {mean.shape}, expected 3 or HxWx3")
        self.mean = mean.float()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs to CNN-F's convention: ``x * input_scale - mean`` (0-255 minus mean).

        Args:
            x: (B, 3, 224, 224) RGB images, 0-255 after multiplying by ``input_scale``.

        """
        return x * self.input_scale - self.mean  # (B, 3, 224, 224)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 features of a batch of 224x224 RGB images.

        Args:
            x: (B, 3, 224, 224) images (see the class docstring for the pixel convention).

        Returns:
            (B, out_features) features, 4096-d at full width.

        """
        if self.subtract_mean:
            x = self.preprocess(x)
        x = self.features(x)  # (B, 256, 6, 6)
        x = self.dropout(torch.relu(self.fc6(torch.flatten(x, 1))))  # (B, 4096)
        return self.dropout(torch.relu(self.fc7(x)))  # (B, 4096)
