"""Oracle numbers for vol-resample's default (physical, ITK) grid: SimpleITK's linear Resample onto
the grid ctprep computes (same physical box, shape = round(extent / spacing)). Run by hand.

a[z,y,x] = ((7z + 3y + x^2) % 11) * 10, shape (4,5,6), spacing (1,1,1), origin 0, to spacing
(0.7, 0.8, 1.5) x,y,z.
"""
import numpy as np
import SimpleITK as sitk

z, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
a = (((7 * z + 3 * y + x * x) % 11) * 10).astype(np.float32)
img = sitk.GetImageFromArray(a)
n = np.array([6, 5, 4], float)  # x, y, z
target = np.array([0.7, 0.8, 1.5])
m = np.round(n * 1.0 / target).astype(int)
sp = n * 1.0 / m
origin = -0.5 + sp / 2
out = sitk.Resample(img, [int(v) for v in m], sitk.Transform(), sitk.sitkLinear, origin.tolist(), sp.tolist(), img.GetDirection(), -1024.0, sitk.sitkFloat32)
r = sitk.GetArrayFromImage(out)
print("SimpleITK", sitk.Version_VersionString(), "shape zyx", r.shape, "spacing", sp.tolist(), "origin", origin.tolist())
for p in [(0, 0, 0), (1, 2, 3), (2, 5, 8), (2, 3, 4), (1, 5, 0)]:
    print(p, float(r[p]))
