use crate::util::*;

fn hu_phantom(d: &std::path::Path) -> std::path::PathBuf {
    phantom(&d.join("dicom"), &small());
    let hu = d.join("hu.nii");
    assert!(tool("hu-convert").arg(d.join("dicom")).arg("-o").arg(&hu).output().unwrap().status.success());
    hu
}

#[test]
fn isotropic_spacing_keeps_the_box_and_reports_actual_spacing() {
    let d = tempfile::tempdir().unwrap();
    let hu = hu_phantom(d.path());
    let out = d.path().join("r.nii");
    let r = tool("vol-resample").arg(&hu).args(["--spacing", "4", "--json", "-v", "-o"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // -v says it in words and x, y, z order, not as Rust debug text.
    let e = stderr(&r);
    assert!(e.contains("linear interpolation; output 90 x 90 x 60 (x, y, z) at spacing 4.000000 x 4.000000 x 4.000000 mm"), "{e}");
    let s: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    // 64 x 5.625 mm = 360 mm -> 90 voxels of 4 mm; 24 x 10 mm = 240 mm -> 60 voxels.
    assert_eq!(s["shape_zyx"], serde_json::json!([60, 90, 90]));
    let v = read(&out);
    let inp = read(&hu);
    // Same physical box: the first voxel's outer corner is unchanged.
    let c0 = inp.geometry.index_to_world([-0.5, -0.5, -0.5]);
    let c1 = v.geometry.index_to_world([-0.5, -0.5, -0.5]);
    assert!((0..3).all(|k| (c0[k] - c1[k]).abs() < 1e-6));
    assert_eq!(v.data.dtype(), ctprep_core::DType::I16);
}

#[test]
fn masks_stay_binary_and_like_puts_them_on_the_ct_grid() {
    let d = tempfile::tempdir().unwrap();
    let (w, hu, m) = hu_and_mask(d.path());
    let m2 = d.path().join("m2.nii");
    let r = tool("vol-resample").arg(&m).args(["--spacing", "3"]).arg("-o").arg(&m2).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let a = u8_data(&read(&m2));
    assert!(a.iter().all(|&v| v <= 1));
    // Back onto the CT grid: the mask lands on the lungs again.
    let m3 = d.path().join("m3.nii");
    let r = tool("vol-resample").arg(&m2).arg("--like").arg(&hu).arg("-o").arg(&m3).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let back = u8_data(&read(&m3));
    assert_eq!(back.shape(), [24, 64, 64]);
    let dice = ctprep_core::seg::dice(&back, &u8_data(&w.lung_mask));
    assert!(dice > 0.9, "dice {dice}");
}

#[test]
fn outside_is_air_and_orient_ras_reorients() {
    let d = tempfile::tempdir().unwrap();
    let hu = hu_phantom(d.path());
    let r = tool("vol-resample").arg(&hu).args(["--spacing", "6", "--exact", "-q"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let v = read_bytes(&r.stdout, d.path());
    assert_eq!(v.geometry.spacing, [6.0, 6.0, 6.0]);
    let r = tool("vol-resample").arg(&hu).args(["--orient", "RAS", "-q"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let v = read_bytes(&r.stdout, d.path());
    assert_eq!(v.geometry.axis_codes(), "RAS");
}
