"""The examples run end to end on the installed package."""

import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_tutorial_script_runs_all_eight_steps(tmp_path):
    r = subprocess.run([sys.executable, EXAMPLES / "tutorial.py", tmp_path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for step in ["HU range", "after", "bone surface", "lungs: right", "normalized"]:
        assert step in r.stdout
    assert (tmp_path / "bone.stl").stat().st_size > 84
    x = np.load(tmp_path / "input.npy")
    assert x.dtype == np.float32 and x.min() >= -0.25 and x.max() <= 0.75
    # The Dataset example reads what the tutorial wrote.
    r = subprocess.run([sys.executable, EXAMPLES / "torch_dataset.py", tmp_path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "1 item(s)" in r.stdout and "(1, 64, 64, 64) True" in r.stdout
