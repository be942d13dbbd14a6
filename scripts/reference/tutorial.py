"""A faithful port of the DSB-2017 "Full Preprocessing Tutorial" pipeline (the user's document,
shared/seed), used only to compare against ctprep (benchmarks and parity checks). Never run in CI.

Usage: tutorial.py DICOM_DIR [--save-dir DIR] [--time-json FILE]
Writes (with --save-dir): hu.npy (int16 z,y,x), resampled.npy (int16), mask_fill.npy,
mask_nofill.npy (int8), and prints the numbers tutorial_reference.json holds.
"""
import argparse
import hashlib
import json
import os
import time

import numpy as np
import pydicom
import scipy.ndimage
from skimage import measure

MIN_BOUND = -1000.0
MAX_BOUND = 400.0
PIXEL_MEAN = 0.25


def load_scan(path):
    # The tutorial reads every file of the folder; we skip non-DICOM files and images without
    # positions (reference files live beside the data here), which the tutorial never met.
    slices = []
    for s in os.listdir(path):
        p = os.path.join(path, s)
        if not os.path.isfile(p):
            continue
        try:
            d = pydicom.dcmread(p)
        except Exception:
            continue
        if "ImagePositionPatient" in d and "PixelData" in d:
            slices.append(d)
    slices.sort(key=lambda x: float(x.ImagePositionPatient[2]))
    try:
        slice_thickness = np.abs(slices[0].ImagePositionPatient[2] - slices[1].ImagePositionPatient[2])
    except Exception:
        slice_thickness = np.abs(slices[0].SliceLocation - slices[1].SliceLocation)
    for s in slices:
        s.SliceThickness = slice_thickness
    return slices


def get_pixels_hu(slices):
    image = np.stack([s.pixel_array for s in slices])
    image = image.astype(np.int16)
    image[image == -2000] = 0
    for slice_number in range(len(slices)):
        intercept = slices[slice_number].RescaleIntercept
        slope = slices[slice_number].RescaleSlope
        if slope != 1:
            image[slice_number] = slope * image[slice_number].astype(np.float64)
            image[slice_number] = image[slice_number].astype(np.int16)
        image[slice_number] += np.int16(intercept)
    return np.array(image, dtype=np.int16)


def resample(image, scan, new_spacing=[1, 1, 1]):
    spacing = np.array([scan[0].SliceThickness] + list(scan[0].PixelSpacing), dtype=np.float32)
    resize_factor = spacing / new_spacing
    new_real_shape = image.shape * resize_factor
    new_shape = np.round(new_real_shape)
    real_resize_factor = new_shape / image.shape
    new_spacing = spacing / real_resize_factor
    image = scipy.ndimage.zoom(image, real_resize_factor, mode="nearest")
    return image, new_spacing


def largest_label_volume(im, bg=-1):
    vals, counts = np.unique(im, return_counts=True)
    counts = counts[vals != bg]
    vals = vals[vals != bg]
    if len(counts) > 0:
        return vals[np.argmax(counts)]
    return None


def segment_lung_mask(image, fill_lung_structures=True):
    binary_image = np.array(image > -320, dtype=np.int8) + 1
    labels = measure.label(binary_image)
    background_label = labels[0, 0, 0]
    binary_image[background_label == labels] = 2
    if fill_lung_structures:
        for i, axial_slice in enumerate(binary_image):
            axial_slice = axial_slice - 1
            labeling = measure.label(axial_slice)
            l_max = largest_label_volume(labeling, bg=0)
            if l_max is not None:
                binary_image[i][labeling != l_max] = 1
    binary_image -= 1
    binary_image = 1 - binary_image
    labels = measure.label(binary_image, background=0)
    l_max = largest_label_volume(labels, bg=0)
    if l_max is not None:
        binary_image[labels != l_max] = 0
    return binary_image


def normalize(image):
    image = (image - MIN_BOUND) / (MAX_BOUND - MIN_BOUND)
    image[image > 1] = 1.0
    image[image < 0] = 0.0
    return image


def zero_center(image):
    return image - PIXEL_MEAN


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dicom_dir")
    ap.add_argument("--save-dir")
    ap.add_argument("--time-json")
    a = ap.parse_args()
    t = {}
    t0 = time.perf_counter()
    scan = load_scan(a.dicom_dir)
    hu = get_pixels_hu(scan)
    t["load_hu"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res, spacing = resample(hu, scan, [1, 1, 1])
    t["resample"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mask_nofill = segment_lung_mask(res, False)
    mask_fill = segment_lung_mask(res, True)
    t["segment_both"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    norm = normalize(res.astype(np.float32))
    zc = zero_center(norm)
    t["normalize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    verts, faces, _, _ = measure.marching_cubes(res.transpose(2, 1, 0), 400)
    t["marching_cubes_bone"] = time.perf_counter() - t0
    out = {
        "n_files": len(scan),
        "hu_shape_zyx": list(hu.shape),
        "hu_sha256_int16_le_zyx": hashlib.sha256(hu.astype("<i2").tobytes()).hexdigest(),
        "resampled_shape_zyx": list(res.shape),
        "new_spacing_zyx_mm": [float(s) for s in spacing],
        "lung_mask_nofill_voxels": int(mask_nofill.sum()),
        "lung_mask_fill_voxels": int(mask_fill.sum()),
        "normalized_mean": float(norm.mean()),
        "zero_centered_mean": float(zc.mean()),
        "bone_mesh_vertices": int(len(verts)),
        "bone_mesh_faces": int(len(faces)),
        "seconds": t,
    }
    print(json.dumps(out, indent=1))
    if a.save_dir:
        os.makedirs(a.save_dir, exist_ok=True)
        np.save(os.path.join(a.save_dir, "hu.npy"), hu)
        np.save(os.path.join(a.save_dir, "resampled.npy"), res)
        np.save(os.path.join(a.save_dir, "mask_fill.npy"), mask_fill)
        np.save(os.path.join(a.save_dir, "mask_nofill.npy"), mask_nofill)
    if a.time_json:
        with open(a.time_json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
