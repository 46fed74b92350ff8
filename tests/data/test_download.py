"""``download: true`` downloads before the data check (the download replaced by a fake)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision

from hashrepro.cli import main


class FakeTorchvisionCIFAR10:
    """Stands in for ``torchvision.datasets.CIFAR10(root, download=True)``: writes tiny batches."""

    calls: list[str] = []

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        assert download
        FakeTorchvisionCIFAR10.calls.append(root)
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (40, 3072), dtype=np.uint8)
            batch = {"data": data, "labels": [i % 10 for i in range(40)]}
            (folder / name).write_bytes(pickle.dumps(batch))


def test_download_true_fetches_before_the_check(repo, in_tmp, monkeypatch) -> None:
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeTorchvisionCIFAR10)
    FakeTorchvisionCIFAR10.calls.clear()
    root = in_tmp / "data" / "cifar10"
    argv = ["fit", "--config", str(repo / "experiments/hashcnn_cifar10.yaml")]
    argv += ["--data.init_args.root", str(root), "--data.init_args.download", "true"]
    argv += ["--data.init_args.num_query", "20", "--data.init_args.num_train", "50"]
    argv += ["--data.init_args.num_val", "10", "--data.init_args.num_workers", "0"]
    argv += ["--trainer.fast_dev_run", "true", "--trainer.logger", "false"]
    cli = main(argv)
    assert set(FakeTorchvisionCIFAR10.calls) == {str(root)}  # (Lightning calls it again later)
    assert "test/mAP_i2i" in cli.trainer.callback_metrics


def test_without_download_the_error_says_how(repo, in_tmp) -> None:
    argv = ["fit", "--config", str(repo / "experiments/hashcnn_cifar10.yaml")]
    with pytest.raises(FileNotFoundError, match="download=True"):
        main([*argv, "--data.init_args.root", str(in_tmp / "nowhere")])
