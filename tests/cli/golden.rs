//! Golden files: every tool's `--help` and the main error messages, word for word, so a change
//! to what users read shows up in review. After an intended change:
//!
//!     UPDATE_GOLDEN=1 cargo test --test cli golden
//!
//! rewrites tests/cli/golden/ (then read the diff).

use crate::util::*;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/golden")
}

/// Compare `actual` with the golden file `name`, or rewrite it under UPDATE_GOLDEN=1.
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let first =
            expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n(UPDATE_GOLDEN=1 rewrites it after an intended change)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn golden_help_of_every_tool() {
    for t in TOOLS {
        let o = tool(t).arg("--help").output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{t} --help");
        check_golden(&format!("{t}.help"), &stdout(&o));
    }
}

#[test]
fn golden_error_messages() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let hu = dir.join("hu.nii");
    let mask = dir.join("mask.nii");
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "not an image\n").unwrap();
    let phantom_dir = dir.join("dicom");
    phantom(&phantom_dir, &small());
    let ok = tool("hu-convert").arg(&phantom_dir).arg("-o").arg(&hu).arg("-q").output().unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let ok = tool("lung-seg").arg(&hu).arg("-o").arg(&mask).arg("-q").output().unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("dcm-stack", vec![s(&dir.join("missing"))]),
        ("dcm-stack", vec![s(&junk), "-o".into(), s(&dir.join("x.nii"))]),
        ("dcm-inspect", vec![s(&junk)]),
        ("dcm-inspect", vec![s(&phantom_dir), "--tag".into(), "NoSuchKeyword".into()]),
        ("hu-convert", vec![s(&mask), "-o".into(), s(&dir.join("y.nii"))]),
        ("hu-convert", vec![s(&hu), "-o".into(), s(&hu)]),
        ("vol-resample", vec![s(&hu)]),
        ("vol-resample", vec![s(&hu), "--spacing".into(), "0".into()]),
        ("vol-resample", vec![s(&hu), "--spacing".into(), "1".into(), "-o".into(), s(&dir.join("z.txt"))]),
        ("lung-seg", vec![s(&mask), "-o".into(), s(&dir.join("m2.nii"))]),
        ("lung-seg", vec![s(&hu), "--json".into()]),
        ("vol-normalize", vec![s(&hu), "--per-image-mean".into(), "-o".into(), s(&dir.join("n.npy"))]),
        ("vol-normalize", vec!["--fit".into(), s(&hu), "-o".into(), s(&dir.join("stats.npy"))]),
        ("vol-mesh", vec![s(&hu), "-o".into(), s(&dir.join("bone.ply"))]),
        ("vol-mesh", vec![s(&hu), "--format".into(), "obj".into(), "-o".into(), s(&dir.join("bone.stl"))]),
        ("vol-view", vec![s(&junk), "-o".into(), s(&dir.join("v.png"))]),
        ("ctprep-report", vec![s(&dir.join("missing")), "-o".into(), s(&dir.join("r.html"))]),
        ("ctprep-report", vec![s(&phantom_dir), "-o".into(), s(&dir.join("r.html"))]),
    ];
    let mut out = String::new();
    for (t, args) in cases {
        let o = tool(t).args(&args).output().unwrap();
        no_panic(&o);
        let shown: Vec<String> = args.iter().map(|a| a.replace(&s(dir), "<TMP>")).collect();
        out += &format!("$ {t} {}\nexit {}\n{}\n", shown.join(" "), o.status.code().unwrap_or(-1), stderr(&o).replace(&s(dir), "<TMP>"));
    }
    check_golden("errors.txt", &out);
}
