use crate::util::*;

fn one_file(dir: &std::path::Path) -> std::path::PathBuf {
    let w = phantom(dir, &small());
    w.files[0].clone()
}

#[test]
fn tag_by_keyword_hex_and_path() {
    let d = tempfile::tempdir().unwrap();
    let f = one_file(d.path());
    for t in ["PatientID", "(0010,0020)", "0010,0020"] {
        let o = tool("dcm-inspect").arg(&f).args(["--tag", t]).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stdout(&o), "PHANTOM-0001\n", "{t}");
    }
    let o = tool("dcm-inspect").arg(&f).args(["--tag", "PixelSpacing", "--tag", "ImageType", "--tag", "Rows"]).output().unwrap();
    assert_eq!(stdout(&o), "[5.625, 5.625]\n['ORIGINAL', 'PRIMARY', 'AXIAL']\n64\n");
}

#[test]
fn element_keywords_and_json() {
    let d = tempfile::tempdir().unwrap();
    let f = one_file(d.path());
    let o = tool("dcm-inspect").arg(&f).args(["--element", "PatientID"]).output().unwrap();
    assert_eq!(stdout(&o), format!("(0010,0020) {:<36} LO: 'PHANTOM-0001'\n", "PatientID"));
    let o = tool("dcm-inspect").arg(&f).args(["--keywords", "patient"]).output().unwrap();
    assert_eq!(stdout(&o), "ImageOrientationPatient\nImagePositionPatient\nPatientID\nPatientName\nPatientPosition\n");
    let o = tool("dcm-inspect").arg(&f).args(["--json", "--tag", "Rows", "--tag", "ImagePositionPatient"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Rows"], 64.0);
    assert_eq!(v["ImagePositionPatient"].as_array().unwrap().len(), 3);
    // The DICOM JSON model: tags as keys, vr and Value; pixel data omitted.
    let o = tool("dcm-inspect").arg(&f).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["00100020"]["vr"], "LO");
    assert_eq!(v["00100020"]["Value"][0], "PHANTOM-0001");
    assert!(v.get("7FE00010").is_none());
}

#[test]
fn full_dump_and_pixels() {
    let d = tempfile::tempdir().unwrap();
    let f = one_file(d.path());
    let o = tool("dcm-inspect").arg(&f).output().unwrap();
    let s = stdout(&o);
    assert!(s.lines().next().unwrap().starts_with("(0002,0002) MediaStorageSOPClassUID"));
    assert!(s.contains("(0028,0120) PixelPaddingValue                    SS: -2000"), "{s}");
    assert!(s.contains("(7FE0,0010) PixelData"));
    let o = tool("dcm-inspect").arg(&f).args(["--pixels", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], 64);
    assert_eq!(v["stored_min"], -2000.0);
    assert!(v["padding_pixels"].as_u64().unwrap() > 0);
    assert!(v["hu_min"].as_f64().unwrap() >= -1100.0);
}

#[test]
fn folder_table_skips_junk_and_reports_failures() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(d.path(), &ctprep_phantom::PhantomOptions { junk: true, ..small() });
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "PatientID", "--tag", "InstanceNumber"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "file\tPatientID\tInstanceNumber");
    assert_eq!(lines.len(), 1 + w.files.len());
    assert!(stderr(&o).contains("skipped 2 non-DICOM file(s)"));
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "Rows", "--format", "jsonl"]).output().unwrap();
    for l in stdout(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["Rows"], 64.0);
    }
    // A truncated DICOM file: named, the rest still listed, exit 1.
    let bad = d.path().join("zz_truncated.dcm");
    let bytes = std::fs::read(&w.files[0]).unwrap();
    std::fs::write(&bad, &bytes[..300]).unwrap();
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "Rows", "--format", "csv"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("zz_truncated.dcm"));
    assert_eq!(stdout(&o).lines().count(), 1 + w.files.len());
    no_panic(&o);
}

