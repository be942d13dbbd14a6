"""Best-of-breed Python peers for each stage, timed in memory (benchmarks only, never in CI).

Usage: peers.py DICOM_DIR HU_1MM_NII
Prints JSON: seconds per stage (median of --repeat runs) and the library versions.
"""
import argparse
import json
import statistics
import time

import cc3d
import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support


def timed(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dicom_dir")
    ap.add_argument("hu_1mm")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    res = {"versions": {"SimpleITK": sitk.Version_VersionString(), "vtk": vtk.vtkVersion.GetVTKVersion(), "cc3d": getattr(cc3d, "__version__", "?"), "numpy": np.__version__}}

    def read():
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(a.dicom_dir))
        return r.Execute()

    t, img = timed(read, a.repeat)
    res["sitk_read_series"] = t

    def resample():
        spacing = (1.0, 1.0, 1.0)
        size = [int(round(sz * sp / 1.0)) for sz, sp in zip(img.GetSize(), img.GetSpacing())]
        return sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), spacing, img.GetDirection(), -1024, img.GetPixelID())

    t, r1 = timed(resample, a.repeat)
    res["sitk_linear_resample_1mm"] = t

    def bspline():
        size = [int(round(sz * sp / 1.0)) for sz, sp in zip(img.GetSize(), img.GetSpacing())]
        return sitk.Resample(img, size, sitk.Transform(), sitk.sitkBSpline, img.GetOrigin(), (1.0, 1.0, 1.0), img.GetDirection(), -1024, img.GetPixelID())

    t, _ = timed(bspline, 1)
    res["sitk_bspline_resample_1mm"] = t

    hu = sitk.GetArrayFromImage(sitk.ReadImage(a.hu_1mm))
    air = hu <= -320
    t, _ = timed(lambda: cc3d.connected_components(air, connectivity=26), a.repeat)
    res["cc3d_label_26"] = t

    def normalize():
        x = hu.astype(np.float32)
        x -= -1000.0
        x /= 1400.0
        np.clip(x, 0.0, 1.0, out=x)
        x -= 0.25
        return x

    t, _ = timed(normalize, a.repeat)
    res["numpy_normalize_center"] = t

    vimg = vtk.vtkImageData()
    vimg.SetDimensions(hu.shape[2], hu.shape[1], hu.shape[0])
    vimg.GetPointData().SetScalars(numpy_support.numpy_to_vtk(hu.ravel(order="C"), deep=True))

    def flying_edges():
        fe = vtk.vtkFlyingEdges3D()
        fe.SetInputData(vimg)
        fe.SetValue(0, 400)
        fe.ComputeNormalsOff()
        fe.ComputeGradientsOff()
        fe.Update()
        return fe.GetOutput()

    t, mesh = timed(flying_edges, a.repeat)
    res["vtk_flying_edges_400"] = t
    res["vtk_flying_edges_points"] = mesh.GetNumberOfPoints()
    res["vtk_flying_edges_cells"] = mesh.GetNumberOfCells()

    def composition():
        # In memory: read, linear resample, cc3d lung mask, numpy normalize, VTK bone surface.
        im = read()
        size = [int(round(sz * sp / 1.0)) for sz, sp in zip(im.GetSize(), im.GetSpacing())]
        rr = sitk.Resample(im, size, sitk.Transform(), sitk.sitkLinear, im.GetOrigin(), (1.0, 1.0, 1.0), im.GetDirection(), -1024, im.GetPixelID())
        arr = sitk.GetArrayFromImage(rr)
        lab = cc3d.connected_components(arr <= -320, connectivity=26)
        bg = lab[0, 0, 0]
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        counts[bg] = 0
        lung = lab == counts.argmax()
        x = (arr.astype(np.float32) + 1000.0) / 1400.0
        np.clip(x, 0, 1, out=x)
        x -= 0.25
        v = vtk.vtkImageData()
        v.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
        v.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.ravel(order="C"), deep=True))
        fe = vtk.vtkFlyingEdges3D()
        fe.SetInputData(v)
        fe.SetValue(0, 400)
        fe.Update()
        return lung.sum()

    t, _ = timed(composition, 1)
    res["python_best_composition"] = t
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
