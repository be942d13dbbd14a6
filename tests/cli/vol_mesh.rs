use crate::util::*;

#[test]
fn lung_mesh_is_watertight_and_sits_on_the_mask() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(&d.path().join("dicom"), &small());
    let m = d.path().join("m.nii");
    ctprep_core::io::write_volume(&w.lung_mask, &ctprep_core::io::Sink::Path(m.clone()), &Default::default()).unwrap();
    let stl = d.path().join("lungs.stl");
    let png = d.path().join("lungs.png");
    let r = tool("vol-mesh").arg(&m).arg("-o").arg(&stl).arg("--preview").arg(&png).arg("--json").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let qc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(qc["watertight"], true);
    assert_eq!(qc["manifold"], true);
    assert_eq!(qc["degenerate_faces"], 0);
    let (enc, vox) = (qc["enclosed_ml"].as_f64().unwrap(), qc["voxel_ml"].as_f64().unwrap());
    assert!((enc / vox - 1.0).abs() < 0.15, "{enc} vs {vox}");
    // Binary STL: 84 + 50 bytes per face; vertices inside the mask's world bounding box.
    let bytes = std::fs::read(&stl).unwrap();
    let faces = qc["faces"].as_u64().unwrap() as usize;
    assert_eq!(bytes.len(), 84 + 50 * faces);
    let g = &w.lung_mask.geometry;
    let a = u8_data(&w.lung_mask);
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for ((z, y, x), &v) in a.indexed_iter() {
        if v != 0 {
            let p = g.index_to_world([x as f64, y as f64, z as f64]);
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
    }
    for f in 0..faces {
        let off = 84 + 50 * f + 12;
        for k in 0..3 {
            let c = f32::from_le_bytes(bytes[off + 4 * k..off + 4 * k + 4].try_into().unwrap()) as f64;
            let s = g.spacing[k];
            assert!(c >= lo[k] - s && c <= hi[k] + s, "vertex {c} outside [{}, {}] on axis {k}", lo[k], hi[k]);
        }
    }
    let head = std::fs::read(&png).unwrap();
    assert_eq!(&head[1..4], b"PNG");
}

#[test]
fn obj_ascii_split_and_empty() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(&d.path().join("dicom"), &small());
    let m = d.path().join("m.nii");
    ctprep_core::io::write_volume(&w.lung_mask, &ctprep_core::io::Sink::Path(m.clone()), &Default::default()).unwrap();
    let r = tool("vol-mesh").arg(&m).args(["--format", "obj", "-o", "-"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let s = stdout(&r);
    assert!(s.lines().any(|l| l.starts_with("vn ")) && s.lines().any(|l| l.starts_with("f ")));
    let r = tool("vol-mesh").arg(&m).args(["--ascii", "--format", "stl", "-o", "-"]).output().unwrap();
    assert!(stdout(&r).starts_with("solid ctprep"));
    let r = tool("vol-mesh").arg(&m).arg("--split").arg("-o").arg(d.path().join("part.stl")).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(d.path().join("part_1.stl").exists() && d.path().join("part_2.stl").exists());
    let r = tool("vol-mesh").arg(&m).args(["--level", "5", "-o"]).arg(d.path().join("none.stl")).output().unwrap();
    assert_eq!(r.status.code(), Some(3));
}

#[test]
fn largest_min_volume_step_and_smooth() {
    let d = tempfile::tempdir().unwrap();
    let (_, _, m) = hu_and_mask(d.path());
    let qc = |args: &[&str]| -> serde_json::Value {
        let r = tool("vol-mesh").arg(&m).arg("-o").arg(d.path().join("x.stl")).arg("--json").args(args).output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{args:?}: {}", stderr(&r));
        serde_json::from_slice(&r.stdout).unwrap()
    };
    let all = qc(&[]);
    assert_eq!(all["components"], 2);
    assert_eq!(qc(&["--largest"])["components"], 1);
    assert_eq!(qc(&["--min-volume", "1000000"])["faces"], 0);
    let coarse = qc(&["--step", "2"]);
    assert!(coarse["faces"].as_u64().unwrap() < all["faces"].as_u64().unwrap() / 2);
    let smooth = qc(&["--smooth", "10"]);
    let (a, b) = (all["enclosed_ml"].as_f64().unwrap(), smooth["enclosed_ml"].as_f64().unwrap());
    assert!((a - b).abs() / a < 0.05, "Taubin changed the volume {a} -> {b}");
    assert_eq!(smooth["watertight"], true);
    // Decimation to a fifth: the faces drop, the surface stays closed and keeps its volume.
    let small = qc(&["--decimate", "0.2"]);
    let (n0, n1) = (all["faces"].as_u64().unwrap() as f64, small["faces"].as_u64().unwrap() as f64);
    assert!((n1 / n0 - 0.2).abs() < 0.01, "{n0} -> {n1} faces");
    assert_eq!((small["watertight"].clone(), small["manifold"].clone(), small["components"].clone()), (true.into(), true.into(), 2.into()));
    assert_eq!(small["euler_characteristic"], all["euler_characteristic"]);
    let c = small["enclosed_ml"].as_f64().unwrap();
    assert!((a - c).abs() / a < 0.01, "decimation changed the volume {a} -> {c}");
    for bad in ["0", "1.5", "x"] {
        let r = tool("vol-mesh").arg(&m).arg("-o").arg(d.path().join("y.stl")).args(["--decimate", bad]).output().unwrap();
        assert_eq!(r.status.code(), Some(2), "{bad}");
        assert!(stderr(&r).contains("fraction of faces to keep"), "{}", stderr(&r));
    }
}
