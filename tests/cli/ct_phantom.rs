//! ct-phantom, the test-data generator every other module leans on: its flags must do what they
//! say, or the other tests check nothing. Each syntax must hold the same stored values, the truth
//! mask must sit on the grid the tools assemble, feet-first must be the same patient, and the
//! same seed the same bytes.

use crate::util::*;
use std::path::Path;

/// `ct-phantom DIR` with a small chest and `args`; panics with its stderr when it fails.
fn make(dir: &Path, args: &[&str]) {
    let r = tool("ct-phantom").arg(dir).args(["--size", "48", "--slices", "6", "--slice-spacing", "20", "-q"]).args(args).output().unwrap();
    no_panic(&r);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
}

/// dcm-stack's volume (stored values) of a folder.
fn stacked(dir: &Path, out: &Path) -> ctprep_core::Volume {
    let r = tool("dcm-stack").arg(dir).arg("-o").arg(out).arg("-q").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    read(out)
}

#[test]
fn every_syntax_holds_the_same_stored_values() {
    let d = tempfile::tempdir().unwrap();
    let mut reference = None;
    for (syntax, uid) in [
        ("explicit", "1.2.840.10008.1.2.1"),
        ("implicit", "1.2.840.10008.1.2"),
        ("deflate", "1.2.840.10008.1.2.1.99"),
        ("rle", "1.2.840.10008.1.2.5"),
        ("jpeg-lossless", "1.2.840.10008.1.2.4.70"),
    ] {
        let dir = d.path().join(syntax);
        make(&dir, &["--syntax", syntax]);
        let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let r = tool("dcm-inspect").arg(&file).args(["--tag", "TransferSyntaxUID"]).output().unwrap();
        assert_eq!(stdout(&r).trim(), uid, "{syntax}: {}", stderr(&r));
        let v = stacked(&dir, &d.path().join(format!("{syntax}.nii")));
        let values = f32_data(&v);
        match &reference {
            None => reference = Some((values, v.geometry)),
            Some((values0, geometry0)) => {
                assert_eq!(&values, values0, "{syntax} decodes to other values than explicit VR");
                assert_eq!(&v.geometry, geometry0, "{syntax} lands on another grid");
            }
        }
    }
}

#[test]
fn the_truth_mask_is_on_the_assembled_grid_and_covers_the_lungs() {
    let d = tempfile::tempdir().unwrap();
    let (dir, truth) = (d.path().join("dicom"), d.path().join("truth.nii.gz"));
    make(&dir, &["--truth", truth.to_str().unwrap()]);
    let hu_path = d.path().join("hu.nii");
    let r = tool("hu-convert").arg(&dir).arg("-o").arg(&hu_path).arg("-q").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let (hu, mask) = (read(&hu_path), read(&truth));
    assert_eq!(mask.meta.kind, ctprep_core::meta::Kind::Mask);
    assert!(hu.geometry.same_grid(hu.shape(), &mask.geometry, mask.shape()), "the truth is not on hu-convert's grid");
    let (values, m) = (f32_data(&hu), u8_data(&mask));
    let inside = m.iter().filter(|&&v| v != 0).count();
    assert!(inside > 500, "{inside} lung voxels");
    let lung_mean = masked_mean(&values, &m);
    assert!((-900.0..-780.0).contains(&lung_mean), "mean HU inside the truth: {lung_mean}");
}

#[test]
fn feet_first_is_the_same_patient_in_patient_space() {
    let d = tempfile::tempdir().unwrap();
    let (head, feet) = (d.path().join("head"), d.path().join("feet"));
    let (head_truth, feet_truth) = (d.path().join("head.nii"), d.path().join("feet.nii"));
    make(&head, &["--truth", head_truth.to_str().unwrap()]);
    make(&feet, &["--feet-first", "--truth", feet_truth.to_str().unwrap()]);
    let (a, b) = (read(&head_truth), read(&feet_truth));
    assert_ne!(a.geometry.direction, b.geometry.direction, "--feet-first changed nothing");
    // Every lung voxel of one, found through world coordinates in the other.
    let (ma, mb) = (u8_data(&a), u8_data(&b));
    let (mut lung, mut agree) = (0, 0);
    for ((z, y, x), &v) in ma.indexed_iter() {
        if v == 0 {
            continue;
        }
        lung += 1;
        let world = a.geometry.index_to_world([x as f64, y as f64, z as f64]);
        if let Some([i, j, k]) = b.geometry.world_to_index(world) {
            let [i, j, k] = [i.round() as usize, j.round() as usize, k.round() as usize];
            agree += (mb.get([k, j, i]) == Some(&1)) as usize;
        }
    }
    assert!(lung > 500 && agree * 100 >= lung * 99, "{agree} of {lung} lung voxels agree");
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let files = |dir: &Path| {
        let mut f: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        f.sort();
        f.iter().map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(p).unwrap())).collect::<Vec<_>>()
    };
    for (name, seed) in [("a", "7"), ("b", "7"), ("c", "8")] {
        make(&d.path().join(name), &["--seed", seed]);
    }
    let (a, b, c) = (files(&d.path().join("a")), files(&d.path().join("b")), files(&d.path().join("c")));
    assert_eq!(a.len(), 6);
    assert!(a == b, "seed 7 twice wrote different files");
    assert!(a != c, "seeds 7 and 8 wrote the same files");
}

#[test]
fn impossible_sizes_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let r = tool("ct-phantom").arg(d.path().join("p")).args(["--size", "0"]).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    let e = stderr(&r);
    assert!(e.contains("ct-phantom: error: --size must be 8..2048") && e.contains("hint:"), "{e}");
    assert!(!d.path().join("p").exists(), "a refused run created its folder");
}
