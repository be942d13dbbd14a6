"""The in-memory module against the command-line tools on the same phantom: same voxels, same
grid, and the affine nibabel reads from the tools' NIfTI."""

import numpy as np
import nibabel as nib
import pytest

import ctprep
from conftest import tool


def nifti_zyx(path):
    """A NIfTI's voxels as ctprep holds them ([z, y, x]) and its affine, read by nibabel."""
    img = nib.load(str(path))
    return np.asarray(img.dataobj).T, img.affine


def test_load_series_skips_the_localizer_and_junk_and_knows_the_grid(phantom):
    vol = ctprep.load_series(phantom)
    assert vol.shape == (48, 128, 128)
    assert vol.dtype == "int16" and vol.array.dtype == np.int16
    assert vol.kind == "stored"
    assert vol.spacing[0] == pytest.approx(2.5)
    assert vol.spacing[1] == pytest.approx(360 / 128)
    meta = vol.meta
    assert len(meta["slices"]) == 48
    assert "slices" in meta["extra"]["series_choice"]["why"]
    assert meta["rescale"]["intercept"] == -1024


def test_to_hu_equals_hu_convert_and_the_affine_is_nibabels(phantom, cli):
    hu = ctprep.to_hu(ctprep.load_series(phantom))
    ref, affine = nifti_zyx(cli["hu.nii.gz"])
    assert hu.kind == "hu" and hu.array.dtype == np.int16
    np.testing.assert_array_equal(hu.array, ref)
    np.testing.assert_allclose(hu.affine, affine, atol=1e-4)
    # Padding became air; the body and the lungs are where a chest has them.
    assert hu.array.min() == -1024
    assert hu.array.max() > 400


def test_resample_equals_vol_resample(hu_1mm, cli):
    ref, affine = nifti_zyx(cli["hu_1mm.nii.gz"])
    assert hu_1mm.shape == ref.shape
    assert hu_1mm.spacing == pytest.approx((1.0, 1.0, 1.0), abs=0.02)
    np.testing.assert_array_equal(hu_1mm.array, ref)
    np.testing.assert_allclose(hu_1mm.affine, affine, atol=1e-4)


def test_lung_mask_equals_lung_seg_and_reports_qc(hu_1mm, cli):
    mask, qc = ctprep.lung_mask(hu_1mm)
    ref, affine = nifti_zyx(cli["lungs.nii.gz"])
    assert mask.kind == "mask" and mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.array, ref)
    np.testing.assert_allclose(mask.affine, affine, atol=1e-4)
    assert qc["lungs_found"] == 2
    assert qc["total_ml"] == pytest.approx(qc["right_ml"] + qc["left_ml"])
    assert qc["total_ml"] == pytest.approx(mask.array.sum() * np.prod(mask.spacing) / 1000, rel=1e-6)
    labels, _ = ctprep.lung_mask(hu_1mm, labels=True)
    assert set(np.unique(labels.array)) == {0, 1, 2}


def test_tutorial_method_is_one_air_pocket(hu_1mm):
    mask, qc = ctprep.lung_mask(hu_1mm, method="tutorial", fill=True)
    assert set(np.unique(mask.array)) <= {0, 1}
    assert qc["total_ml"] > 0


def test_normalize_equals_vol_normalize(hu_1mm, cli):
    x = ctprep.normalize(hu_1mm)
    ref = np.load(cli["input.npy"])
    assert x.kind == "normalized" and x.array.dtype == np.float32
    np.testing.assert_array_equal(x.array, ref)
    assert x.array.min() == pytest.approx(-0.25) and x.array.max() == pytest.approx(0.75)
    # The tutorial's two functions, in numpy, give the same numbers.
    hu = hu_1mm.array.astype(np.float32)
    tut = np.clip((hu - -1000.0) / (400.0 - -1000.0), 0, 1) - 0.25
    np.testing.assert_allclose(x.array, tut, atol=1e-6)


def test_normalize_with_a_mask_sets_the_outside(hu_1mm):
    mask, _ = ctprep.lung_mask(hu_1mm)
    x = ctprep.normalize(hu_1mm, mask=mask, outside=0.0)
    assert np.all(x.array[mask.array == 0] == 0.0)


