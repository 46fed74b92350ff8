"""Two-process CPU DDP (gloo) against one process: evaluation, code memories, a short run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ddp_check
import pytest

HERE = Path(__file__).resolve().parent


def two_processes(out: Path, *args: str) -> dict:
    """Run tests/ddp_check.py under 2-process DDP; rank 0's results."""
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE / "ddp_check.py"), str(out), *args],
        capture_output=True, text=True, cwd=out.parent, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_ddp_evaluation_and_memories_match_one_process(tmp_path: Path) -> None:
    weights = tmp_path / "dpsh.pt"
    ddp_check.short_run(1, tmp_path, save=weights, epochs=2)  # codes that are not all equal
    ddp = two_processes(tmp_path / "results.json", str(weights))
    # evaluation: the same figures exactly, with both tie modes, although the sampler pads the
    # 31 validation queries and 50 test queries with repeats to shard them over 2 processes
    one = ddp_check.evaluation(1, tmp_path, weights)
    assert ddp["evaluation"] == one
    assert one["average/test"]["collapsed_image"] == 0.0
    # memories: after 3 steps on 2 processes each holds the 2 x 3 x 16 items of both
    for model in ("dpsh", "cmh"):
        assert ddp["memory"][model] == {"same_on_every_rank": True, "seen": 96}, model


@pytest.mark.slow
def test_ddp_short_run_reaches_the_single_process_map(tmp_path: Path) -> None:
    """4 DPSH epochs, same global batch: not bit-identical (other batches, other reduction
    order), but the validation mAP of one process."""
    single = ddp_check.short_run(1, tmp_path)
    ddp = two_processes(tmp_path / "results.json", "--short-run")["short_run"]
    assert single > 0.5
    assert abs(ddp - single) < 0.08, (ddp, single)
