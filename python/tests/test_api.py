"""Volumes from numpy, errors as exceptions with the tools' messages, the GIL, console scripts."""

import threading
import time

import numpy as np
import pytest

import ctprep
from conftest import tool


def test_volume_from_numpy_and_back():
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    v = ctprep.Volume(a, spacing=(2.5, 0.7, 0.7), origin=(10, 20, 30), kind="hu")
    assert v.shape == (4, 5, 6) and v.dtype == "int16" and v.kind == "hu"
    np.testing.assert_array_equal(v.array, a)
    assert v.spacing == (2.5, 0.7, 0.7) and v.origin == (10, 20, 30)
    # LPS identity -> RAS flips x and y; the affine maps index (x, y, z).
    np.testing.assert_allclose(v.affine, [[-0.7, 0, 0, -10], [0, -0.7, 0, -20], [0, 0, 2.5, 30], [0, 0, 0, 1]])
    np.testing.assert_allclose(v.direction, np.eye(3))
    assert "[z, y, x] = [4, 5, 6]" in repr(v)


def test_array_is_a_read_only_view_of_the_volume():
    v = ctprep.Volume(np.zeros((3, 4, 5), np.float32))
    a, b = v.array, v.array
    assert np.shares_memory(a, b)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0, 0] = 1
    w = v.like(a.copy() + 1)
    assert w.array.sum() == 60 and v.array.sum() == 0
    del v
    assert a.sum() == 0  # the view keeps its volume alive


def test_numpy_types_the_core_does_not_store_are_converted_or_refused():
    assert ctprep.Volume(np.ones((2, 2, 2), bool)).dtype == "uint8"
    assert ctprep.Volume(np.ones((2, 2, 2), np.int8)).dtype == "int16"
    assert ctprep.Volume(np.asfortranarray(np.ones((2, 3, 4), np.float64))).array.flags.c_contiguous
    with pytest.raises(ctprep.UsageError, match="2 dimension"):
        ctprep.Volume(np.zeros((3, 3)))
    with pytest.raises(ctprep.UsageError) as e:
        ctprep.Volume(np.zeros((2, 2, 2), np.int64))
    assert "astype" in e.value.hint


def test_a_missing_folder_is_an_oserror_with_the_tools_message(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ctprep.CtprepIOError) as e:
        ctprep.load_series(missing)
    assert isinstance(e.value, OSError) and isinstance(e.value, ctprep.CtprepError)
    assert e.value.path == str(missing) and e.value.hint
    r = tool("dcm-stack", missing, "-o", tmp_path / "x.nii", check=False)
    assert r.returncode == 1
    assert f"dcm-stack: error: {e.value.message}" in r.stderr
    assert f"hint: {e.value.hint}" in r.stderr


def test_a_folder_without_dicom_is_named_in_the_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(ctprep.CtprepError, match="no DICOM images found") as e:
        ctprep.load_series(tmp_path)
    # A dataset loop's log says which patient folder it was.
    assert e.value.path == str(tmp_path) and str(tmp_path) in str(e.value)


def test_a_corrupt_file_is_an_error_not_a_crash(tmp_path):
    (tmp_path / "slice.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage" * 10)
    with pytest.raises(ctprep.CtprepError) as e:
        ctprep.load_series(tmp_path)
    assert e.value.hint
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 40)
    with pytest.raises(ctprep.CtprepError) as e:
        ctprep.read(bad)
    assert str(bad) in str(e.value)
    # The interpreter is fine and the module still works.
    assert ctprep.Volume(np.zeros((1, 1, 1), np.uint8)).shape == (1, 1, 1)


def test_a_mask_on_another_grid_is_refused(hu_1mm):
    other = ctprep.Volume(np.ones((10, 10, 10), np.uint8), kind="mask")
    with pytest.raises(ctprep.InputError) as e:
        ctprep.normalize(hu_1mm, mask=other)
    assert isinstance(e.value, ValueError) and e.value.hint


