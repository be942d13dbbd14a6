use crate::util::*;
use std::path::Path;

/// A ctprep.mk-style output folder (flat): `ok` went through, `tiny<&>` has an implausible lung
/// QC, and the input folder also holds `lost`, which made nothing.
fn dataset(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (out, inputs) = (d.join("out"), d.join("in"));
    for p in ["ok", "tiny<&>", "lost"] {
        std::fs::create_dir_all(inputs.join(p)).unwrap();
    }
    let ok = out.join("ok");
    std::fs::create_dir_all(&ok).unwrap();
    phantom(&d.join("dicom"), &small());
    let hu = ok.join("hu_1mm.nii.gz");
    let r = tool("hu-convert").arg(d.join("dicom")).arg("-o").arg(&hu).arg("-q").output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let r = tool("lung-seg").arg(&hu).arg("-o").arg(ok.join("lungs.nii.gz")).arg("--json").arg("-q").output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    std::fs::write(ok.join("lungs_qc.json"), &r.stdout).unwrap();
    let r = tool("vol-view").arg(&hu).arg("--overlay").arg(ok.join("lungs.nii.gz")).arg("-o").arg(ok.join("axial.png")).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let tiny = out.join("tiny<&>");
    std::fs::create_dir_all(&tiny).unwrap();
    std::fs::copy(ok.join("hu_1mm.json"), tiny.join("hu_1mm.json")).unwrap();
    let qc = r#"{"right_ml": 300.0, "left_ml": 20.0, "total_ml": 320.0, "body_fraction": 0.01, "air_components": 9,
        "lungs_found": 2, "fallback": "largest air pocket", "warnings": ["under 500 mL: not lungs"]}"#;
    std::fs::write(tiny.join("lungs_qc.json"), qc).unwrap();
    (out, inputs)
}

#[test]
fn rows_flags_failures_and_escaping() {
    let d = tempfile::tempdir().unwrap();
    let (out, inputs) = dataset(d.path());
    let page = out.join("report.html");
    let r = tool("ctprep-report").arg(&out).arg("--patients").arg(&inputs).arg("-o").arg(&page).arg("--json").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stderr(&r).contains("3 patients, 1 failed, 3 flagged"), "{}", stderr(&r));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j["failed"], serde_json::json!(["lost"]));
    assert_eq!(j["flagged"], serde_json::json!(["lost", "ok", "tiny<&>"]));
    let tiny = &j["rows"].as_array().unwrap().iter().find(|r| r["name"] == "tiny<&>").unwrap()["flags"];
    let flags: Vec<&str> = tiny.as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(
        flags,
        [
            "lung volume 320 mL outside 1500-9000",
            "right/left ratio 15.00",
            "fallback: largest air pocket",
            "thick slices (10.0 mm)",
            "1 warning(s)"
        ]
    );
    let ok = j["rows"].as_array().unwrap().iter().find(|r| r["name"] == "ok").unwrap();
    // The small phantom's 10 mm slices are thick; nothing else is wrong with it.
    assert_eq!(ok["flags"], serde_json::json!(["thick slices (10.0 mm)"]));
    assert_eq!(ok["series"]["slices"], 24);
    let html = std::fs::read_to_string(&page).unwrap();
    // Folder names are text, never markup.
    assert!(html.contains("<b>tiny&lt;&amp;&gt;</b>") && !html.contains("tiny<&>"));
    assert!(html.contains(r##"<li data-patient="lost"><a href="#p-lost">lost</a> at volume: "##));
    // Linked thumbnails, relative to the page: the one that exists, and "no picture" for the rest.
    assert!(html.contains(r#"<img src="ok/axial.png""#));
    assert_eq!(html.matches("no picture").count(), 5);
    assert!(!html.contains("http://") || html.matches("http://").count() == 1, "only the SVG namespace");
}

#[test]
fn embed_puts_the_pictures_inside_and_a_page_elsewhere_links_back() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = dataset(d.path());
    let page = d.path().join("elsewhere").join("qc.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    let r = tool("ctprep-report").arg(&out).arg("-o").arg(&page).arg("-q").output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(r#"<img src="../out/ok/axial.png""#), "relative link from another folder");
    let r = tool("ctprep-report").arg(&out).arg("--embed").arg("-o").arg(&page).arg("-q").output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    let png = std::fs::read(out.join("ok/axial.png")).unwrap();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(png);
    assert!(html.contains(&format!(r#"<img src="data:image/png;base64,{encoded}""#)));
}

#[test]
fn a_folder_without_outputs_is_refused_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("empty/sub")).unwrap();
    let page = d.path().join("r.html");
    let r = tool("ctprep-report").arg(d.path().join("empty")).arg("-o").arg(&page).output().unwrap();
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    assert!(stderr(&r).contains("no patient outputs found") && stderr(&r).contains("hint: run the workflow first"));
    assert!(!page.exists());
}
