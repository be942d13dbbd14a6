//! What fuzzing and the hostile-input campaign found, kept: every reproducer in
//! `fuzz/regressions/<target>/` runs through the target's own code (`ctprep_core::fuzzing`) in the
//! ordinary test suite and must return cleanly, and the reader must refuse it (each is an input
//! no scanner writes: nesting 3000 deep, 2^31 frames in 500 bytes, a NaN quaternion...).
//! Also the seed corpora's writer for `make fuzz` (ignored: run by scripts/fuzz.sh).

use ctprep_core::fuzzing;
use ctprep_core::geometry::Geometry;
use ctprep_core::io::{Sink, WriteOptions, sidecar_json, write_volume};
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{Volume, VolumeData};
use ndarray::Array3;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their peak, so a reproducer of an out-of-memory finding fails
/// here when a claim is allocated again (the process would not abort: it has the memory).
struct Peak;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

/// What the fuzzing processes allow (scripts/fuzz.sh: CTPREP_MAX_BYTES = 64 MiB), with room for
/// the parser's own buffers: no reproducer may come near libFuzzer's 2 GiB limit again.
const PEAK_LIMIT: usize = 256 << 20;

fn regressions(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir).map(|r| r.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    v.retain(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    v.sort();
    v
}

#[test]
fn every_fuzz_reproducer_now_returns_cleanly() {
    // SAFETY: set before any thread of this test binary reads the environment (the only other
    // test here is ignored).
    unsafe { std::env::set_var("CTPREP_MAX_BYTES", (64u64 << 20).to_string()) };
    // Panics the core catches count too: the fuzzing process aborts on any panic, and the
    // user sees its message (found by fuzzing: a panic inside a codec, caught by the decoder).
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        PANICS.fetch_add(1, Ordering::Relaxed);
    }));
    let scratch = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (target, run) in targets(scratch.path()) {
        for p in regressions(target) {
            let bytes = std::fs::read(&p).unwrap();
            PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&bytes)));
            assert!(r.is_ok() && PANICS.load(Ordering::Relaxed) == 0, "{} panics again", p.display());
            let peak = PEAK.load(Ordering::Relaxed);
            assert!(peak < PEAK_LIMIT, "{} allocates {} MiB again", p.display(), peak >> 20);
            assert!(refused(target, &p, &bytes), "{} is accepted", p.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no reproducers found: the folder moved?");
}

/// Every fuzz target's entry point, by name; DICOM inputs are written to a file in `scratch`.
fn targets(scratch: &Path) -> Vec<(&'static str, Box<dyn Fn(&[u8]) + '_>)> {
    vec![
        ("dicom", Box::new(move |b: &[u8]| fuzzing::dicom(b, &scratch.join("slice.dcm")))),
        ("ljpeg", Box::new(fuzzing::ljpeg)),
        ("volume", Box::new(fuzzing::volume_bytes)),
        ("sidecar", Box::new(fuzzing::sidecar)),
        ("roundtrip", Box::new(fuzzing::roundtrip)),
    ]
}

/// Whether the reader behind `target` turns the input down with an error.
fn refused(target: &str, path: &Path, bytes: &[u8]) -> bool {
    use ctprep_core::io::{ReadOptions, parse_sidecar, read_volume_bytes};
    match target {
        // Refused by the header scan, when read whole, or before or while its pixels are decoded.
        "dicom" => match ctprep_core::dicom::open_header(path) {
            Err(_) => true,
            Ok(hs) => {
                ctprep_core::dicom::open_full(path).is_err()
                    || hs.iter().any(|h| h.check_pixels_fit().is_err() || ctprep_core::dicom::decode::decode_stored(h).is_err())
            }
        },
        "volume" => read_volume_bytes(bytes, path, &ReadOptions::default()).is_err(),
        "sidecar" => parse_sidecar(&String::from_utf8_lossy(bytes)).map_or(true, |(g, _, _)| g.invalid().is_some()),
        "ljpeg" => fuzzing::ljpeg_decode(bytes).is_err(),
        _ => true,
    }
}

