use crate::util::*;
use ctprep_phantom::PhantomOptions;

/// Stack, HU and segment a phantom; Dice against the truth.
fn dice_for(o: &PhantomOptions, args: &[&str]) -> (f64, std::process::Output) {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(&d.path().join("dicom"), o);
    let hu = d.path().join("hu.nii");
    let r = tool("hu-convert").arg(d.path().join("dicom")).arg("-o").arg(&hu).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let m = d.path().join("m.nii.gz");
    let r = tool("lung-seg").arg(&hu).arg("-o").arg(&m).args(args).arg("-v").output().unwrap();
    no_panic(&r);
    // A failed run is a failure, never a Dice of 0 that a "worse than" assertion would accept.
    assert!(r.status.success(), "lung-seg {args:?} failed: {}", stderr(&r));
    (ctprep_core::seg::dice(&u8_data(&read(&m)), &u8_data(&w.lung_mask)), r)
}

fn chest() -> PhantomOptions {
    PhantomOptions { size: 96, slices: 40, slice_spacing: 6.0, ..PhantomOptions::default() }
}

#[test]
fn robust_default_matches_the_truth() {
    let (dice, r) = dice_for(&chest(), &[]);
    assert!(dice >= 0.98, "dice {dice}: {}", stderr(&r));
    let e = stderr(&r);
    assert!(e.contains("lungs: 2 found"), "{e}");
    assert!(!e.contains("0 airway voxels removed"), "the trachea was not found: {e}");
}

#[test]
fn robust_on_tilted_and_feet_first_scans() {
    for o in [PhantomOptions { tilt_deg: 12.0, ..chest() }, PhantomOptions { feet_first: true, ..chest() }] {
        let (dice, r) = dice_for(&o, &[]);
        assert!(dice >= 0.98, "{o:?}: dice {dice}: {}", stderr(&r));
    }
}

#[test]
fn table_splitting_the_air_breaks_the_tutorial_not_the_default() {
    let o = PhantomOptions { table_splits_air: true, ..chest() };
    let (robust, r) = dice_for(&o, &[]);
    assert!(robust >= 0.98, "robust dice {robust}: {}", stderr(&r));
    let (tut, r) = dice_for(&o, &["--method", "tutorial", "--fill"]);
    assert!(tut < 0.5, "the tutorial was expected to return the air under the table, dice {tut}");
    // Its report says what it found, without the robust method's sides, body and airways, and
    // (exit 0, the mask is the tutorial's) warns that it cannot be lungs.
    let e = stderr(&r);
    assert!(e.contains("largest air pocket: ") && !e.contains("of the body"), "{e}");
    assert!(e.contains(" z,y,x, int16, hu)"), "the kind in words: {e}");
    assert!(e.contains("warning: implausible for lungs: the tutorial's mask reaches the edge of the field of view"), "{e}");
    // On the ordinary phantom the tutorial finds the lungs and says nothing.
    let (tut, r) = dice_for(&chest(), &["--method", "tutorial", "--fill"]);
    assert!(tut > 0.8, "dice {tut}");
    assert!(!stderr(&r).contains("implausible"), "{}", stderr(&r));
}

#[test]
fn the_tutorials_qc_flags_reach_the_json() {
    let d = tempfile::tempdir().unwrap();
    phantom(&d.path().join("dicom"), &PhantomOptions { table_splits_air: true, ..chest() });
    let hu = d.path().join("hu.nii");
    assert!(tool("hu-convert").arg(d.path().join("dicom")).arg("-o").arg(&hu).output().unwrap().status.success());
    let r = tool("lung-seg").arg(&hu).args(["--method", "tutorial", "--json", "-q", "-o"]).arg(d.path().join("m.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let qc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(qc["fov_edge_voxels"].as_u64().unwrap() > 0, "{qc}");
    assert!(qc["warnings"][0].as_str().unwrap().contains("edge of the field of view"), "{qc}");
}

#[test]
fn labels_json_and_apply() {
    let d = tempfile::tempdir().unwrap();
    phantom(&d.path().join("dicom"), &chest());
    let hu = d.path().join("hu.nii");
    assert!(tool("hu-convert").arg(d.path().join("dicom")).arg("-o").arg(&hu).output().unwrap().status.success());
    let m = d.path().join("l.nii");
    let app = d.path().join("ct_masked.nii");
    let r = tool("lung-seg")
        .arg(&hu)
        .args(["--labels", "--dilate", "6", "--json", "-o"])
        .arg(&m)
        .arg("--write-masked")
        .arg(&app)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let qc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(qc["lungs_found"], 2);
    assert!((qc["right_ml"].as_f64().unwrap() / qc["left_ml"].as_f64().unwrap() - 1.0).abs() < 0.2);
    let lab = u8_data(&read(&m));
    let mut seen: Vec<u8> = lab.iter().copied().collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec![0, 1, 2]);
    // The QC measures the mask as written, dilation included.
    let v = read(&m);
    let voxel_ml = v.voxel_volume_mm3() / 1000.0;
    for (key, l) in [("right_ml", 1), ("left_ml", 2)] {
        let n = lab.iter().filter(|&&x| x == l).count();
        assert!((qc[key].as_f64().unwrap() - n as f64 * voxel_ml).abs() < 1e-9, "{key}: {} vs {n} voxels", qc[key]);
    }
    // Right lung (label 1) is on the patient's right: smaller LPS x.
    let mean_x = |l: u8| {
        let (mut s, mut n) = (0.0, 0.0);
        for ((z, y, x), &val) in lab.indexed_iter() {
            if val == l {
                s += v.geometry.index_to_world([x as f64, y as f64, z as f64])[0];
                n += 1.0;
            }
        }
        s / n
    };
    assert!(mean_x(1) < mean_x(2));
    let ct = f32_data(&read(&app));
    assert_eq!(ct[[20, 2, 48]], -1024.0);
}

#[test]
fn no_lungs_is_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let v = ctprep_core::Volume {
        data: ctprep_core::VolumeData::I16(ndarray::Array3::from_elem((10, 20, 20), 40)),
        geometry: ctprep_core::Geometry::default(),
        meta: ctprep_core::Meta { kind: ctprep_core::Kind::Hu, ..Default::default() },
    };
    let p = d.path().join("solid.nii");
    ctprep_core::io::write_volume(&v, &ctprep_core::io::Sink::Path(p.clone()), &Default::default()).unwrap();
    let out = d.path().join("m.nii");
    let r = tool("lung-seg").arg(&p).arg("-o").arg(&out).output().unwrap();
    no_panic(&r);
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    assert!(stderr(&r).contains("no lungs found"), "{}", stderr(&r));
    assert!(!out.exists());
}
