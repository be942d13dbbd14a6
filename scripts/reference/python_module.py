"""make bench: the `ctprep` Python module in process, step by step, on the bench input.

Each step is timed as a Python user calls it (numpy arrays in, numpy arrays out, no files),
median of RUNS; the whole in-memory pipeline once sequentially and once with the three last
steps in threads (every call releases the GIL). Prints JSON seconds.
Usage: python python_module.py DICOM_DIR RUNS
"""

import json
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import ctprep

warnings.simplefilter("ignore")  # QC warnings are the tools' business here, not the timing's
src, runs = sys.argv[1], int(sys.argv[2])


def timed(f):
    ts, r = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        r = f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), r


out = {}
out["load_hu"], hu = timed(lambda: ctprep.to_hu(ctprep.load_series(src)))
out["resample_linear"], iso = timed(lambda: ctprep.resample(hu, spacing=1))
out["resample_cubic"], _ = timed(lambda: ctprep.resample(hu, spacing=1, interp="cubic"))
out["lungseg"], _ = timed(lambda: ctprep.lung_mask(iso))
out["lungseg_tutorial"], _ = timed(lambda: ctprep.lung_mask(iso, method="tutorial", fill=True))
out["normalize"], x = timed(lambda: ctprep.normalize(iso))
out["mesh"], _ = timed(lambda: ctprep.mesh(iso, level=400))
# The array a network gets is a view of the volume's memory: no copy.
out["to_numpy"], _ = timed(lambda: x.array)


def pipeline_sequential():
    iso = ctprep.resample(ctprep.to_hu(ctprep.load_series(src)), spacing=1)
    return ctprep.lung_mask(iso), ctprep.normalize(iso), ctprep.mesh(iso, level=400)


def pipeline_threads():
    iso = ctprep.resample(ctprep.to_hu(ctprep.load_series(src)), spacing=1)
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(ctprep.lung_mask, iso), pool.submit(ctprep.normalize, iso), pool.submit(ctprep.mesh, iso, 400)]
        return [j.result() for j in jobs]


out["pipeline_sequential"], _ = timed(pipeline_sequential)
out["pipeline_threads"], _ = timed(pipeline_threads)
out["version"] = ctprep.__version__
print(json.dumps(out))
