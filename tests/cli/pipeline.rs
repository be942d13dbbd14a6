//! The tools chained: pipes give the same result as files, and every artifact lands on the same
//! anatomy in world coordinates.

use crate::util::*;
use std::process::{Command, Stdio};

#[test]
fn pipe_and_files_give_the_same_mask() {
    let d = tempfile::tempdir().unwrap();
    let dicom = d.path().join("dicom");
    phantom(&dicom, &small());
    // File form.
    let st = d.path().join("st.nii");
    let hu = d.path().join("hu.nii.gz");
    let r1 = d.path().join("r.nii");
    let m1 = d.path().join("m1.nii");
    assert!(tool("dcm-stack").arg(&dicom).arg("-o").arg(&st).output().unwrap().status.success());
    assert!(tool("hu-convert").arg(&st).arg("-o").arg(&hu).output().unwrap().status.success());
    assert!(tool("vol-resample").arg(&hu).args(["--spacing", "4", "-o"]).arg(&r1).output().unwrap().status.success());
    assert!(tool("lung-seg").arg(&r1).arg("-o").arg(&m1).output().unwrap().status.success());
    // Pipe form: dcm-stack DIR | hu-convert | vol-resample --spacing 4 | lung-seg -o m2.nii
    let m2 = d.path().join("m2.nii");
    let mut a = Command::new(bin("dcm-stack")).arg(&dicom).arg("-q").stdout(Stdio::piped()).spawn().unwrap();
    let mut b = Command::new(bin("hu-convert")).arg("-q").stdin(a.stdout.take().unwrap()).stdout(Stdio::piped()).spawn().unwrap();
    let mut c = Command::new(bin("vol-resample"))
        .args(["--spacing", "4", "-q"])
        .stdin(b.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let e = Command::new(bin("lung-seg")).arg("-o").arg(&m2).arg("-q").stdin(c.stdout.take().unwrap()).output().unwrap();
    for mut p in [a, b, c] {
        assert!(p.wait().unwrap().success());
    }
    assert!(e.status.success(), "{}", stderr(&e));
    let (v1, v2) = (read(&m1), read(&m2));
    assert_eq!(v1.data, v2.data);
    assert_eq!(v1.geometry, v2.geometry);
    // Provenance in the piped result lists every step.
    let tools: Vec<String> = v2.meta.provenance.iter().map(|s| s.tool.clone()).collect();
    assert_eq!(tools, ["dcm-stack", "hu-convert", "vol-resample", "lung-seg"]);
}

#[test]
fn mask_resampled_ct_and_mesh_share_world_coordinates() {
    let d = tempfile::tempdir().unwrap();
    let dicom = d.path().join("dicom");
    let w = phantom(&dicom, &small());
    let hu = d.path().join("hu.nii");
    let r = d.path().join("r.nii");
    let m = d.path().join("m.nii");
    assert!(tool("hu-convert").arg(&dicom).arg("-o").arg(&hu).output().unwrap().status.success());
    assert!(tool("vol-resample").arg(&hu).args(["--spacing", "3", "-o"]).arg(&r).output().unwrap().status.success());
    assert!(tool("lung-seg").arg(&r).arg("-o").arg(&m).output().unwrap().status.success());
    // The mask (on the 3 mm grid) mapped back to the original grid overlaps the truth.
    let back = d.path().join("back.nii");
    assert!(tool("vol-resample").arg(&m).arg("--like").arg(&hu).arg("-o").arg(&back).output().unwrap().status.success());
    let dice = ctprep_core::seg::dice(&u8_data(&read(&back)), &u8_data(&w.lung_mask));
    assert!(dice > 0.93, "dice {dice}");
    // The mesh's centroid equals the mask's world centroid.
    let o = tool("vol-mesh").arg(&m).args(["--format", "obj", "-o", "-"]).output().unwrap();
    let (mut s, mut n) = ([0.0f64; 3], 0.0);
    for l in stdout(&o).lines().filter(|l| l.starts_with("v ")) {
        let v: Vec<f64> = l[2..].split(' ').map(|t| t.parse().unwrap()).collect();
        for k in 0..3 {
            s[k] += v[k];
        }
        n += 1.0;
    }
    let mv = read(&m);
    let a = u8_data(&mv);
    let (mut c, mut cn) = ([0.0f64; 3], 0.0);
    for ((z, y, x), &v) in a.indexed_iter() {
        if v != 0 {
            let p = mv.geometry.index_to_world([x as f64, y as f64, z as f64]);
            for k in 0..3 {
                c[k] += p[k];
            }
            cn += 1.0;
        }
    }
    for k in 0..3 {
        assert!((s[k] / n - c[k] / cn).abs() < 4.0, "axis {k}: mesh {} vs mask {}", s[k] / n, c[k] / cn);
    }
}