def test_mesh_is_closed_and_equals_vol_mesh(hu_1mm, cli, work):
    verts, faces = ctprep.mesh(hu_1mm, level=400)
    assert verts.dtype == np.float32 and verts.shape[1] == 3
    assert faces.dtype == np.uint32 and faces.shape[1] == 3 and len(faces) > 1000
    # Watertight: every edge is shared by exactly two triangles.
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2)
    # Vertices in LPS mm lie inside the volume's box.
    corners = np.array([[0, 0, 0, 1], [s - 1 for s in hu_1mm.shape[::-1]] + [1]]) @ hu_1mm.affine_lps.T
    lo, hi = corners[:, :3].min(0) - 1, corners[:, :3].max(0) + 1
    assert np.all(verts >= lo) and np.all(verts <= hi)
    stl = work / "py_bone.stl"
    ctprep.write_stl(stl, verts, faces)
    assert stl.stat().st_size == 84 + 50 * len(faces)
    assert stl.read_bytes() == cli["bone.stl"].read_bytes()
    obj = work / "py_bone.obj"
    ctprep.write_obj(obj, verts, faces)
    assert obj.read_text().count("\nf ") == len(faces)


def test_inspect_reads_keywords_and_tags(phantom):
    f = next(p for p in sorted(phantom.iterdir()) if p.suffix == ".dcm")
    tags = ctprep.inspect(f, tags=["PatientID", "(0028,0030)", "ImagePositionPatient"])
    cli_id = tool("dcm-inspect", f, "--tag", "PatientID").stdout.strip()
    assert tags["PatientID"] == cli_id
    assert tags["(0028,0030)"] == pytest.approx([360 / 128, 360 / 128])
    assert len(tags["ImagePositionPatient"]) == 3
    everything = ctprep.inspect(f)
    assert everything["Modality"] == "CT" and "PixelData" not in everything


@pytest.mark.parametrize("name", ["vol.nii.gz", "vol.nii", "vol.npy"])
def test_write_then_read_keeps_voxels_and_grid(hu_1mm, work, name):
    path = work / name
    ctprep.write(hu_1mm, path)
    back = ctprep.read(path)
    np.testing.assert_array_equal(back.array, hu_1mm.array)
    np.testing.assert_allclose(back.affine, hu_1mm.affine, atol=1e-4)
    assert back.kind == "hu"
    if name.endswith((".nii", ".nii.gz")):
        _, affine = nifti_zyx(path)
        np.testing.assert_allclose(affine, hu_1mm.affine, atol=1e-4)


def test_resample_options_reach_the_core(hu_1mm, phantom, cli, work):
    hu = ctprep.read(cli["hu.nii.gz"])
    # like=: exactly another volume's grid.
    back = ctprep.resample(hu_1mm, like=hu)
    assert back.shape == hu.shape
    np.testing.assert_allclose(back.affine, hu.affine, atol=1e-6)
    # grid="corners" is vol-resample --grid corners.
    ref = work / "cli_corners.nii"
    tool("vol-resample", cli["hu.nii.gz"], "--spacing", 1, "--grid", "corners", "-o", ref, "-q")
    corners = ctprep.resample(hu, spacing=1, grid="corners")
    np.testing.assert_array_equal(corners.array, nifti_zyx(ref)[0])
    assert corners.shape != hu_1mm.shape or not np.array_equal(corners.array, hu_1mm.array)


def test_to_hu_dtype_and_normalize_without_centering(phantom):
    ct = ctprep.load_series(phantom)
    assert ctprep.to_hu(ct, dtype="float32").array.dtype == np.float32
    x = ctprep.normalize(ctprep.to_hu(ct), mean=None)
    assert x.array.min() == 0.0 and x.array.max() == 1.0


def test_npy_without_sidecar_takes_the_given_spacing_and_ascii_stl(hu_1mm, work):
    bare = work / "bare.npy"
    np.save(bare, hu_1mm.array)
    with pytest.warns(UserWarning, match="NPY without sidecar"):
        v = ctprep.read(bare, spacing=(2.5, 0.7, 0.7))
    assert v.spacing == pytest.approx((2.5, 0.7, 0.7))
    verts, faces = ctprep.mesh(hu_1mm, level=400, step=2)
    stl = work / "bone_ascii.stl"
    ctprep.write_stl(stl, verts, faces, ascii=True)
    text = stl.read_text()
    assert text.startswith("solid") and text.count("facet normal") == len(faces)
