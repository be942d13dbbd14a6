#!/usr/bin/env bash
# make bench: ctprep against the tutorial's Python code and the best Python peers, same input,
# same run, this machine. Medians of several runs; peak memory from /usr/bin/time -v.
# Input: ../shared/data/ct/midrc-ricord-1a-001012 when present, else a 512x512x200 phantom.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
OUT=bench/out
RUNS=${RUNS:-5}
mkdir -p "$OUT"
DATA=../shared/data/ct/midrc-ricord-1a-001012
if [ -d "$DATA" ]; then
  IN="$DATA"; LABEL="midrc-ricord-1a-001012 (248 x 512 x 512, JPEG lossless)"
else
  IN="$OUT/phantom"; LABEL="ct-phantom 512 x 512 x 200"
  [ -d "$IN" ] || "$BIN/ct-phantom" "$IN" --size 512 --slices 200 --slice-spacing 1.25 -q
fi

VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "bench: creating $VENV (numpy, scipy, scikit-image, pydicom, SimpleITK, cc3d, vtk)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy scipy scikit-image pydicom pylibjpeg pylibjpeg-libjpeg SimpleITK connected-components-3d vtk
fi
PY="$VENV/bin/python"
# The Python package, as `make wheel` built it from this tree.
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/ctprep-*.whl

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Every timed run writes new files, as a first run on a patient does: the previous run's outputs
# are removed first, outside the timing (replacing a file also frees the old one's page cache,
# 0-0.15 s per 160 MB on this machine's ext4, and made the numbers bimodal).
fresh() { rm -f "$OUT"/x_* "$OUT"/p_*; }
# median wall time (s) of RUNS runs of a command
med() {
  local ts=() t0 t1
  for _ in $(seq "$RUNS"); do
    fresh
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    ts+=("$(awk "BEGIN {print $t1 - $t0}")")
  done
  median "${ts[@]}"
}
# peak resident memory (MB) of one run
peak() { fresh; /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {printf "%.0f", $2/1024}'; }
# A ctprep tool: median wall time of RUNS quiet runs into T[key]; median of the "time in memory:
# X s" it reports under -v (the work alone, no file I/O: how the peers are timed) over RUNS more
# runs into K[key] (separate runs: -v adds work, e.g. vol-mesh's mesh QC); peak memory into M[key].
tool_bench() {
  local key=$1 ks=()
  shift
  T[$key]=$(med "$@" -q)
  for _ in $(seq "$RUNS"); do
    fresh
    ks+=("$("$@" -v 2>&1 >/dev/null | sed -n 's/.*time in memory: \([0-9.]*\) s.*/\1/p')")
  done
  K[$key]=$(median "${ks[@]}"); M[$key]=$(peak "$@" -q)
}

"$BIN/hu-convert" "$IN" -o "$OUT/hu.nii" -q
"$BIN/vol-resample" "$OUT/hu.nii" --spacing 1 -o "$OUT/hu_1mm.nii" -q
"$BIN/lung-seg" "$OUT/hu_1mm.nii" -o "$OUT/lungs.nii" -q

declare -A T M K
T[inspect]=$(med "$BIN/dcm-inspect" "$IN" --tag PatientID --tag ImagePositionPatient)
T[series]=$(med "$BIN/dcm-inspect" --series "$IN")
tool_bench stack_hu "$BIN/hu-convert" "$IN" -o "$OUT/x_hu.nii"
tool_bench resample_linear "$BIN/vol-resample" "$OUT/hu.nii" --spacing 1 -o "$OUT/x_r.nii"
tool_bench resample_cubic "$BIN/vol-resample" "$OUT/hu.nii" --spacing 1 --interp cubic -o "$OUT/x_r.nii"
tool_bench lungseg "$BIN/lung-seg" "$OUT/hu_1mm.nii" -o "$OUT/x_m.nii"
tool_bench lungseg_tutorial "$BIN/lung-seg" "$OUT/hu_1mm.nii" --method tutorial --fill -o "$OUT/x_m.nii"
tool_bench normalize "$BIN/vol-normalize" "$OUT/hu_1mm.nii" -o "$OUT/x_n.npy"
# vol-normalize's floor: reading its input and writing its output's bytes to a new file.
NPY_BYTES=$(stat -c %s "$OUT/x_n.npy")
T[normalize_io]=$(med sh -c "cat '$OUT/hu_1mm.nii' > /dev/null && head -c $NPY_BYTES /dev/zero > '$OUT/x_zero.bin'")
tool_bench mesh "$BIN/vol-mesh" "$OUT/hu_1mm.nii" --level 400 -o "$OUT/x_bone.stl"
# The 1 mm volume's three consumers, side by side.
pipeline_rest() {
  "$BIN/lung-seg" "$OUT/p_hu_1mm.nii" -o "$OUT/p_lungs.nii" -q &
  "$BIN/vol-mesh" "$OUT/p_hu_1mm.nii" --level 400 -o "$OUT/p_bone.stl" -q &
  "$BIN/vol-normalize" "$OUT/p_hu_1mm.nii" -o "$OUT/p_input.npy" -q
  wait
}
pipeline() {
  "$BIN/hu-convert" "$IN" -q | "$BIN/vol-resample" --spacing 1 -o "$OUT/p_hu_1mm.nii" -q
  pipeline_rest
}
# The same through files only: no pipe between the first two steps.
pipeline_files() {
  "$BIN/hu-convert" "$IN" -o "$OUT/p_hu.nii" -q
  "$BIN/vol-resample" "$OUT/p_hu.nii" --spacing 1 -o "$OUT/p_hu_1mm.nii" -q
  pipeline_rest
}
export -f pipeline pipeline_files pipeline_rest; export BIN OUT IN
T[pipeline]=$(med bash -c pipeline)
T[pipeline_files]=$(med bash -c pipeline_files)
M[pipeline]=$(peak bash -c pipeline)
# The whole pipeline's physical floor (issue #23, crates/core/examples/io_floor.rs): the header
# scan, reading and decoding every file on both cores, and writing the bytes the piped pipeline
# writes (its four outputs and their sidecars), as a whole process.
OUT_BYTES=$(cat "$OUT"/p_hu_1mm.nii "$OUT"/p_lungs.nii "$OUT"/p_bone.stl "$OUT"/p_input.npy "$OUT"/p_*.json | wc -c)
T[floor]=$(med target/release/examples/io_floor "$IN" "$OUT/x_floor" "$OUT_BYTES")
fresh  # the floor's 0.4 GB of zeros are not kept

echo "bench: running the tutorial's Python code (about 25 s) and the peers" >&2
"$PY" scripts/reference/tutorial.py "$IN" > "$OUT/tutorial.json"
"$PY" scripts/reference/peers.py "$IN" "$OUT/hu_1mm.nii" > "$OUT/peers.json"
"$PY" scripts/reference/python_module.py "$IN" "$RUNS" > "$OUT/python_module.json"

"$PY" - "$OUT" "$LABEL" <<PYEOF
import json, sys, platform, os
out, label = sys.argv[1], sys.argv[2]
tut = json.load(open(f"{out}/tutorial.json"))["seconds"]
peer = json.load(open(f"{out}/peers.json"))
ours = {k: float(v) for k, v in {
$(for k in "${!T[@]}"; do echo "  '$k': '${T[$k]}',"; done)
}.items()}
inmem = {k: float(v) for k, v in {
$(for k in "${!K[@]}"; do echo "  '$k': '${K[$k]}',"; done)
}.items()}
mem = {
$(for k in "${!M[@]}"; do echo "  '$k': '${M[$k]}',"; done)
}
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1]
rows = [
 ("inspect 248 headers (--tag)", ours["inspect"], None, None, ""),
 ("series pre-flight (--series)", ours["series"], None, None, ""),
 ("DICOM -> HU volume", ours["stack_hu"], tut["load_hu"], peer["sitk_read_series"], "SimpleITK ImageSeriesReader"),
 ("resample 1 mm, linear", ours["resample_linear"], None, peer["sitk_linear_resample_1mm"], "SimpleITK Resample linear"),
 ("resample 1 mm, cubic", ours["resample_cubic"], tut["resample"], peer["sitk_bspline_resample_1mm"], "SimpleITK B-spline"),
 ("lung mask, robust default", ours["lungseg"], tut["segment_both"] / 2, peer["cc3d_label_26"], "cc3d labelling alone"),
 ("lung mask, --method tutorial --fill", ours["lungseg_tutorial"], tut["segment_both"] / 2, None, ""),
 ("normalize + zero-center (incl. I/O)", ours["normalize"], tut["normalize"], peer["numpy_normalize_center"], "numpy in memory"),
 ("bone mesh 400 HU -> STL (incl. I/O)", ours["mesh"], tut["marching_cubes_bone"], peer["vtk_flying_edges_400"], "VTK flying edges, in memory"),
 ("whole pipeline (DICOM -> NPY + mask + STL)", ours["pipeline"], sum(tut.values()), peer["python_best_composition"], "SimpleITK + cc3d + numpy + VTK"),
]
f = lambda v: "-" if v is None else f"{v:.3f}"
r = lambda a, b: "-" if b is None or a == 0 else f"{b / a:.1f}x"
lines = [f"Input: {label}. Machine: {cpu[0] if cpu else platform.processor()}, {os.cpu_count()} cores. Medians of several runs, seconds.", "",
         "| stage | ctprep | tutorial (Python) | speed-up | best peer | peer | ctprep vs peer |", "|---|---|---|---|---|---|---|"]
