//! The whole pipeline's physical floor, for `make bench` (issue #23): what any program that turns
//! these DICOM files into those outputs has to do. Scan the headers, read every file and decode
//! its pixels on all cores with ctprep's own decoder (the fastest this machine has), then write
//! the outputs' total bytes to new files, half from each of two threads (as the pipeline's last
//! tools write side by side; one file's writes are serialized by its lock). No resampling,
//! segmentation, meshing or formatting.
//!
//!   cargo run --release --example io_floor -- DICOM_DIR NEW_FILE BYTES   (writes NEW_FILE.1, .2)
//!
//! Prints the seconds of each part and their total on one line (the bench reads `total`).

use ctprep_core::dicom::{decode, files};
use rayon::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out, bytes] = args.as_slice() else {
        return Err("usage: io_floor DICOM_DIR NEW_FILE BYTES".into());
    };
    let bytes: usize = bytes.parse()?;
    let t0 = Instant::now();
    let scan = files::scan(&files::collect_files(&[PathBuf::from(dir)])?);
    let t_scan = t0.elapsed().as_secs_f64();
    // Every slice into its own plane, as the tools decode: reading the file is part of each.
    let decoded: usize = scan
        .headers
        .par_iter()
        .map(|h| {
            let mut plane = vec![0i16; h.rows as usize * h.columns as usize];
            decode::decode_stored_into(h, &mut plane).map(|()| plane.len())
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let t_decode = t0.elapsed().as_secs_f64() - t_scan;
    let half = bytes / 2;
    [(1, half), (2, bytes - half)].into_par_iter().try_for_each(|(k, n)| write_zeros(&format!("{out}.{k}"), n))?;
    let total = t0.elapsed().as_secs_f64();
    println!(
        "headers {t_scan:.3} s, read + decode {t_decode:.3} s ({} slices, {decoded} voxels), write {:.3} s ({bytes} bytes), total {total:.3} s",
        scan.headers.len(),
        total - t_scan - t_decode
    );
    Ok(())
}

fn write_zeros(path: &str, bytes: usize) -> std::io::Result<()> {
    let chunk = vec![0u8; 8 << 20];
    let mut f = std::fs::File::create(path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    Ok(())
}
