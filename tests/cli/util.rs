#![allow(dead_code)]

use assert_cmd::Command;
use ctprep_core::io::{ReadOptions, Source, read_volume};
use ctprep_core::volume::{Volume, VolumeData};
use ctprep_phantom::{PhantomOptions, Written, write_series};
use ndarray::Array3;
use std::path::{Path, PathBuf};

/// A tool binary with a clean environment.
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(bin(name));
    c.env_remove("CTPREP_MAX_BYTES").env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

pub fn bin(name: &str) -> PathBuf {
    let p = match name {
        "dcm-inspect" => env!("CARGO_BIN_EXE_dcm-inspect"),
        "dcm-stack" => env!("CARGO_BIN_EXE_dcm-stack"),
        "hu-convert" => env!("CARGO_BIN_EXE_hu-convert"),
        "vol-resample" => env!("CARGO_BIN_EXE_vol-resample"),
        "lung-seg" => env!("CARGO_BIN_EXE_lung-seg"),
        "vol-normalize" => env!("CARGO_BIN_EXE_vol-normalize"),
        "vol-mesh" => env!("CARGO_BIN_EXE_vol-mesh"),
        "vol-view" => env!("CARGO_BIN_EXE_vol-view"),
        "ct-phantom" => env!("CARGO_BIN_EXE_ct-phantom"),
        "ctprep-report" => env!("CARGO_BIN_EXE_ctprep-report"),
        other => panic!("unknown tool {other}"),
    };
    PathBuf::from(p)
}

pub const TOOLS: [&str; 10] = [
    "dcm-inspect",
    "dcm-stack",
    "hu-convert",
    "vol-resample",
    "lung-seg",
    "vol-normalize",
    "vol-mesh",
    "vol-view",
    "ct-phantom",
    "ctprep-report",
];

/// A small phantom (fast in debug builds) with the given tweaks.
pub fn small() -> PhantomOptions {
    PhantomOptions { size: 64, slices: 24, slice_spacing: 10.0, noise_hu: 5.0, ..PhantomOptions::default() }
}

pub fn phantom(dir: &Path, o: &PhantomOptions) -> Written {
    write_series(dir, o).expect("phantom written")
}

/// A small phantom in `d/dicom`, its HU volume `d/hu.nii` and its truth mask `d/m.nii`.
pub fn hu_and_mask(d: &Path) -> (Written, PathBuf, PathBuf) {
    let w = phantom(&d.join("dicom"), &small());
    let hu = d.join("hu.nii");
    assert!(tool("hu-convert").arg(d.join("dicom")).arg("-o").arg(&hu).output().unwrap().status.success());
    let m = d.join("m.nii");
    ctprep_core::io::write_volume(&w.lung_mask, &ctprep_core::io::Sink::Path(m.clone()), &Default::default()).unwrap();
    (w, hu, m)
}

pub fn read(p: &Path) -> Volume {
    read_volume(&Source::Path(p.to_path_buf()), &ReadOptions::default()).expect("readable volume").volume
}

pub fn read_bytes(bytes: &[u8], dir: &Path) -> Volume {
    let p = dir.join("from_stdout.nii");
    std::fs::write(&p, bytes).unwrap();
    read(&p)
}

pub fn u8_data(v: &Volume) -> Array3<u8> {
    match v.data.cast(ctprep_core::DType::U8) {
        VolumeData::U8(a) => a,
        _ => unreachable!(),
    }
}

pub fn f32_data(v: &Volume) -> Array3<f32> {
    v.real_f32()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// No panic message, ever.
pub fn no_panic(o: &std::process::Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "panic in stderr:\n{e}");
}

/// Mean of `values` where `mask` is set.
pub fn masked_mean(values: &Array3<f32>, mask: &Array3<u8>) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for (v, m) in values.iter().zip(mask.iter()) {
        if *m != 0 {
            s += *v as f64;
            n += 1.0;
        }
    }
    s / n
}

/// Files in a folder (no sub-folders), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}