def test_wrong_inputs_and_arguments_are_usage_or_input_errors(hu_1mm):
    mask, _ = ctprep.lung_mask(hu_1mm)
    with pytest.raises(ctprep.InputError, match="mask"):
        ctprep.lung_mask(mask)
    with pytest.raises(ctprep.UsageError, match="unknown method"):
        ctprep.lung_mask(hu_1mm, method="magic")
    with pytest.raises(ctprep.UsageError, match="spacing"):
        ctprep.resample(hu_1mm, spacing=0)
    with pytest.raises(ctprep.UsageError, match="face uses vertex"):
        ctprep.write_stl("/tmp/never.stl", np.zeros((3, 3)), np.array([[0, 1, 5]]))


def test_no_lungs_is_an_empty_result():
    water = ctprep.Volume(np.zeros((20, 40, 40), np.int16), kind="hu")
    # The QC notes on the way (a fallback tried, still implausible) come as Python warnings.
    with pytest.warns(UserWarning, match="implausible"), pytest.raises(ctprep.EmptyResultError) as e:
        ctprep.lung_mask(water)
    assert "no lungs" in e.value.message


def test_the_gil_is_released_while_the_core_works(hu_1mm):
    done = threading.Event()
    ticks = 0

    def work():
        for _ in range(3):
            ctprep.resample(hu_1mm, spacing=0.7, interp="cubic")
        done.set()

    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    took = time.perf_counter() - start
    # Holding the GIL, the core would let this loop run only between calls: a few ticks.
    assert took < 0.05 or ticks > 20, f"{ticks} ticks in {took:.3f} s"


def test_console_scripts_keep_the_tools_exit_codes(tmp_path):
    r = tool("lung-seg", "--no-such-option", check=False)
    assert r.returncode == 2 and "Usage: lung-seg" in r.stderr
    r = tool("vol-normalize", "--version", check=False)
    assert r.returncode == 0 and ctprep.__version__ in r.stdout
    r = tool("hu-convert", tmp_path / "missing.nii.gz", "-o", tmp_path / "o.nii.gz", check=False)
    assert r.returncode == 1 and "hu-convert: error:" in r.stderr and "hint:" in r.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_console_scripts_record_their_own_arguments_not_the_interpreters(phantom, tmp_path):
    out = tmp_path / "hu.nii.gz"
    tool("hu-convert", phantom, "-o", out, "-q")
    steps = ctprep.read(out).meta["provenance"]
    assert steps[-1]["tool"] == "hu-convert"
    # Paths are anonymized in the file; the shape of the argument list is what tells.
    args = steps[-1]["args"]
    assert len(args) == 4 and args[1] == "-o" and args[3] == "-q", args


def test_a_volumes_meta_and_kind_go_back_in_and_a_bad_kind_is_refused(hu_1mm):
    copy = ctprep.Volume(hu_1mm.array, spacing=hu_1mm.spacing, kind="hu", meta=hu_1mm.meta)
    assert copy.meta["provenance"] == hu_1mm.meta["provenance"] and copy.kind == "hu"
    with pytest.raises(ctprep.UsageError, match="unknown kind"):
        ctprep.Volume(hu_1mm.array, kind="ct")


def test_two_patients_in_one_folder_warn_and_the_padding_shows_as_the_file_holds_it(tmp_path):
    for seed in (1, 2):
        tool("ct-phantom", tmp_path, "--size", 32, "--slices", 6, "--seed", seed, "-q")
    with pytest.warns(UserWarning) as caught:
        vol = ctprep.load_series(tmp_path, axial_only=True)
    assert any("2 patients" in str(w.message) for w in caught)
    assert any("tie" in str(w.message) for w in caught)
    assert vol.shape == (6, 32, 32)
    f = next(tmp_path.glob("*.dcm"))
    assert ctprep.inspect(f, tags=["PixelPaddingValue"])["PixelPaddingValue"] == -2000  # SS in this file
