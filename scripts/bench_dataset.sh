#!/usr/bin/env bash
# make bench-dataset: N patients through the Snakemake workflow (--cores 2) and through ctprep.mk
# (-j2), the same steps and outputs, alternating, same run; the tutorial's Python loop on a subset.
# Reports scans per hour, seconds per scan, Snakemake's overhead per job, peak memory per job and
# the extrapolation to DSB-2017 (1,595 scans). Results: bench/out/dataset/results.md.
# Input: N copies of ../shared/data/ct/midrc-ricord-1a-001012, each with its own UIDs; without it,
# N phantoms of 512 x 512 x 248.
set -euo pipefail
N=${1:-20}
SUBSET=${SUBSET:-2}
ROUNDS=${ROUNDS:-2}
cd "$(dirname "$0")/.."
BIN=target/release
OUT=bench/out/dataset
SNAKE=target/py/snake/bin/snakemake
VENV=target/bench-venv
DATA=../shared/data/ct/midrc-ricord-1a-001012
mkdir -p "$OUT"
IN="$OUT/patients"
if [ "$(ls "$IN" 2>/dev/null | wc -l)" != "$N" ]; then
  rm -rf "$IN"
  if [ -d "$DATA" ]; then
    if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pydicom; fi
    echo "bench-dataset: $N copies of $DATA with their own UIDs" >&2
    "$VENV/bin/python" scripts/reference/copy_series.py "$DATA" "$IN" "$N"
  else
    for i in $(seq -w 0 $((N - 1))); do "$BIN/ct-phantom" "$IN/patient0$i" --size 512 --slices 248 --seed "$i" -q; done
  fi
fi
cores=2
secs() { awk "BEGIN {print $2 - $1}"; }
declare -a SNAKE_T MAKE_T
for r in $(seq "$ROUNDS"); do
  rm -rf "$OUT/snake" "$OUT/make" && sync
  t0=$(date +%s.%N)
  "$SNAKE" -s workflow/Snakefile --cores $cores --quiet all --config input="$IN" output="$OUT/snake" bin="$BIN" \
    > "$OUT/snake.log" 2>&1
  t1=$(date +%s.%N); SNAKE_T+=("$(secs "$t0" "$t1")")
  t0=$(date +%s.%N)
  make -s -j$cores -f scripts/ctprep.mk IN="$IN" OUT="$OUT/make" BIN="$BIN" > "$OUT/make.log" 2>&1
  t1=$(date +%s.%N); MAKE_T+=("$(secs "$t0" "$t1")")
  echo "bench-dataset: round $r: snakemake ${SNAKE_T[-1]} s, ctprep.mk ${MAKE_T[-1]} s" >&2
done
# The dataset statistics: merging the per-patient fits (what the workflow does) against fitting
# over the volumes themselves.
t0=$(date +%s.%N); "$BIN/vol-normalize" --fit "$OUT"/snake/*/volume/fit.json -o "$OUT/merged.json" -q
t1=$(date +%s.%N); MERGE=$(secs "$t0" "$t1")
t0=$(date +%s.%N); "$BIN/vol-normalize" --fit "$OUT"/snake/*/volume/hu_1mm.nii -o "$OUT/refit.json" -q
t1=$(date +%s.%N); REFIT=$(secs "$t0" "$t1")
# Snakemake's fixed cost: parsing the Snakefile, listing the files, building the DAG (a no-op rerun).
t0=$(date +%s.%N); "$SNAKE" -s workflow/Snakefile --cores $cores --config input="$IN" output="$OUT/snake" bin="$BIN" > /dev/null 2>&1
t1=$(date +%s.%N); NOOP=$(secs "$t0" "$t1")
# The tutorial's loop (scripts/reference/tutorial.py: load, HU, resample, both masks, normalize,
# bone mesh, saving its arrays) on the first SUBSET patients.
TUT=()
if "$VENV/bin/python" -c "import scipy, skimage, pydicom" 2>/dev/null; then
  for p in $(ls "$IN" | head -"$SUBSET"); do
    t0=$(date +%s.%N); "$VENV/bin/python" scripts/reference/tutorial.py "$IN/$p" --save-dir "$OUT/tutorial/$p" > /dev/null 2>&1
    t1=$(date +%s.%N); TUT+=("$(secs "$t0" "$t1")")
  done
