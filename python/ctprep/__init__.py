"""ctprep: chest-CT DICOM to training-ready arrays, in memory.

The Kaggle DSB-2017 preprocessing tutorial's steps on numpy arrays, over the same Rust core as
the command-line tools (which ``pip install`` also puts on PATH)::

    import ctprep
    ct = ctprep.load_series("patient/")            # 2. stack the series (stored values)
    hu = ctprep.to_hu(ct)                          # 3. Hounsfield units, padding -> air
    iso = ctprep.resample(hu, spacing=1)           # 4. 1 x 1 x 1 mm
    verts, faces = ctprep.mesh(iso, level=400)     # 5. bone surface (LPS mm)
    lungs, qc = ctprep.lung_mask(iso)              # 6. lung mask + QC numbers
    x = ctprep.normalize(iso)                      # 7-8. [-1000, 400] -> [0, 1], minus 0.25
    x.array                                        # numpy float32 [z, y, x]

Arrays are ``[z, y, x]``; geometry is DICOM patient space (LPS, mm); ``Volume.affine`` is the
RAS affine nibabel reads from the NIfTI ``write`` makes. Each function releases the GIL while
it works. Errors raise :class:`CtprepError` subclasses carrying the tools' message and hint;
warnings are Python ``UserWarning``s.
"""

from ctprep._ctprep import (
    Volume,
    __version__,
    inspect,
    load_series,
    lung_mask,
    mesh,
    normalize,
    read,
    resample,
    to_hu,
    write,
    write_obj,
    write_stl,
)
from ctprep._errors import (
    CtprepError,
    CtprepIOError,
    EmptyResultError,
    InputError,
    TooLargeError,
    UnsupportedError,
    UsageError,
)

__all__ = [
    "Volume",
    "__version__",
    "inspect",
    "load_series",
    "lung_mask",
    "mesh",
    "normalize",
    "read",
    "resample",
    "to_hu",
    "write",
    "write_obj",
    "write_stl",
    "CtprepError",
    "CtprepIOError",
    "EmptyResultError",
    "InputError",
    "TooLargeError",
    "UnsupportedError",
    "UsageError",
]
