#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/; docs/robustness.md).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (make fuzz FUZZ_SECONDS=600)
# Seeds are made fresh by the writers and ct-phantom; the corpora grow in fuzz/corpus/ (not in
# git); crashes land in fuzz/artifacts/<target>/. A nightly toolchain is used when present, else
# the stable one with RUSTC_BOOTSTRAP=1 and no sanitizer (-s none).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(dicom ljpeg volume sidecar roundtrip)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
SAN=(-s none)
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  FUZZ=(cargo fuzz)
fi

# Seeds: the volume writers (NIfTI, NIfTI.gz, NPY, sidecars, lossless-JPEG frames) and ct-phantom
# in every transfer syntax it writes.
SEEDS=fuzz/seeds
rm -rf "$SEEDS" && mkdir -p "$SEEDS/dicom"
CTPREP_FUZZ_SEEDS="$PWD/$SEEDS" cargo test -q -p ctprep-core --test fuzz_regressions -- --ignored write_fuzz_seeds >/dev/null
cargo build -q --release --bin ct-phantom
for syntax in explicit implicit deflate rle jpeg-lossless; do
  tmp=$(mktemp -d)
  target/release/ct-phantom "$tmp" --size 32 --slices 2 --syntax "$syntax" --localizer -q
  i=0
  for f in "$tmp"/*; do cp "$f" "$SEEDS/dicom/${syntax}_$i.dcm"; i=$((i + 1)); done
  rm -rf "$tmp"
done

"${FUZZ[@]}" build -O "${SAN[@]}"
# The fuzzing processes allocate at most 64 MiB of voxels (a user's CTPREP_MAX_BYTES): larger
# claims are refused as they would be on a small machine, so one malloc above 512 MiB or an RSS
# above 1 GiB is a finding, not noise (a 1.8 GB claim once hid under libFuzzer's default 2 GiB).
export CTPREP_MAX_BYTES=$((64 << 20))
run_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  "${FUZZ[@]}" run -O "${SAN[@]}" "$t" "fuzz/corpus/$t" "$SEEDS/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" > "fuzz/artifacts/$t.log" 2>&1 || true
  echo "== $t ($SECS s): $(grep -E '^#[0-9]+[[:space:]]+DONE' "fuzz/artifacts/$t.log" | tail -1)"
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^SUMMARY|(crash|leak|timeout|oom|slow-unit)-' "fuzz/artifacts/$t.log" || true
}
# Two targets at a time (FUZZ_JOBS), one per core.
running=0
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "${FUZZ_JOBS:-2}" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