fi
python3 - "$OUT" "$N" "$cores" "$NOOP" "${SNAKE_T[*]}" "${MAKE_T[*]}" "${TUT[*]:-}" "$MERGE" "$REFIT" <<'PY'
import glob, json, os, statistics, sys
out, n, cores, noop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
merge, refit = float(sys.argv[8]), float(sys.argv[9])
snake = [float(x) for x in sys.argv[5].split()]
make = [float(x) for x in sys.argv[6].split()]
tut = [float(x) for x in sys.argv[7].split()] if sys.argv[7] else []
s, m = statistics.median(snake), statistics.median(make)
steps = {}
for f in glob.glob(f"{out}/snake/*/*/status.json"):
    st = json.load(open(f))
    steps.setdefault(st["step"], []).append(st)
jobs = sum(len(v) for v in steps.values()) + 2  # + stats, report
failed = sorted({os.path.basename(os.path.dirname(os.path.dirname(f))) for f in glob.glob(f"{out}/snake/*/*/status.json") if not json.load(open(f))["ok"]})
per_scan = s / n
rows = [
    "| | Snakemake workflow | ctprep.mk | tutorial loop (Python) |",
    "|---|---|---|---|",
    f"| wall time, {n} scans, {cores} cores | {s:.1f} s (runs: {', '.join(f'{x:.1f}' for x in snake)}) | {m:.1f} s (runs: {', '.join(f'{x:.1f}' for x in make)}) | {len(tut)} scans: {', '.join(f'{x:.1f}' for x in tut) or 'not run'} s |",
    f"| seconds per scan | {s / n:.2f} | {m / n:.2f} | {statistics.median(tut) if tut else float('nan'):.1f} |",
    f"| scans per hour | {3600 * n / s:.0f} | {3600 * n / m:.0f} | {3600 / statistics.median(tut) if tut else float('nan'):.0f} |",
    f"| DSB-2017 (1,595 scans) on this machine | {1595 * s / n / 3600:.2f} h | {1595 * m / n / 3600:.2f} h | {1595 * statistics.median(tut) / 3600 if tut else float('nan'):.1f} h |",
]
lines = [f"# Batch benchmark: {n} scans", "", *rows, "",
         f"Workflow throughput / ctprep.mk's: {m / s:.3f} (1.0 = the same; the target is within 10%: >= 0.9).",
         f"Snakemake's overhead: {s - m:+.1f} s over {jobs} jobs = {(s - m) * cores / jobs * 1000:+.0f} ms of core time per job; a no-op rerun (parse, list {n} folders, DAG) takes {noop:.1f} s.",
         f"Failed patients: {', '.join(failed) or 'none'}.", "",
         "| step | jobs | median s | max s | median peak RSS MB | max peak RSS MB |", "|---|---|---|---|---|---|"]
for step in ("volume", "lungs", "bone", "thumbs", "normalize"):
    v = steps.get(step, [])
    if not v:
        continue
    sec = [x["seconds"] for x in v if "seconds" in x]; mem = [x["peak_rss_mb"] for x in v if "peak_rss_mb" in x]
    lines.append(f"| {step} | {len(v)} | {statistics.median(sec):.2f} | {max(sec):.2f} | {statistics.median(mem):.0f} | {max(mem):.0f} |")
lines += ["", f"Dataset statistics: merging the {n} per-patient fits took {merge:.2f} s; fitting over the {n} volumes again would take {refit:.1f} s.",
          f"Extrapolated to DSB-2017 (1,595 scans): {1595 * s / n / 3600:.2f} h for the workflow on this 2-core machine; on 100 such nodes {1595 * s / n / 100 / 60:.1f} min of patient jobs (if the scheduler keeps every node busy; queueing not counted) plus the merge of 1,595 fits (about {merge / n * 1595:.1f} s at this rate)."]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
# 6.5 GB per run and tool (80 MB volumes, 105 MB bone meshes, 160 MB inputs per scan): the disk is shared.
rm -rf "$OUT/snake" "$OUT/make" "$OUT/tutorial"
