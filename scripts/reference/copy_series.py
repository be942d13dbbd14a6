"""Copy one DICOM series into N patient folders, each with its own PatientID and UIDs (the pixel
data is copied as stored, compressed or not): the batch benchmark's dataset.

Usage: copy_series.py SRC_DIR DST_DIR N
"""
import os
import shutil
import sys

import pydicom
from pydicom.uid import generate_uid


def main(src, dst, n):
    files = sorted(f for f in os.listdir(src) if os.path.isfile(os.path.join(src, f)))
    for i in range(n):
        folder = os.path.join(dst, f"patient{i:03d}")
        os.makedirs(folder, exist_ok=True)
        for name in files:
            try:
                ds = pydicom.dcmread(os.path.join(src, name))
            except pydicom.errors.InvalidDicomError:
                shutil.copy(os.path.join(src, name), folder)  # the folder's other files, as they are
                continue
            tag = f"{i}"
            ds.PatientID = f"BENCH{i:03d}"
            for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
                if key in ds:
                    setattr(ds, key, generate_uid(entropy_srcs=[str(getattr(ds, key)), tag]))
            if hasattr(ds, "file_meta") and "SOPInstanceUID" in ds:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(os.path.join(folder, name))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
