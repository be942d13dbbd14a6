"""Oracle numbers for crates/core/src/resample.rs tests (run by hand, never in CI).

a[z,y,x] = ((7z + 3y + x^2) % 11) * 10, shape (4,5,6), zoomed to (6,7,9) with scipy's default
corner-aligned grid and mode='nearest', as the DSB tutorial's resample() does.
"""
import numpy as np
import scipy
import scipy.ndimage as ndi

z, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
a = (((7 * z + 3 * y + x * x) % 11) * 10).astype(np.float64)
factors = (6 / 4, 7 / 5, 9 / 6)
points = [(0, 0, 0), (1, 2, 3), (3, 3, 4), (5, 6, 8), (2, 5, 7)]
print("scipy", scipy.__version__, "numpy", np.__version__)
for order in (1, 3):
    r = ndi.zoom(a, factors, order=order, mode="nearest")
    assert r.shape == (6, 7, 9)
    print(f"order={order}:", [(p, float(r[p])) for p in points])