for name, o, t, p, pn in rows:
    lines.append(f"| {name} | {f(o)} | {f(t)} | {r(o, t)} | {f(p)} | {pn} | {r(o, p)} |")
lines += ["", "The work alone, in memory (what each tool reports with -v; the peers are timed the same way):", "",
          "| stage | ctprep in memory | best peer | peer | ctprep vs peer |", "|---|---|---|---|---|"]
for name, key, p, pn in [
    ("DICOM -> HU volume (reading and decoding included)", "stack_hu", peer["sitk_read_series"], "SimpleITK ImageSeriesReader"),
    ("resample 1 mm, linear (anti-aliasing included)", "resample_linear", peer["sitk_linear_resample_1mm"], "SimpleITK Resample linear"),
    ("resample 1 mm, cubic", "resample_cubic", peer["sitk_bspline_resample_1mm"], "SimpleITK B-spline"),
    ("lung mask, robust default", "lungseg", peer["cc3d_label_26"], "cc3d labelling alone"),
    ("normalize + zero-center", "normalize", peer["numpy_normalize_center"], "numpy"),
    ("bone mesh, marching cubes", "mesh", peer["vtk_flying_edges_400"], "VTK flying edges"),
]:
    lines.append(f"| {name} | {f(inmem[key])} | {f(p)} | {pn} | {inmem[key] / p:.2f} of the peer's time |")