#[test]
fn missing_tag_is_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let f = one_file(d.path());
    let o = tool("dcm-inspect").arg(&f).args(["--tag", "SliceThickness"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).is_empty());
    let o = tool("dcm-inspect").arg(&f).args(["--tag", "NoSuchKeyword"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn series_preflight_flags_localizer_gap_and_tilt() {
    let d = tempfile::tempdir().unwrap();
    phantom(
        d.path(),
        &ctprep_phantom::PhantomOptions { localizer: true, missing_slice: true, tilt_deg: 12.0, second_series: true, ..small() },
    );
    let o = tool("dcm-inspect").arg("--series").arg(d.path()).arg("--json").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().any(|s| s["localizer"] == true));
    let main = v.iter().find(|s| s["slices"] == 23).expect("main series with one slice missing");
    assert_eq!(main["gaps"].as_array().unwrap().len(), 1);
    assert_eq!(main["gaps"][0]["missing_slices"], 1);
    assert!((main["gantry_tilt_deg"].as_f64().unwrap() - 12.0).abs() < 0.01);
    let o = tool("dcm-inspect").arg("--series").arg(d.path()).output().unwrap();
    let s = stdout(&o);
    assert!(s.contains("[LOCALIZER]") && s.contains("IRREGULAR") && s.contains("gantry tilt 12.00 deg"), "{s}");
}

#[test]
fn padding_written_as_us_shows_as_the_file_says() {
    // Rewrite the phantom's `SS -2000` padding as `US 63536` (same bytes, the VR scanners use):
    // dicom-rs re-types it as signed, pydicom and the file say 63536.
    let d = tempfile::tempdir().unwrap();
    let f = one_file(d.path());
    let mut bytes = std::fs::read(&f).unwrap();
    let at = bytes.windows(8).position(|w| w == [0x28, 0x00, 0x20, 0x01, b'S', b'S', 2, 0]).expect("padding element");
    bytes[at + 4] = b'U';
    std::fs::write(&f, &bytes).unwrap();
    let o = tool("dcm-inspect").arg(&f).args(["--tag", "PixelPaddingValue", "-v"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "63536\n");
    assert!(stderr(&o).contains("= -2000 as signed (PixelRepresentation 1): the stored padding code"), "{}", stderr(&o));
    // The element line, JSON and the whole dump say US 63536 too, not SS -2000.
    let o = tool("dcm-inspect").arg(&f).args(["--element", "PixelPaddingValue"]).output().unwrap();
    assert!(stdout(&o).contains("PixelPaddingValue") && stdout(&o).contains("US: 63536"), "{}", stdout(&o));
    let o = tool("dcm-inspect").arg(&f).args(["--tag", "PixelPaddingValue", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["PixelPaddingValue"], 63536, "{}", stdout(&o));
    let o = tool("dcm-inspect").arg(&f).arg("--json").output().unwrap();
    let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(all["00280120"]["vr"], "US", "{}", all["00280120"]);
    assert_eq!(all["00280120"]["Value"][0], 63536);
    let o = tool("dcm-inspect").arg(&f).output().unwrap();
    assert!(stdout(&o).lines().any(|l| l.contains("PixelPaddingValue") && l.contains("US: 63536")), "{}", stdout(&o));
    // The same in folder tables.
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "PixelPaddingValue", "--format", "csv"]).output().unwrap();
    assert!(stdout(&o).contains(",63536\n"), "{}", stdout(&o));
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "PixelPaddingValue", "--format", "jsonl"]).output().unwrap();
    assert!(stdout(&o).contains("\"PixelPaddingValue\":63536"), "{}", stdout(&o));
}

#[test]
fn file_meta_tags_are_found_like_any_other() {
    use ctprep_phantom::{PhantomOptions, Syntax};
    // TransferSyntaxUID lives in the file meta group (0002), which dicom-rs keeps apart from the
    // dataset; asking for it must still work, for one file and for a folder table.
    let d = tempfile::tempdir().unwrap();
    let w = phantom(d.path(), &PhantomOptions { syntax: Syntax::JpegLossless, ..small() });
    for t in ["TransferSyntaxUID", "(0002,0010)"] {
        let o = tool("dcm-inspect").arg(&w.files[0]).args(["--tag", t]).output().unwrap();
        assert_eq!((o.status.code(), stdout(&o)), (Some(0), "1.2.840.10008.1.2.4.70\n".to_string()), "{t}");
    }
    let o = tool("dcm-inspect").arg(d.path()).args(["--tag", "TransferSyntaxUID", "--format", "csv"]).output().unwrap();
    let rows: Vec<String> = stdout(&o).lines().skip(1).map(String::from).collect();
    assert_eq!(rows.len(), w.files.len());
    assert!(rows.iter().all(|r| r.ends_with(",1.2.840.10008.1.2.4.70")), "{rows:?}");
}
