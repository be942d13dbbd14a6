use crate::util::*;
use ctprep_core::geometry::Geometry;
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{Volume, VolumeData};
use ndarray::Array3;

fn hu_file(d: &std::path::Path, name: &str, values: Vec<i16>) -> std::path::PathBuf {
    let n = values.len();
    let v = Volume {
        data: VolumeData::I16(Array3::from_shape_vec((1, 1, n), values).unwrap()),
        geometry: Geometry::default(),
        meta: Meta { kind: Kind::Hu, ..Meta::default() },
    };
    let p = d.join(name);
    ctprep_core::io::write_volume(&v, &ctprep_core::io::Sink::Path(p.clone()), &Default::default()).unwrap();
    p
}

#[test]
fn tutorial_normalization_and_zero_centering() {
    let d = tempfile::tempdir().unwrap();
    let p = hu_file(d.path(), "a.nii", vec![-2000, -1000, -300, 400, 1000]);
    let out = d.path().join("a_input.npy");
    let r = tool("vol-normalize").arg(&p).arg("-o").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let a = f32_data(&read(&out));
    assert_eq!(a.as_slice().unwrap(), &[-0.25, -0.25, 0.25, 0.75, 0.75]);
    let v = read(&out);
    assert_eq!(v.meta.normalization.unwrap().mean, 0.25);
    // The sidecar keeps the geometry next to the NPY.
    assert!(d.path().join("a_input.json").exists());
}

#[test]
fn fit_equals_the_concatenation_and_stats_apply() {
    let d = tempfile::tempdir().unwrap();
    let a = hu_file(d.path(), "a.nii", vec![-1000, -500, 0, 400]);
    let b = hu_file(d.path(), "b.nii", vec![-900, 100, 200]);
    let st = d.path().join("stats.json");
    let r = tool("vol-normalize").arg("--fit").arg(&a).arg(&b).arg("-o").arg(&st).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&st).unwrap()).unwrap();
    let vals = [-1000.0, -500.0, 0.0, 400.0, -900.0, 100.0, 200.0].map(|v: f64| ((v + 1000.0) / 1400.0).clamp(0.0, 1.0));
    let mean = vals.iter().sum::<f64>() / 7.0;
    assert!((s["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert_eq!(s["count"], 7);
    let r = tool("vol-normalize").arg(&a).arg("--stats").arg(&st).args(["-q", "--format", "npy"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
}

#[test]
fn per_patient_fits_merge_into_the_fit_over_all() {
    let d = tempfile::tempdir().unwrap();
    let a = hu_file(d.path(), "a.nii", vec![-1000, -500, 0, 400]);
    let b = hu_file(d.path(), "b.nii", vec![-900, 100, 200]);
    let fit = |args: &[&std::path::Path], out: &str| {
        let o = d.path().join(out);
        let r = tool("vol-normalize").arg("--fit").args(args).arg("-o").arg(&o).arg("-q").output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&o).unwrap()).unwrap()
    };
    let whole = fit(&[&a, &b], "whole.json");
    fit(&[&a], "fa.json");
    fit(&[&b], "fb.json");
    // Two earlier fits, or an earlier fit and a volume: the same statistics as one fit over both.
    for merged in
        [fit(&[&d.path().join("fa.json"), &d.path().join("fb.json")], "m1.json"), fit(&[&d.path().join("fa.json"), &b], "m2.json")]
    {
        assert!((merged["mean"].as_f64().unwrap() - whole["mean"].as_f64().unwrap()).abs() < 1e-12);
        assert!((merged["std"].as_f64().unwrap() - whole["std"].as_f64().unwrap()).abs() < 1e-12);
        assert_eq!((&merged["count"], &merged["histogram"]), (&whole["count"], &whole["histogram"]));
        assert_eq!(merged["volumes"].as_array().unwrap().len(), 2);
    }
    let r = tool("vol-normalize")
        .arg("--fit")
        .arg(d.path().join("fa.json"))
        .args(["--range", "-1200:600", "-o"])
        .arg(d.path().join("x.json"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("fitted over -1000:400 HU, not the -1200:600 asked for"), "{}", stderr(&r));
}

#[test]
fn per_image_centering_is_refused_and_f16_needs_npy() {
    let d = tempfile::tempdir().unwrap();
    let a = hu_file(d.path(), "a.nii", vec![-1000, 0]);
    let r = tool("vol-normalize").arg(&a).arg("--per-image-mean").arg("-o").arg(d.path().join("x.npy")).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("calibrated to return accurate HU"));
    let r = tool("vol-normalize").arg(&a).args(["--dtype", "f16", "-o"]).arg(d.path().join("x.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    let out = d.path().join("h.npy");
    let r = tool("vol-normalize").arg(&a).args(["--dtype", "f16", "--window", "lung", "-o"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // lung window: [-1350, 150]; -1000 -> 350/1500 - 0.25.
    let v = f32_data(&read(&out));
    assert!((v[[0, 0, 0]] - (350.0 / 1500.0 - 0.25)).abs() < 1e-3);
}

#[test]
fn mask_outside_value_and_json_mean_on_the_streamed_output() {
    let d = tempfile::tempdir().unwrap();
    let a = hu_file(d.path(), "a.nii", vec![-1000, -300, 400, 1000]);
    let mask = Volume {
        data: VolumeData::U8(Array3::from_shape_vec((1, 1, 4), vec![1u8, 1, 0, 1]).unwrap()),
        geometry: Geometry::default(),
        meta: Meta { kind: Kind::Mask, ..Meta::default() },
    };
    let m = d.path().join("m.nii");
    ctprep_core::io::write_volume(&mask, &ctprep_core::io::Sink::Path(m.clone()), &Default::default()).unwrap();
    for name in ["n.npy", "n.nii", "n.nii.gz"] {
        let out = d.path().join(name);
        let r = tool("vol-normalize").arg(&a).arg("--mask").arg(&m).args(["--outside", "-1", "--json", "-o"]).arg(&out).output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        let v = f32_data(&read(&out));
        assert_eq!(v.as_slice().unwrap(), &[-0.25, 0.25, -1.0, 0.75], "{name}");
        let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert!((j["output_mean"].as_f64().unwrap() - (-0.25 + 0.25 - 1.0 + 0.75) / 4.0).abs() < 1e-7, "{j}");
    }
    // A mask on another grid: exit 1, nothing written.
    let b = hu_file(d.path(), "b.nii", vec![-1000, 0, 0]);
    let out = d.path().join("bad.npy");
    let r = tool("vol-normalize").arg(&b).arg("--mask").arg(&m).arg("-o").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("m.nii") && stderr(&r).contains("vol-resample MASK --like VOLUME"), "{}", stderr(&r));
    assert!(!out.exists());
}
