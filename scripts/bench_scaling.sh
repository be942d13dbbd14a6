#!/usr/bin/env bash
# make bench-scaling: does each stage's cost grow linearly with the scan? Phantoms of 512 x 512
# slices (0.7 mm pixels) at 100, 250, 500 and 1,000 slices of 1.25 mm, and a thin-slice case
# (500 slices of 0.5 mm); each stage timed as a whole process (median of RUNS), in memory (the
# "time in memory" it reports under -v) and for peak memory. Writes bench/out/scaling.md.
# The per-voxel cost is against the first case (100 slices) (issue #23: within 1.3x across sizes); peak
# memory is against the largest volume the stage holds (input or output; under 2x).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
OUT=bench/out/scaling
RUNS=${RUNS:-3}
mkdir -p "$OUT"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# stage NAME OUTPUT CMD...: median wall time, median time in memory, peak RSS (MB) into W, K, P.
stage() {
  local out=$1 ws=() ks=() t0 t1
  shift
  for _ in $(seq "$RUNS"); do
    rm -f "$out"
    t0=$(date +%s.%N); "$@" -q >/dev/null; t1=$(date +%s.%N)
    ws+=("$(awk "BEGIN {print $t1 - $t0}")")
    rm -f "$out"
    ks+=("$("$@" -v 2>&1 >/dev/null | sed -n 's/.*time in memory: \([0-9.]*\) s.*/\1/p')")
  done
  rm -f "$out"
  P=$(/usr/bin/time -v "$@" -q 2>&1 >/dev/null | awk -F: '/Maximum resident/ {printf "%.0f", $2/1024}')
  W=$(median "${ws[@]}"); K=$(median "${ks[@]}")
}

# SCALING_CASES="N DZ;N DZ" replaces the cases (a quick look on a small machine).
IFS=';' read -r -a CASES <<<"${SCALING_CASES:-100 1.25;250 1.25;500 1.25;1000 1.25;500 0.5}"
ROWS=()
for c in "${CASES[@]}"; do
  read -r n dz <<<"$c"
  d="$OUT/p${n}_${dz}"
  [ -d "$d/dicom" ] || "$BIN/ct-phantom" "$d/dicom" --size 512 --pixel-spacing 0.7 --slices "$n" --slice-spacing "$dz" --noise 20 -q
  hu_mb=$(awk "BEGIN {print $n * 512 * 512 * 2 / 1e6}")
  stage "$d/hu.nii" "$BIN/hu-convert" "$d/dicom" -o "$d/hu.nii"
  ROWS+=("$n|$dz|hu-convert|$W|$K|$P|$(awk "BEGIN {print $n * 512 * 512}")|$hu_mb")
  "$BIN/hu-convert" "$d/dicom" -o "$d/hu.nii" -q
  stage "$d/hu1.nii" "$BIN/vol-resample" "$d/hu.nii" --spacing 1 -o "$d/hu1.nii"
  ROWS+=("$n|$dz|vol-resample|$W|$K|$P|$(awk "BEGIN {print $n * 512 * 512}")|$hu_mb")
  "$BIN/vol-resample" "$d/hu.nii" --spacing 1 -o "$d/hu1.nii" -q
  # Voxels of the 1 mm volume, from its NIfTI-1 header (dim[1..3] at byte 42).
  vox1=$(od -An -t d2 -j 42 -N 6 "$d/hu1.nii" | awk '{print $1 * $2 * $3}')
  mb1=$(awk "BEGIN {print $vox1 * 2 / 1e6}")
  stage "$d/lungs.nii" "$BIN/lung-seg" "$d/hu1.nii" -o "$d/lungs.nii"
  ROWS+=("$n|$dz|lung-seg|$W|$K|$P|$vox1|$mb1")
  stage "$d/norm.nii" "$BIN/vol-normalize" "$d/hu1.nii" -o "$d/norm.nii"
  # Its output is float32: twice the input's bytes.
  ROWS+=("$n|$dz|vol-normalize|$W|$K|$P|$vox1|$(awk "BEGIN {print $mb1 * 2}")")
  stage "$d/bone.stl" "$BIN/vol-mesh" "$d/hu1.nii" --level 400 -o "$d/bone.stl"
  ROWS+=("$n|$dz|vol-mesh|$W|$K|$P|$vox1|$mb1")
  rm -f "$d"/hu.nii "$d"/hu1.nii "$d"/lungs.nii "$d"/norm.nii "$d"/bone.stl
done

{
  echo "# Scaling (\`make bench-scaling\`, $(date -u +%F), $(nproc) cores, medians of $RUNS)"
  echo
  echo "| slices x mm | stage | whole s | in memory s | ns/voxel in memory | vs the first | peak MB | peak / largest volume |"
  echo "|---|---|---|---|---|---|---|---|"
  declare -A BASE
  for r in "${ROWS[@]}"; do
    IFS='|' read -r n dz st w k p vox mb <<<"$r"
    ns=$(awk "BEGIN {printf \"%.2f\", $k * 1e9 / $vox}")
    [ -n "${BASE[$st]:-}" ] || BASE[$st]=$ns
    rel=$(awk "BEGIN {printf \"%.2f\", $ns / ${BASE[$st]}}")
    echo "| $n x $dz | $st | $(awk "BEGIN {printf \"%.3f\", $w}") | $k | $ns | $rel | $p | $(awk "BEGIN {printf \"%.2f\", $p / $mb}") |"
  done
} | tee bench/out/scaling.md
