"""Shared fixtures: offline W&B, runs inside a temporary directory, repo paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # lets test YAML name `tiny_model.TinyHasher`
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reaches the network; W&B writes offline runs under the test's tmp dir."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def repo() -> Path:
    """The repository root (for configs under experiments/ and tests/configs/)."""
    return ROOT


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run inside tmp_path so logs, checkpoints and splits land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
