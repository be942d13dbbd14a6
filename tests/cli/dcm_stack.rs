use crate::util::*;
use ctprep_phantom::{PhantomOptions, Syntax};

/// Stack a phantom, convert to HU, and check the anatomy lands where the truth says.
fn stack_and_check(o: &PhantomOptions, extra: &[&str]) -> (ctprep_core::Volume, std::process::Output) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dicom");
    let w = phantom(&dir, o);
    let out = d.path().join("hu.nii");
    let r = tool("hu-convert").arg(&dir).arg("-o").arg(&out).args(extra).arg("-v").output().unwrap();
    no_panic(&r);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let v = read(&out);
    // Same grid as the truth (the mask is on dcm-stack's grid by construction).
    let t = &w.lung_mask;
    assert_eq!(v.shape(), t.shape(), "{}", stderr(&r));
    for ijk in [[0.0, 0.0, 0.0], [10.0, 20.0, 5.0]] {
        let (a, b) = (v.geometry.index_to_world(ijk), t.geometry.index_to_world(ijk));
        assert!((0..3).all(|k| (a[k] - b[k]).abs() < 0.01), "{a:?} vs {b:?}");
    }
    let hu = f32_data(&v);
    let m = u8_data(t);
    let lung_mean = masked_mean(&hu, &m);
    assert!((-900.0..-780.0).contains(&lung_mean), "mean HU in the true lungs {lung_mean}: anatomy misplaced");
    (v, r)
}

#[test]
fn picks_the_axial_series_among_localizer_second_series_and_junk() {
    let (v, r) = stack_and_check(&PhantomOptions { localizer: true, second_series: true, junk: true, ..small() }, &[]);
    let e = stderr(&r);
    assert!(e.contains("using series") && e.contains("(24 slices)"), "{e}");
    assert!(e.contains("localizer"), "{e}");
    assert_eq!(v.geometry.spacing[2], 10.0);
    // Padding became air.
    assert_eq!(f32_data(&v)[[0, 0, 0]], -1024.0);
}

#[test]
fn feet_first_oblique_rows_and_implicit_vr() {
    let (v, _) = stack_and_check(&PhantomOptions { feet_first: true, syntax: Syntax::ImplicitLittle, ..small() }, &[]);
    assert_eq!(v.geometry.direction[0], [-1.0, 0.0, 0.0]);
    assert_eq!(v.geometry.axis_codes(), "RPI");
}

#[test]
fn gantry_tilt_is_corrected_onto_an_orthogonal_grid() {
    let (v, r) = stack_and_check(&PhantomOptions { tilt_deg: 15.0, ..small() }, &[]);
    assert!(v.geometry.is_orthogonal(1e-6));
    assert!(stderr(&r).contains("gantry tilt 15.00 deg corrected"), "{}", stderr(&r));
}

