"""dcm-inspect --tag against pydicom on every DICOM file of a folder (run by hand, never in CI).

Usage: inspect_vs_pydicom.py DIR [--bin target/release]
For PatientID, ImagePositionPatient, PixelSpacing, RescaleSlope, RescaleIntercept and
PixelPaddingValue, compares dcm-inspect's table (one call over the folder) with str(ds.Keyword).
"""
import argparse
import csv
import io
import os
import subprocess
import sys

import pydicom

TAGS = ["PatientID", "ImagePositionPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept", "PixelPaddingValue"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    cmd = [os.path.join(a.bin, "dcm-inspect"), a.dir] + sum([["--tag", t] for t in TAGS], [])
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rows = {r["file"]: r for r in csv.DictReader(io.StringIO(out), delimiter="\t")}
    files = checked = mismatches = 0
    for path, r in sorted(rows.items()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        files += 1
        for t in TAGS:
            theirs = str(ds[t].value) if t in ds else ""
            ours = r[t]
            checked += 1
            if theirs != ours:
                mismatches += 1
                print(f"MISMATCH {path} {t}: pydicom {theirs!r} ours {ours!r}")
    print(f"pydicom {pydicom.__version__}: {files} files, {checked} values compared, {mismatches} mismatches")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
