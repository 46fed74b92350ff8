"""Text feature extractors: an MLP on bag-of-words vectors and a local transformers encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

__all__ = ["TextMLP", "TransformerTextEncoder"]


class TextMLP(nn.Module):
    """MLP on bag-of-words (or any fixed-size) text vectors, e.g. DCMH's text network.

    ``in_features -> hidden[0] -> ... -> hidden[-1]``, each Linear followed by ReLU and
    dropout; DCMH uses a single 8192-unit hidden layer. With ``out_features`` set, a final
    Linear (no activation) projects to that size; otherwise the output is the last hidden
    layer's activations.

    Args:
        in_features: vocabulary / input vector size.
        hidden: hidden layer size, or a list of sizes (an empty list gives a single Linear,
            which then needs ``out_features``).
        out_features: size of an optional final linear projection.
        dropout: dropout probability after each hidden ReLU (0 disables it).

    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int] = 8192,
        out_features: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = [hidden] if isinstance(hidden, int) else list(hidden)
        if not sizes and out_features is None:
            raise ValueError("TextMLP needs at least one hidden layer or out_features")
        layers: list[nn.Module] = []
        width = in_features
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        if out_features is not None:
            layers.append(nn.Linear(width, out_features))
            width = out_features
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch of text vectors.

        Args:
            x: (B, in_features) bag-of-words vectors (any dtype; cast to float).

        Returns:
            (B, out_features) features.

        """
        return self.net(x.float())  # (B, out_features)


class TransformerTextEncoder(nn.Module):
    """A Hugging Face ``transformers`` encoder loaded from a local directory, pooled per text.

    The directory must hold both the model and its tokenizer (``save_pretrained`` of each);
    nothing is downloaded (``local_files_only=True``). Raw strings are tokenized in
    :meth:`forward` (padding to the longest, truncating to ``max_length``).

    The model's own pooler (e.g. BERT's tanh layer on [CLS]) is removed when present: it is
    not used by either pooling, and unused parameters break DDP.

    Args:
        path: local directory, e.g. a ``bert-base-uncased`` snapshot.
        pooling: ``"cls"``: the first token's last hidden state; ``"mean"``: the mean of the
            last hidden states over non-padding tokens.
        max_length: maximum number of tokens per text (special tokens included).

    """

    def __init__(
        self, path: str, pooling: Literal["cls", "mean"] = "cls", max_length: int = 64
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # slow import; only when used

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(
                f"Transformer directory not found: {directory} (save a model and its tokenizer "
                "there with save_pretrained)"
            )
        self.pooling = pooling
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.model = AutoModel.from_pretrained(directory, local_files_only=True)
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        self.out_features: int = self.model.config.hidden_size

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize a batch of strings into padded ``input_ids`` / ``attention_mask`` tensors."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return dict(encoded)

    def forward(self, x: Sequence[str] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features of a batch of texts.

        Args:
            x: a list of B strings, or already tokenized inputs (``input_ids`` (B, L),
                ``attention_mask`` (B, L), ... as returned by :meth:`tokenize`).

        Returns:
            (B, out_features) pooled last hidden states.

        """
        inputs = dict(x) if isinstance(x, Mapping) else self.tokenize(x)
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        hidden = self.model(**inputs).last_hidden_state  # (B, L, H)
        if self.pooling == "cls":
            return hidden[:, 0]  # (B, H)
        mask = inputs.get("attention_mask", torch.ones(hidden.shape[:2], device=device))
        mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # (B, H)