#[test]
fn gantry_tilt_kept_writes_a_sheared_geometry() {
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &PhantomOptions { tilt_deg: 15.0, ..small() });
    let out = d.path().join("t.nii");
    let r = tool("dcm-stack").arg(d.path()).args(["--tilt", "keep", "-o"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let v = read(&out);
    assert!(!v.geometry.is_orthogonal(1e-3));
    // Slice k starts at the file's ImagePositionPatient: the table moved 10 mm along z.
    let p = v.geometry.index_to_world([0.0, 0.0, 1.0]);
    let q = v.geometry.index_to_world([0.0, 0.0, 0.0]);
    assert!(((p[2] - q[2]) - 10.0).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3);
}

#[test]
fn missing_slice_is_resampled_kept_or_refused() {
    let o = PhantomOptions { missing_slice: true, ..small() };
    let (v, r) = stack_and_check(&o, &[]);
    assert_eq!(v.shape()[0], 24);
    assert!(stderr(&r).contains("irregular slice spacing"), "{}", stderr(&r));
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &o);
    let out = d.path().join("x.nii");
    let r = tool("dcm-stack").arg(d.path()).args(["--on-gap", "error", "-o"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("--on-gap resample"));
    assert!(!out.exists());
    let r = tool("dcm-stack").arg(d.path()).args(["--on-gap", "keep", "-o"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(read(&out).shape()[0], 23);
}

#[test]
fn every_writable_transfer_syntax_decodes_identically() {
    let mut reference = None;
    for syntax in [Syntax::ExplicitLittle, Syntax::ImplicitLittle, Syntax::DeflatedExplicit, Syntax::Rle, Syntax::JpegLossless] {
        let d = tempfile::tempdir().unwrap();
        phantom(d.path(), &PhantomOptions { syntax, ..small() });
        let r = tool("dcm-stack").arg(d.path()).arg("-q").output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{syntax:?}: {}", stderr(&r));
        let v = read_bytes(&r.stdout, d.path());
        match &reference {
            None => reference = Some(v.data),
            Some(a) => assert_eq!(&v.data, a, "{syntax:?}"),
        }
    }
}

#[test]
fn unsigned_storage_and_fractional_slope_give_correct_hu() {
    let (v, _) = stack_and_check(&PhantomOptions { unsigned: true, rescale_slope: 0.5, ..small() }, &[]);
    assert_eq!(v.data.dtype(), ctprep_core::DType::F32);
}

#[test]
fn stored_output_carries_the_rescale_for_other_readers() {
    let d = tempfile::tempdir().unwrap();
    phantom(d.path(), &small());
    let out = d.path().join("s.nii.gz");
    let r = tool("dcm-stack").arg(d.path()).arg("-o").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let obj = nifti::ReaderOptions::new().read_file(&out).unwrap();
    let h = nifti::NiftiObject::header(&obj);
    assert_eq!((h.scl_slope, h.scl_inter, h.datatype), (1.0, -1024.0, 4));
    let side: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(side["meta"]["slices"].as_array().unwrap().len(), 24);
    // Anonymized by default (traps.rs checks --keep-phi).
    assert!(side["meta"]["series"]["patient_id"].is_null());
    assert_eq!(side["meta"]["provenance"][0]["tool"], "dcm-stack");
}

#[test]
fn file_names_on_stdin_and_list() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(d.path(), &PhantomOptions { second_series: true, ..small() });
    let names: String = w.files.iter().map(|p| format!("{}\n", p.display())).collect();
    let r = tool("dcm-stack").args(["-", "--series", "3", "-q"]).write_stdin(names).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(read_bytes(&r.stdout, d.path()).shape()[0], 12);
    let r = tool("dcm-stack").arg("--list").arg(d.path()).output().unwrap();
    let s = stdout(&r);
    assert!(s.starts_with("number\tslices"));
    assert_eq!(s.lines().count(), 3);
}

#[test]
fn two_patients_in_one_folder_are_warned_about_and_the_tie_rule_is_stable() {
    // Two phantoms (seeds 1 and 2: PatientID PHANTOM-0001 / -0002, their own study and series
    // UIDs, the same SeriesNumber and slice count) written into one folder.
    let d = tempfile::tempdir().unwrap();
    let a = phantom(d.path(), &PhantomOptions { seed: 1, ..small() });
    let b = phantom(d.path(), &PhantomOptions { seed: 2, ..small() });
    let r = tool("dcm-stack").arg(d.path()).arg("-o").arg(d.path().join("x.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let e = stderr(&r);
    assert!(e.contains("warning: the input holds candidate series of 2 patients (PatientID PHANTOM-0001, PHANTOM-0002)"), "{e}");
    assert!(e.contains("tied in slices with 1 other(s), taken by the lowest SeriesNumber, then UID"), "{e}");
    // The lower UID (as text) wins, whichever folder order the files come in.
    let lower = a.series_uid.clone().min(b.series_uid.clone());
    assert!(e.contains(&format!("using series {lower} ")), "{e}");
    // --list and dcm-inspect --series say whose each series is.
    let s = stdout(&tool("dcm-stack").arg("--list").arg(d.path()).output().unwrap());
    assert!(s.starts_with("number\tslices\tsize\tplane\tdescription\tstatus\tpatient_id\tstudy_date\tstudy_uid\tseries_uid"), "{s}");
    assert!(s.contains("\taxial\t") && s.contains("\tPHANTOM-0001\t") && s.contains("\tPHANTOM-0002\t"), "{s}");
    let s = stdout(&tool("dcm-inspect").arg("--series").arg(d.path()).output().unwrap());
    assert!(s.contains("patient/study   PatientID PHANTOM-0002"), "{s}");
    // --axial-only takes axial series as before.
    let r = tool("dcm-stack").arg(d.path()).arg("--axial-only").arg("-q").arg("-o").arg(d.path().join("y.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
}

#[test]
fn bad_series_inputs() {
    let d = tempfile::tempdir().unwrap();
    // Empty folder: nothing to stack, exit 3.
    let r = tool("dcm-stack").arg(d.path()).output().unwrap();
    assert_eq!(r.status.code(), Some(3));
    // The folder is named: in a dataset's log it says which patient.
    assert!(stderr(&r).contains(&format!("error: '{}': no DICOM images found", d.path().display())), "{}", stderr(&r));
    // One slice.
    let w = phantom(&d.path().join("one"), &PhantomOptions { slices: 2, ..small() });
    std::fs::remove_file(&w.files[1]).unwrap();
    let r = tool("dcm-stack").arg(d.path().join("one")).output().unwrap();
    assert_eq!(r.status.code(), Some(3));
    assert!(stderr(&r).contains("single slice"), "{}", stderr(&r));
    // Slices of different sizes in one series.
    let mixed = d.path().join("mixed");
    let w = phantom(&mixed, &small());
    let other = phantom(&d.path().join("other"), &PhantomOptions { size: 32, ..small() });
    // Same series UID (same seed), different size: copy one 32x32 file in.
    std::fs::copy(&other.files[0], mixed.join("odd.dcm")).unwrap();
    let _ = w;
    let r = tool("dcm-stack").arg(&mixed).args(["-o"]).arg(d.path().join("m.nii")).output().unwrap();
    no_panic(&r);
    // The odd file forms its own (single-slice) group; the main series still stacks.
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // A truncated slice in the chosen series: named, exit 1, no output.
    let bad = d.path().join("bad");
    let w = phantom(&bad, &small());
    let bytes = std::fs::read(&w.files[3]).unwrap();
    std::fs::write(&w.files[3], &bytes[..bytes.len() - 2000]).unwrap();
    let out = d.path().join("b.nii");
    let r = tool("dcm-stack").arg(&bad).arg("-o").arg(&out).output().unwrap();
    no_panic(&r);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains(&w.files[3].file_name().unwrap().to_string_lossy().to_string()), "{}", stderr(&r));
    assert!(!out.exists());
}

#[test]
fn missing_positions_fall_back_with_a_warning() {
    use dicom_object::OpenFileOptions;
    let d = tempfile::tempdir().unwrap();
    let w = phantom(d.path(), &small());
    for f in &w.files {
        let mut obj = OpenFileOptions::new().open_file(f).unwrap();
        obj.remove_element(dicom_dictionary_std::tags::IMAGE_POSITION_PATIENT);
        obj.write_to_file(f).unwrap();
    }
    let r = tool("dcm-stack").arg(d.path()).arg("-o").arg(d.path().join("o.nii")).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stderr(&r).contains("ordering by SliceLocation"), "{}", stderr(&r));
}