fn sample(dtype: ctprep_core::DType, kind: Kind) -> Volume {
    let a = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| (z * 100 + y * 10 + x) as f64 - 50.0);
    Volume {
        data: VolumeData::F64(a).cast(dtype),
        geometry: Geometry { spacing: [0.7, 0.8, 1.25], origin: [1.0, 2.0, 3.0], ..Geometry::default() },
        meta: Meta { kind, ..Meta::default() },
    }
}

/// Seeds for `make fuzz`, made by the writers (DICOM seeds come from ct-phantom in scripts/fuzz.sh).
#[test]
#[ignore = "writes the fuzz seed corpora; run by scripts/fuzz.sh with CTPREP_FUZZ_SEEDS=DIR"]
fn write_fuzz_seeds() {
    use ctprep_core::DType;
    let dir = PathBuf::from(std::env::var("CTPREP_FUZZ_SEEDS").expect("CTPREP_FUZZ_SEEDS=DIR"));
    let sub = |t: &str| {
        let d = dir.join(t);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (vols, sides, ljpeg, round) = (sub("volume"), sub("sidecar"), sub("ljpeg"), sub("roundtrip"));
    let tmp = tempfile::tempdir().unwrap();
    for (i, (dtype, kind)) in [
        (DType::I16, Kind::Hu),
        (DType::U8, Kind::Mask),
        (DType::F32, Kind::Normalized),
        (DType::U16, Kind::Stored),
        (DType::F64, Kind::Unknown),
    ]
    .into_iter()
    .enumerate()
    {
        let v = sample(dtype, kind);
        for ext in ["nii", "nii.gz", "npy"] {
            let p = tmp.path().join(format!("v{i}.{ext}"));
            write_volume(&v, &Sink::Path(p.clone()), &WriteOptions::default()).unwrap();
            std::fs::copy(&p, vols.join(format!("v{i}.{ext}"))).unwrap();
        }
        std::fs::write(sides.join(format!("v{i}.json")), sidecar_json(&v.header())).unwrap();
    }
    for (i, (rows, cols, precision)) in [(8usize, 8usize, 12u8), (16, 5, 16), (3, 17, 8)].into_iter().enumerate() {
        let img: Vec<u16> = (0..rows * cols).map(|k| ((k * 37) % (1 << precision.min(15))) as u16).collect();
        let mut seed = Vec::new();
        seed.extend_from_slice(&((rows - 1) as u16).to_le_bytes());
        seed.extend_from_slice(&((cols - 1) as u16).to_le_bytes());
        seed.extend(ctprep_core::dicom::ljpeg::encode(&img, rows, cols, precision, 1 + i as u8));
        std::fs::write(ljpeg.join(format!("frame{i}")), seed).unwrap();
    }
    for i in 0..6u8 {
        let seed: Vec<u8> = (0..12u8).map(|k| k.wrapping_mul(31).wrapping_add(i)).chain((0..200u8).map(|k| k ^ i)).collect();
        std::fs::write(round.join(format!("r{i}")), seed).unwrap();
    }
}

/// The largest heap peaks in a grown corpus (`CTPREP_FUZZ_CORPUS=fuzz/corpus/<target>`, the
/// folder's name picks the target): libFuzzer reports one RSS for a whole run, this names the
/// inputs behind it.
#[test]
#[ignore = "needs CTPREP_FUZZ_CORPUS, a corpus grown by make fuzz"]
fn corpus_peak_heap() {
    let dir = PathBuf::from(std::env::var("CTPREP_FUZZ_CORPUS").expect("CTPREP_FUZZ_CORPUS=DIR"));
    // SAFETY: as in the test above.
    unsafe { std::env::set_var("CTPREP_MAX_BYTES", (64u64 << 20).to_string()) };
    let scratch = tempfile::tempdir().unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let targets = targets(scratch.path());
    let (_, run) = targets.iter().find(|(t, _)| *t == name).expect("the folder is named after a target");
    let mut peaks = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&bytes)));
        peaks.push((PEAK.load(Ordering::Relaxed) - base, p));
    }
    peaks.sort();
    for (peak, p) in peaks.iter().rev().take(5) {
        eprintln!("{:>8} KiB  {}", peak >> 10, p.display());
    }
}
