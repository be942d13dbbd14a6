use crate::util::*;

#[test]
fn padding_becomes_air_and_the_fov_mask_marks_it() {
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &small());
    let st = d.path().join("st.nii");
    assert!(tool("dcm-stack").arg(d.path()).arg("-o").arg(&st).output().unwrap().status.success());
    let hu = d.path().join("hu.nii.gz");
    let fov = d.path().join("fov.nii.gz");
    let r = tool("hu-convert").arg(&st).arg("-o").arg(&hu).arg("--write-fov-mask").arg(&fov).arg("--json").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let s: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(s["dtype"], "int16");
    assert!(s["padding_rule"].as_str().unwrap().contains("PixelPaddingValue -2000"));
    let v = read(&hu);
    let m = u8_data(&read(&fov));
    let a = f32_data(&v);
    assert_eq!(a[[5, 0, 0]], -1024.0);
    assert_eq!(m[[5, 0, 0]], 0);
    assert_eq!(m[[5, 32, 32]], 1);
    assert_eq!(s["padded_voxels"].as_u64().unwrap() as usize, m.iter().filter(|&&x| x == 0).count());
    assert_eq!(v.meta.kind, ctprep_core::Kind::Hu);
}

#[test]
fn air_value_clamp_and_dtype() {
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &small());
    let r = tool("hu-convert").arg(d.path()).args(["--air", "-1000", "--clamp", "-1000:400", "--dtype", "f32", "-q"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let v = read_bytes(&r.stdout, d.path());
    assert_eq!(v.data.dtype(), ctprep_core::DType::F32);
    let (mn, mx) = v.data.min_max().unwrap();
    assert_eq!((mn, mx), (-1000.0, 400.0));
}

#[test]
fn refuses_masks_and_warns_on_non_hu() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(&d.path().join("p"), &small());
    let m = d.path().join("m.nii");
    ctprep_core::io::write_volume(&w.lung_mask, &ctprep_core::io::Sink::Path(m.clone()), &Default::default()).unwrap();
    let r = tool("hu-convert").arg(&m).arg("-o").arg(d.path().join("x.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("not CT intensities"), "{}", stderr(&r));
}
