"""Fixtures: a phantom chest CT written by the installed ``ct-phantom`` console script, and the
command-line tools' outputs on it (run through the installed console scripts too)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def tool(name, *args, check=True):
    """Run an installed console script; returns the CompletedProcess (text)."""
    r = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{name} {args} exited {r.returncode}: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("ctprep")


@pytest.fixture(scope="session")
def phantom(work):
    """A 128 x 128 x 48 chest at 2.5 mm with a localizer and junk files in the folder."""
    d = work / "dicom"
    tool("ct-phantom", d, "--size", 128, "--slices", 48, "--slice-spacing", 2.5, "--localizer", "--junk", "-q")
    return d


@pytest.fixture(scope="session")
def cli(work, phantom):
    """The tools' outputs on the phantom, the pipeline of the README."""
    out = {name: work / f"cli_{name}" for name in ["hu.nii.gz", "hu_1mm.nii.gz", "lungs.nii.gz", "input.npy", "bone.stl"]}
    tool("hu-convert", phantom, "-o", out["hu.nii.gz"], "-q")
    tool("vol-resample", out["hu.nii.gz"], "--spacing", 1, "-o", out["hu_1mm.nii.gz"], "-q")
    tool("lung-seg", out["hu_1mm.nii.gz"], "-o", out["lungs.nii.gz"], "-q")
    tool("vol-normalize", out["hu_1mm.nii.gz"], "-o", out["input.npy"], "-q")
    tool("vol-mesh", out["hu_1mm.nii.gz"], "--level", 400, "-o", out["bone.stl"], "-q")
    return out


@pytest.fixture(scope="session")
def hu_1mm(phantom):
    import ctprep

    return ctprep.resample(ctprep.to_hu(ctprep.load_series(phantom)), spacing=1)


os.environ.setdefault("CTPREP_PROGRESS_AFTER_MS", "100000")
