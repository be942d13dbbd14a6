//! Conventions every tool shares: help, exit codes, error format, bad input, atomic outputs.

use crate::util::*;
use ctprep_core::geometry::Geometry;
use ctprep_core::io::{Sink, WriteOptions, write_volume};
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{Volume, VolumeData};
use ndarray::Array3;

#[test]
fn every_tool_has_help_with_exit_codes_and_units() {
    for t in TOOLS {
        let o = tool(t).arg("--help").output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{t}");
        let s = stdout(&o);
        assert!(s.contains("Exit status: 0 success; 1 failure"), "{t} help lacks exit codes");
        assert!(s.contains("LPS") && s.contains("[z, y, x]"), "{t} help lacks axes/units");
        let v = tool(t).arg("--version").output().unwrap();
        assert!(stdout(&v).contains(env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn clap_definitions_are_consistent() {
    use clap::CommandFactory;
    ctprep_cli::tools::dcm_inspect::Args::command().debug_assert();
    ctprep_cli::tools::dcm_stack::Args::command().debug_assert();
    ctprep_cli::tools::hu_convert::Args::command().debug_assert();
    ctprep_cli::tools::vol_resample::Args::command().debug_assert();
    ctprep_cli::tools::lung_seg::Args::command().debug_assert();
    ctprep_cli::tools::vol_normalize::Args::command().debug_assert();
    ctprep_cli::tools::vol_mesh::Args::command().debug_assert();
    ctprep_cli::tools::ct_phantom::Args::command().debug_assert();
    ctprep_cli::tools::vol_view::Args::command().debug_assert();
}

#[test]
fn man_pages_and_completions_generate() {
    let o = tool("vol-resample").args(["--generate", "man"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(".TH vol-resample"));
    let o = tool("lung-seg").args(["--generate", "bash"]).output().unwrap();
    assert!(stdout(&o).contains("lung-seg"));
}

#[test]
fn usage_errors_exit_2() {
    let o = tool("vol-resample").args(["x.nii", "--spacing", "-3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = tool("vol-normalize").args(["--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn missing_file_names_the_file_and_gives_a_hint() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o.nii");
    for t in ["hu-convert", "vol-resample", "lung-seg", "vol-normalize"] {
        let mut c = tool(t);
        c.arg("no-such-file.nii").arg("-o").arg(&out);
        if t == "vol-resample" {
            c.args(["--spacing", "1"]);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{t}");
        let e = stderr(&o);
        assert!(e.starts_with(&format!("{t}: error: 'no-such-file.nii': cannot open")), "{t}: {e}");
        assert!(e.contains("\n  hint: "), "{t}: {e}");
        assert!(!out.exists());
    }
}

fn write_sample(p: &std::path::Path) {
    let v = Volume {
        data: VolumeData::I16(Array3::from_shape_fn((4, 5, 6), |(z, y, x)| (z * 100 + y * 10 + x) as i16)),
        geometry: Geometry::identity([1.0, 1.0, 2.0]),
        meta: Meta { kind: Kind::Hu, ..Meta::default() },
    };
    write_volume(&v, &Sink::Path(p.to_path_buf()), &WriteOptions::default()).unwrap();
}

#[test]
fn corrupt_inputs_fail_cleanly_and_leave_no_output() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.nii");
    write_sample(&good);
    let bytes = std::fs::read(&good).unwrap();
    let gz = d.path().join("good.nii.gz");
    write_sample(&gz);
    let gzb = std::fs::read(&gz).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.nii", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("header_only.nii", bytes[..200].to_vec(), "truncated"),
        ("magic.nii", [b"hello world, not a volume".as_slice(), &[0u8; 400]].concat(), "unknown magic"),
        ("empty.nii", vec![], "empty input"),
        ("cut.nii.gz", gzb[..gzb.len() / 2].to_vec(), "gzip"),
    ];
    // A header claiming 30000^3 voxels: refused before allocating.
    let mut huge = bytes.clone();
    for k in 0..3 {
        huge[42 + 2 * k..44 + 2 * k].copy_from_slice(&30000i16.to_le_bytes());
    }
    cases.push(("huge.nii", huge, "claims"));
    let mut dtype = bytes.clone();
    dtype[70..72].copy_from_slice(&1536i16.to_le_bytes()); // float128
    cases.push(("dtype.nii", dtype, "datatype code 1536"));
    // A vox_offset of 26 TB (found by the mutation tests): refused before allocating.
    let mut offset = bytes.clone();
    offset[108..112].copy_from_slice(&2.6e13f32.to_le_bytes());
    cases.push(("offset.nii", offset, "vox_offset"));
    let mut pixdim = bytes.clone();
    pixdim[252..256].copy_from_slice(&[0; 4]); // no qform/sform
    pixdim[80..84].copy_from_slice(&0f32.to_le_bytes());
    cases.push(("pixdim.nii", pixdim, "pixdim"));
    for (name, data, needle) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, data).unwrap();
        let out = d.path().join(format!("out_{name}"));
        let o = tool("vol-resample").arg(&p).args(["--spacing", "2", "-o"]).arg(&out).output().unwrap();
        no_panic(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
        assert!(e.contains("hint:"), "{name}: {e}");
        assert!(!out.exists(), "{name}: output left behind");
    }
    // Nothing but the inputs in the folder: no temporaries either.
    assert!(files_in(d.path()).iter().all(|f| !f.ends_with(".tmp")));
}

#[test]
fn npy_with_unknown_dtype_and_nan_values() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.npy");
    let mut bytes = Vec::new();
    ctprep_core::io::npy::write_header(&mut bytes, "<c8", [1, 1, 2]).unwrap();
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&p, &bytes).unwrap();
    let o = tool("vol-normalize").arg(&p).arg("-o").arg(d.path().join("n.npy")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("dtype '<c8' is not supported"), "{}", stderr(&o));
    // NaN and inf in a float volume: normalization clips them into range without crashing.
    let v = Volume {
        data: VolumeData::F32(Array3::from_shape_vec((1, 1, 4), vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0]).unwrap()),
        geometry: Geometry::default(),
        meta: Meta { kind: Kind::Hu, ..Meta::default() },
    };
    let inp = d.path().join("nan.nii");
    write_volume(&v, &Sink::Path(inp.clone()), &WriteOptions::default()).unwrap();
    let out = d.path().join("nan_n.nii");
    let o = tool("vol-normalize").arg(&inp).arg("-o").arg(&out).arg("--no-center").output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = f32_data(&read(&out));
    assert_eq!(a[[0, 0, 1]], 1.0);
    assert_eq!(a[[0, 0, 2]], 0.0);
}

#[test]
fn unwritable_output_and_output_equal_to_input() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.nii");
    write_sample(&good);
    let o = tool("vol-resample").arg(&good).args(["--spacing", "2", "-o", "/no/such/folder/out.nii"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("'/no/such/folder/out.nii'") && e.contains("hint:"), "{e}");
    let o = tool("vol-resample").arg(&good).args(["--spacing", "2", "-o"]).arg(&good).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("would overwrite the input"));
    // The input is untouched.
    assert_eq!(read(&good).shape(), [4, 5, 6]);
}

#[test]
fn full_disk_is_reported_and_leaves_nothing() {
    // /dev/full fails every write with ENOSPC: the simulated full disk (every Linux has it; a
    // machine without it fails here rather than passing untested).
    assert!(std::path::Path::new("/dev/full").exists(), "no /dev/full: this test cannot simulate a full disk here");
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.nii");
    write_sample(&good);
    let f = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = std::process::Command::new(bin("vol-resample")).arg(&good).args(["--spacing", "0.5"]).stdout(f).output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left"), "{}", stderr(&o));
}

#[test]
fn broken_pipe_exits_quietly() {
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &small());
    let mut child = std::process::Command::new(bin("dcm-stack"))
        .arg(d.path())
        .arg("-q")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read 100 bytes, then close the pipe (like `| head -c 100`).
    {
        use std::io::Read;
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 100];
        out.read_exact(&mut buf).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn interrupt_removes_the_temporary_file() {
    // A large gzip-9 output keeps the temporary around long enough to interrupt it; on a machine
    // fast enough to finish first, a larger one is tried, and the test fails rather than pass
    // without interrupting anything.
    let d = tempfile::tempdir().unwrap();
    for (attempt, nz) in [120usize, 360, 1080].into_iter().enumerate() {
        let input = d.path().join(format!("big{attempt}.nii"));
        let v = Volume {
            data: VolumeData::I16(Array3::from_shape_fn((nz, 160, 160), |(z, y, x)| ((z * 31 + y * 17 + x * 7) % 2000) as i16 - 1000)),
            geometry: Geometry::identity([1.0; 3]),
            meta: Meta { kind: Kind::Hu, ..Meta::default() },
        };
        write_volume(&v, &Sink::Path(input.clone()), &WriteOptions::default()).unwrap();
        let out_dir = d.path().join(format!("out{attempt}"));
        std::fs::create_dir(&out_dir).unwrap();
        let mut child = std::process::Command::new(bin("vol-resample"))
            .arg(&input)
            .args(["--spacing", "0.5", "--gzip-level", "9", "-q", "-o"])
            .arg(out_dir.join("r.nii.gz"))
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let mut saw_tmp = false;
        while t0.elapsed().as_secs() < 60 {
            if files_in(&out_dir).iter().any(|f| f.ends_with(".tmp")) {
                saw_tmp = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if !saw_tmp {
            let _ = child.wait();
            continue;
        }
        std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130));
        assert!(files_in(&out_dir).is_empty(), "left behind: {:?}", files_in(&out_dir));
        return;
    }
    panic!("every output was written before it could be interrupted: the interrupt path was not exercised");
}

#[test]
fn verbose_reports_the_time_in_memory_that_make_bench_reads() {
    // scripts/bench.sh takes the number after "time in memory: " from each tool's -v output.
    let d = tempfile::tempdir().unwrap();
    let (_, hu, _) = hu_and_mask(d.path());
    let dicom = d.path().join("dicom");
    let out = |name: &str| d.path().join(name);
    let runs: [(&str, Vec<std::ffi::OsString>); 5] = [
        ("hu-convert", vec![dicom.into(), "-o".into(), out("h.nii").into()]),
        ("vol-resample", vec![hu.clone().into(), "--spacing".into(), "4".into(), "-o".into(), out("r.nii").into()]),
        ("lung-seg", vec![hu.clone().into(), "-o".into(), out("l.nii").into()]),
        ("vol-normalize", vec![hu.clone().into(), "-o".into(), out("n.npy").into()]),
        ("vol-mesh", vec![hu.clone().into(), "--level".into(), "400".into(), "-o".into(), out("b.stl").into()]),
    ];
    for (name, args) in runs {
        let r = tool(name).args(&args).arg("-v").output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{name}: {}", stderr(&r));
        let e = stderr(&r);
        let lines: Vec<&str> = e.lines().filter(|l| l.contains("time in memory: ")).collect();
        assert_eq!(lines.len(), 1, "{name}: {e}");
        let secs = lines[0].split("time in memory: ").nth(1).and_then(|t| t.split(" s (").next()).and_then(|t| t.parse::<f64>().ok());
        assert!(secs.is_some_and(|s| s >= 0.0), "{name}: {}", lines[0]);
        assert!(lines[0].starts_with(&format!("{name}: ")), "{}", lines[0]);
        // Quiet runs stay quiet.
        let q = tool(name).args(&args).arg("-q").output().unwrap();
        assert!(!stderr(&q).contains("time in memory"), "{name}");
    }
}
