//! Silent wrong results and traps a new user fell into (issue 24): each test failed before its fix.

use crate::util::*;
use ctprep_core::io::{Sink, WriteOptions, sidecar_path, write_volume};
use ctprep_core::meta::Kind;
use ctprep_core::volume::{Volume, VolumeData};
use ndarray::Axis;
use std::path::{Path, PathBuf};

fn write(v: &Volume, p: &Path) {
    write_volume(v, &Sink::Path(p.to_path_buf()), &WriteOptions::default()).unwrap();
}

/// The same mask on a grid whose rows run the other way (as dcm2niix's NIfTI of the same
/// series would have them): same shape, same anatomy, other array order.
fn rows_flipped(m: &Volume) -> Volume {
    let [_, ny, _] = m.shape();
    let mut g = m.geometry.clone();
    g.origin = g.index_to_world([0.0, ny as f64 - 1.0, 0.0]);
    g.direction[1] = g.direction[1].map(|c| -c);
    let mut a = u8_data(m);
    a.invert_axis(Axis(1));
    Volume { data: VolumeData::U8(a.as_standard_layout().into_owned()), geometry: g, meta: m.meta.clone() }
}

#[test]
fn a_mask_on_another_grid_is_refused_or_resampled_never_applied_mirrored() {
    let d = tempfile::tempdir().unwrap();
    let (_, hu, m) = hu_and_mask(d.path());
    let mask = read(&m);
    let flipped = rows_flipped(&mask);
    assert_ne!(u8_data(&flipped), u8_data(&mask), "the phantom's lungs must not be symmetric front to back for this test");
    let mf = d.path().join("mask_flipped.nii");
    write(&flipped, &mf);
    let norm = |mask: &Path, extra: &[&str], out: &str| {
        let out = d.path().join(out);
        let o = tool("vol-normalize").arg(&hu).arg("--mask").arg(mask).args(extra).arg("-o").arg(&out).output().unwrap();
        no_panic(&o);
        (o, out)
    };
    let (o, right) = norm(&m, &[], "right.nii");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let (o, refused) = norm(&mf, &[], "refused.nii");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("mask_flipped.nii") && e.contains("another grid") && e.contains("hint: add --mask-resample"), "{e}");
    assert!(!refused.exists());

    let (o, resampled) = norm(&mf, &["--mask-resample"], "resampled.nii");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resampled onto the volume's"), "{}", stderr(&o));
    assert_eq!(f32_data(&read(&resampled)), f32_data(&read(&right)), "the resampled mask lands on the same anatomy");

    // A mask whose file gives no geometry (an NPY alone) is taken on the volume's grid, with a word.
    let npy = d.path().join("bare.npy");
    write(&mask, &npy);
    std::fs::remove_file(sidecar_path(&npy)).unwrap();
    let (o, bare) = norm(&npy, &[], "bare_out.nii");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("gives no geometry"), "{}", stderr(&o));
    assert_eq!(f32_data(&read(&bare)), f32_data(&read(&right)));
}