pym = json.load(open(f"{out}/python_module.json"))
lines += ["", "The Python module (import ctprep), in process, numpy in and out, against the tools' in-memory figures (target: within 1.1x):", "",
          "| stage | ctprep.py | CLI in memory | ratio | tutorial (Python) | speed-up |", "|---|---|---|---|---|---|"]
for name, key, pykey, t in [
    ("load_series + to_hu", "stack_hu", "load_hu", tut["load_hu"]),
    ("resample 1 mm, linear", "resample_linear", "resample_linear", None),
    ("resample 1 mm, cubic", "resample_cubic", "resample_cubic", tut["resample"]),
    ("lung_mask, robust", "lungseg", "lungseg", tut["segment_both"] / 2),
    ("lung_mask, tutorial + fill", "lungseg_tutorial", "lungseg_tutorial", tut["segment_both"] / 2),
    ("normalize + zero-center", "normalize", "normalize", tut["normalize"]),
    ("mesh 400 HU", "mesh", "mesh", tut["marching_cubes_bone"]),
]:
    lines.append(f"| {name} | {pym[pykey]:.3f} | {f(inmem[key])} | {pym[pykey] / inmem[key]:.2f} | {f(t)} | {r(pym[pykey], t)} |")
for name, key in [("whole pipeline in memory, sequential", "pipeline_sequential"), ("whole pipeline in memory, last three steps in threads", "pipeline_threads")]:
    lines.append(f"| {name} | {pym[key]:.3f} | - | - | {sum(tut.values()):.3f} | {sum(tut.values()) / pym[key]:.1f}x |")
lines += ["", f"The whole pipeline's physical floor (scanning the headers, reading and decoding every file on both cores, writing the outputs' {int('$OUT_BYTES') / 1e6:.0f} MB): {ours['floor']:.3f} s. "
          f"The pipeline takes {ours['pipeline'] / ours['floor']:.2f}x that with its first step piped ({ours['pipeline']:.3f} s) and {ours['pipeline_files'] / ours['floor']:.2f}x through files ({ours['pipeline_files']:.3f} s)."]
lines += [f"The array of the normalized volume (a view, no copy): {pym['to_numpy'] * 1e6:.1f} us."]
lines += ["", f"vol-normalize's I/O floor (reading the 1 mm volume, writing its output's bytes to a new file): {ours['normalize_io']:.3f} s; vol-normalize takes {ours['normalize'] / ours['normalize_io']:.2f}x that.",
          "Peak memory (MB): " + ", ".join(f"{k} {v}" for k, v in sorted(mem.items())),
          f"VTK flying edges: {peer['vtk_flying_edges_points']} points, {peer['vtk_flying_edges_cells']} triangles; tutorial (skimage) bone mesh on its cubic volume: {json.load(open(f'{out}/tutorial.json'))['bone_mesh_vertices']} vertices.",
          "Versions: " + json.dumps(peer["versions"])]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
