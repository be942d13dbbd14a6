# %% [markdown]
# # The DSB-2017 preprocessing tutorial, with ctprep
#
# The eight steps of the Kaggle "Full Preprocessing Tutorial" on a synthetic chest CT, in memory,
# with numpy arrays. Cells are `# %%` blocks: open this file as a notebook in VS Code or Jupyter
# (jupytext), or run it whole: `python examples/tutorial.py [OUT_DIR]`.

# %%
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import ctprep

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ctprep-tutorial-"))
out.mkdir(parents=True, exist_ok=True)

# The built-in sample: a chest phantom as a DICOM folder (random file names, no SliceThickness,
# padding -2000 outside the field of view, a localizer and junk files in the folder).
phantom = shutil.which("ct-phantom") or str(Path(sys.executable).parent / "ct-phantom")
subprocess.run([phantom, str(out / "dicom"), "--size", "192", "--slices", "80", "--slice-spacing", "3",
                "--localizer", "--junk", "-q"], check=True)
first = sorted((out / "dicom").glob("*.dcm"))[0]

# %% [markdown]
# ## 1. Inspect DICOM tags

# %%
print(ctprep.inspect(first, tags=["PatientID", "ImagePositionPatient", "PixelPaddingValue", "(0028,1053)"]))

# %% [markdown]
# ## 2. Load the series into a 3-D volume
# The localizer and the junk are left out; slice spacing comes from ImagePositionPatient (the
# tutorial's `load_scan` fills SliceThickness the same way).

# %%
ct = ctprep.load_series(out / "dicom")
print(ct)
print("why this series:", ct.meta["extra"]["series_choice"]["why"])

# %% [markdown]
# ## 3. Hounsfield units
# RescaleSlope/Intercept applied; padding (-2000 here) becomes air, as the tutorial's
# `get_pixels_hu` does with `image[image == -2000] = 0`.

# %%
hu = ctprep.to_hu(ct)
print("HU range:", hu.array.min(), hu.array.max())
print("histogram (HU, voxels):", np.histogram(hu.array, bins=[-1100, -900, -500, -100, 100, 400, 3000])[0])

# %% [markdown]
# ## 4. Resample to 1 x 1 x 1 mm
# `grid="corners"` is the tutorial's `scipy.ndimage.interpolation.zoom`; the default keeps the
# physical box (SimpleITK). `interp="cubic"` is scipy's order-3 spline.

# %%
iso = ctprep.resample(hu, spacing=1)
print("shape before", hu.shape, "after", iso.shape, "spacing", iso.spacing)

# %% [markdown]
# ## 5. Render in 3-D: marching cubes at 400 HU (bone), to STL for MeshLab, Blender or 3D Slicer

# %%
verts, faces = ctprep.mesh(iso, level=400)
ctprep.write_stl(out / "bone.stl", verts, faces)
print(f"bone surface: {len(verts)} vertices, {len(faces)} triangles, LPS mm -> {out / 'bone.stl'}")

# %% [markdown]
# ## 6. Segment the lungs
# The robust default separates the lungs and removes the airways; `method="tutorial"` is the
# tutorial's `segment_lung_mask(image, fill_lung_structures=True)`.

# %%
lungs, qc = ctprep.lung_mask(iso, labels=True)
print(f"lungs: right {qc['right_ml']:.0f} mL, left {qc['left_ml']:.0f} mL, {100 * qc['body_fraction']:.1f}% of the body")
tutorial_mask, tqc = ctprep.lung_mask(iso, method="tutorial", fill=True)
print(f"the tutorial's mask: {tqc['total_ml']:.0f} mL")
dilated, _ = ctprep.lung_mask(iso, dilate_mm=5)
ctprep.write(lungs, out / "lungs.nii.gz")

# %% [markdown]
# ## 7-8. Normalize ([-1000, 400] HU -> [0, 1]) and zero-center (minus 0.25, LUNA16's mean)

# %%
x = ctprep.normalize(iso, range=(-1000, 400), mean=0.25)
print("normalized:", x.array.dtype, x.array.shape, f"mean {x.array.mean():.3f}")
lung_input = ctprep.normalize(iso, mask=dilated, outside=0.0)
ctprep.write(x, out / "input.npy")  # geometry in input.json beside it
print("written:", sorted(p.name for p in out.iterdir() if p.is_file()))