#[test]
fn no_flag_that_reads_like_an_input_writes_and_no_output_replaces_an_input() {
    let d = tempfile::tempdir().unwrap();
    let (_, hu, m) = hu_and_mask(d.path());
    let before = |p: &Path| std::fs::read(p).unwrap();
    let (hu_bytes, m_bytes) = (before(&hu), before(&m));
    let p = |s: &str| d.path().join(s).to_string_lossy().into_owned();
    let (hus, ms) = (hu.to_string_lossy().into_owned(), m.to_string_lossy().into_owned());
    std::os::unix::fs::symlink(&hu, d.path().join("link.nii")).unwrap();
    std::fs::hard_link(&hu, d.path().join("hard.nii")).unwrap();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("lung-seg", vec![hus.clone(), "-o".into(), p("l.nii"), "--apply".into(), ms.clone()], "--write-masked"),
        ("hu-convert", vec![hus.clone(), "-o".into(), p("h.nii"), "--fov-mask".into(), ms.clone()], "--write-fov-mask"),
        ("hu-convert", vec![hus.clone(), "-o".into(), p("h.nii"), "--write-fov-mask".into(), hus.clone()], "would overwrite the input"),
        ("hu-convert", vec![hus.clone(), "-o".into(), p("h.nii"), "--write-fov-mask".into(), p("h.nii")], "two outputs"),
        ("lung-seg", vec![hus.clone(), "-o".into(), p("l.nii"), "--write-masked".into(), p("hard.nii")], "would overwrite the input"),
        ("vol-resample", vec![p("link.nii"), "--spacing".into(), "2".into(), "-o".into(), hus.clone()], "would overwrite the input"),
        ("vol-mesh", vec![ms.clone(), "-o".into(), p("m.stl"), "--preview".into(), hus.clone()], ".png"),
        (
            "vol-view",
            vec![hus.clone(), "--overlay".into(), ms.clone(), "-o".into(), p("hist.png"), "--histogram".into(), p("hist.png")],
            "two outputs",
        ),
        // hu.nii's sidecar is hu.json: an NPY output named hu.npy would replace it.
        ("vol-normalize", vec![hus.clone(), "-o".into(), p("hu.npy")], "would overwrite the input"),
    ];
    for (t, args, says) in cases {
        let o = tool(t).args(&args).output().unwrap();
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{t} {args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{t} {args:?}: {}", stderr(&o));
        assert_eq!(before(&hu), hu_bytes, "{t} {args:?} changed the input");
        assert_eq!(before(&m), m_bytes, "{t} {args:?} changed the mask");
    }
    // The renamed flags do what the old ones did.
    let masked = d.path().join("masked.nii");
    let o = tool("lung-seg").arg(&hu).arg("-o").arg(d.path().join("l.nii")).arg("--write-masked").arg(&masked).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&masked).shape(), read(&hu).shape());
}

#[test]
fn outputs_carry_no_patient_identity_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    let dicom = d.path().join("DOE_JOHN").join("dicom");
    let w = phantom(&dicom, &small());
    let secrets = |text: &str| -> Vec<String> {
        let uid = w.series_uid.clone();
        [String::from("PHANTOM-0001"), uid, d.path().to_string_lossy().into_owned(), "DOE_JOHN".into()]
            .into_iter()
            .filter(|s| text.contains(s.as_str()))
            .collect()
    };
    for (name, keep) in [("anon.nii", false), ("kept.nii", true)] {
        let out = d.path().join(name);
        let mut c = tool("dcm-stack");
        c.arg(&dicom).arg("-o").arg(&out);
        if keep {
            c.arg("--keep-phi");
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        // The header extension and the sidecar: both carry the metadata.
        for f in [out.clone(), sidecar_path(&out)] {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            let found = secrets(&text);
            if keep {
                assert_eq!(found.len(), 4, "{}: --keep-phi keeps them all, found {found:?}", f.display());
            } else {
                assert!(found.is_empty(), "{} names {found:?}", f.display());
            }
        }
    }
    // Anonymized outputs of one series still match up: the same hash for the same UID.
    let a = read(&d.path().join("anon.nii"));
    let s = a.meta.series.unwrap();
    assert!(s.series_instance_uid.as_deref().is_some_and(|u| u.starts_with("anon-")) && s.patient_id.is_none());
    assert!(a.meta.slices.iter().all(|s| s.file.starts_with("anon-") && s.file.ends_with(".dcm")), "hashed folder, file name");
}

#[test]
fn sidecar_affines_in_array_order_label_intent_and_normalized_window() {
    let d = tempfile::tempdir().unwrap();
    let (_, hu, m) = hu_and_mask(d.path());
    let npy = d.path().join("x.npy");
    let o = tool("vol-normalize").arg(&hu).arg("-o").arg(&npy).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sidecar_path(&npy)).unwrap()).unwrap();
    let mat = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(side[k].clone()).unwrap() };
    let apply =
        |a: &[Vec<f64>], v: [f64; 3]| -> [f64; 3] { std::array::from_fn(|r| a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3]) };
    let g = read(&hu).geometry;
    for (k, j, i) in [(0.0, 0.0, 0.0), (3.0, 5.0, 7.0), (23.0, 63.0, 1.0)] {
        // numpy's a[k, j, i] is at affine_lps_zyx @ (k, j, i, 1).
        let want = g.index_to_world([i, j, k]);
        for (got, w) in apply(&mat("affine_lps_zyx"), [k, j, i]).iter().zip(want) {
            assert!((got - w).abs() < 1e-6, "{got} vs {w}");
        }
        let ras = apply(&mat("affine_ras_zyx"), [k, j, i]);
        assert!((ras[0] + want[0]).abs() < 1e-6 && (ras[1] + want[1]).abs() < 1e-6 && (ras[2] - want[2]).abs() < 1e-6);
    }
    // Masks carry NIfTI's label intent (1002, offset 68); a normalized NIfTI a window in its own units.
    let seg = d.path().join("lungs.nii");
    assert!(tool("lung-seg").arg(&hu).arg("-o").arg(&seg).output().unwrap().status.success());
    let h = std::fs::read(&seg).unwrap();
    assert_eq!(i16::from_le_bytes([h[68], h[69]]), 1002);
    assert_eq!(read(&m).meta.kind, Kind::Mask);
    let nn = d.path().join("n.nii");
    assert!(tool("vol-normalize").arg(&hu).arg("-o").arg(&nn).output().unwrap().status.success());
    let h = std::fs::read(&nn).unwrap();
    let f = |o: usize| f32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    assert_eq!((f(128), f(124)), (-0.25, 0.75), "cal_min, cal_max: the clip range after centring");
}

#[test]
fn names_and_contents_agree_or_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (_, hu, m) = hu_and_mask(d.path());
    let cases: Vec<(&str, Vec<PathBuf>, Vec<&str>, &str)> = vec![
        (
            "vol-resample",
            vec![hu.clone(), d.path().join("x.nii.gz")],
            vec!["--spacing", "2", "--format", "npy"],
            "the name says nii.gz, --format says npy",
        ),
        ("vol-normalize", vec![hu.clone(), d.path().join("s.npy")], vec!["--fit"], "does not end in .json"),
        ("vol-mesh", vec![m.clone(), d.path().join("m.stl")], vec!["--format", "obj"], "says stl, --format says obj"),
        ("vol-view", vec![hu.clone(), d.path().join("v.nii")], vec![], "does not end in .png"),
    ];
    for (t, paths, flags, says) in cases {
        let o = tool(t).arg(&paths[0]).arg("-o").arg(&paths[1]).args(&flags).output().unwrap();
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{t}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{t}: {}", stderr(&o));
        assert!(!paths[1].exists(), "{t} wrote {}", paths[1].display());
    }
    // A 0/1 volume that does not say it is a mask (another tool's uint8 NPY) meshes at 0.5, not 400 HU.
    let bare = d.path().join("bare.npy");
    let mut v = read(&m);
    v.meta.kind = Kind::Unknown;
    write(&v, &bare);
    std::fs::remove_file(sidecar_path(&bare)).unwrap();
    let stl = d.path().join("bare.stl");
    let o = tool("vol-mesh").arg(&bare).arg("-o").arg(&stl).arg("-v").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("iso-level 0.5") && e.contains("only 0 and 1"), "{e}");
    // The warning names the flag that exists.
    assert!(e.contains("--npy-spacing") && !e.contains("(pass --spacing"), "{e}");
}

#[test]
fn help_and_man_pages_say_what_each_tool_does_and_meshes_say_their_space() {
    let blurb = "Chest-CT DICOM to training-ready volumes and meshes";
    for t in TOOLS {
        let o = tool(t).arg("-h").output().unwrap();
        let first = stdout(&o).lines().next().unwrap_or_default().to_string();
        assert!(!first.contains(blurb) && first.len() > 20, "{t} -h: {first}");
        let man = stdout(&tool(t).args(["--generate", "man"]).output().unwrap());
        let name = man.lines().skip_while(|l| *l != ".SH NAME").nth(1).unwrap_or_default().to_string();
        let purpose: Vec<&str> = first.split_whitespace().take(3).collect();
        assert!(name.starts_with(&t.replace('-', "\\-")) && !name.contains(blurb) && name.contains(&purpose.join(" ")), "{t}: {name}");
    }
    let d = tempfile::tempdir().unwrap();
    let (_, _, m) = hu_and_mask(d.path());
    for (space, file, ascii, tag) in
        [("ras", "r.stl", false, "SPACE=RAS"), ("lps", "l.stl", true, "solid ctprep SPACE=LPS"), ("ras", "r.obj", false, "SPACE=RAS")]
    {
        let out = d.path().join(file);
        let mut c = tool("vol-mesh");
        c.arg(&m).arg("-o").arg(&out).args(["--space", space]);
        if ascii {
            c.arg("--ascii");
        }
        assert!(c.output().unwrap().status.success());
        let bytes = std::fs::read(&out).unwrap();
        let head = String::from_utf8_lossy(&bytes[..80.min(bytes.len())]).into_owned();
        assert!(head.contains(tag), "{file}: {head}");
    }
}

/// Runs `cmd` on a pseudo-terminal (util-linux `script`) and returns what the terminal showed.
fn on_terminal(cmd: &str) -> String {
    let o = std::process::Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .env("CTPREP_PROGRESS_AFTER_MS", "0")
        .output()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn progress_moves_on_a_terminal_and_is_hidden_when_piped_or_quiet() {
    let d = tempfile::tempdir().unwrap();
    let (w, hu, _) = hu_and_mask(d.path());
    let n = w.files.len();
    let stack = format!("{} {} -o {}", bin("dcm-stack").display(), d.path().join("dicom").display(), d.path().join("s.nii").display());
    let shown = on_terminal(&stack);
    assert!(shown.contains("reading headers"), "{shown}");
    // The bar moves: some frame shows k/N with k > 0 (it stayed at 0/N before).
    let moved = (1..=n).any(|k| shown.contains(&format!(" {k}/{n} ")));
    assert!(moved, "no frame past 0/{n}: {shown}");
    let resample =
        format!("{} {} --spacing 0.7 --interp cubic -o {}", bin("vol-resample").display(), hu.display(), d.path().join("c.nii").display());
    assert!(on_terminal(&resample).contains("resampling (output planes)"));
    assert!(!on_terminal(&format!("{resample} -q")).contains("resampling"), "-q hides it");
    let piped = tool("dcm-stack")
        .arg(d.path().join("dicom"))
        .arg("-o")
        .arg(d.path().join("p.nii"))
        .env("CTPREP_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    assert!(!stderr(&piped).contains("reading headers"), "{}", stderr(&piped));
}

#[test]
fn ctprep_mk_lists_failures_with_makes_exit_code_and_rebuilds_symlinked_patients() {
    let d = tempfile::tempdir().unwrap();
    let (archive, input, out) = (d.path().join("archive"), d.path().join("in"), d.path().join("out"));
    phantom(&archive.join("p1"), &small());
    std::fs::create_dir_all(input.join("bad")).unwrap();
    std::fs::write(input.join("bad").join("notes.txt"), "not DICOM").unwrap();
    std::os::unix::fs::symlink(archive.join("p1"), input.join("p1")).unwrap();
    let bin_dir = bin("dcm-stack").parent().unwrap().to_path_buf();
    let mk = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ctprep.mk");
    let run = || {
        std::process::Command::new("make")
            .arg("-s")
            .arg("-f")
            .arg(&mk)
            .arg(format!("IN={}", input.display()))
            .arg(format!("OUT={}", out.display()))
            .arg(format!("BIN={}", bin_dir.display()))
            .arg("SPACING=2") // a 2 mm grid: the same steps on an eighth of the voxels
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(o.status.code(), Some(2), "make's code for a failed patient, as documented\n{}", stderr(&o));
    assert!(stdout(&o).contains("failed patients: bad"), "{}", stdout(&o));
    let hu = out.join("p1").join("hu_1mm.nii");
    let made: Vec<_> = std::fs::read_dir(out.join("p1")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    for f in ["input.npy", "fit.json", "axial.png", "coronal.png"] {
        assert!(hu.exists() && out.join("p1").join(f).exists(), "no {f}; p1 holds {made:?}\n{}", stderr(&o));
    }
    assert!(!out.join("bad").join("hu_1mm.nii").exists());
    // The QC page lists the patient that made nothing (ctprep.mk writes no status files).
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains(r#"<li data-patient="bad">"#) && page.contains("no 1 mm volume (hu_1mm.json) was made"), "{page}");
    let built = std::fs::metadata(&hu).unwrap().modified().unwrap();
    // Touch one file of the symlinked patient: only that patient is rebuilt.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let one = std::fs::read_dir(archive.join("p1")).unwrap().next().unwrap().unwrap().path();
    let f = std::fs::OpenOptions::new().append(true).open(&one).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    run();
    assert!(std::fs::metadata(&hu).unwrap().modified().unwrap() > built, "the symlinked patient was not rebuilt");
}
