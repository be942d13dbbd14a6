use crate::util::*;

fn decode(p: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    (info.width, info.height, buf[..info.buffer_size()].to_vec())
}

#[test]
fn slice_overlay_montage_histogram_and_dicom_file() {
    let d = tempfile::tempdir().unwrap();
    let (w, hu, m) = hu_and_mask(d.path());
    let ax = d.path().join("ax.png");
    let r = tool("vol-view").arg(&hu).arg("-o").arg(&ax).arg("--overlay").arg(&m).args(["--alpha", "1"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // 64 x 5.625 mm in-plane at the smallest spacing (5.625 mm): 64 x 64 pixels.
    let (wd, ht, px) = decode(&ax);
    assert_eq!((wd, ht), (64, 64));
    // Red overlay pixels exist (the lungs cross the middle slice), and only red, gray, black or text.
    assert!(px.chunks(3).any(|p| p == [230, 60, 60]));
    let co = d.path().join("co.png");
    let r = tool("vol-view").arg(&hu).args(["--coronal", "-o"]).arg(&co).output().unwrap();
    assert!(r.status.success());
    // Coronal: 360 mm wide, 240 mm tall at 5.625 mm pixels.
    let (cw, ch, _) = decode(&co);
    assert_eq!((cw, ch), (64, 43));
    let mo = d.path().join("mo.png");
    assert!(tool("vol-view").arg(&hu).args(["--montage", "2x3", "-o"]).arg(&mo).output().unwrap().status.success());
    let (mw, mh, _) = decode(&mo);
    assert!(mw > mh && mw >= 3 * 64);
    let hi = d.path().join("hist.png");
    assert!(tool("vol-view").arg(&hu).arg("--histogram").arg(&hi).output().unwrap().status.success());
    assert_eq!(decode(&hi).0, 900);
    let dc = d.path().join("dcm.png");
    let r = tool("vol-view").arg(&w.files[0]).arg("-o").arg(&dc).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(decode(&dc).0, 64);
    let r = tool("vol-view").arg(&hu).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn size_sets_the_longest_side_even_for_a_thin_slab_and_v_names_the_plane() {
    let d = tempfile::tempdir().unwrap();
    let (_, hu, _) = hu_and_mask(d.path());
    let co = d.path().join("co.png");
    // Without --size, one pixel per voxel (64 x 43, above); with it, the longest side is 800.
    let r = tool("vol-view").arg(&hu).args(["--coronal", "--size", "800", "-v", "-o"]).arg(&co).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let (cw, ch, _) = decode(&co);
    assert_eq!(cw, 800);
    // 240 mm tall for 360 mm wide.
    assert!((ch as i64 - 800 * 240 / 360).abs() <= 2, "{cw}x{ch}");
    assert!(stderr(&r).contains("vol-view: coronal slice at Y = "), "{}", stderr(&r));
    // Smaller than the data: shrinks as before.
    let r = tool("vol-view").arg(&hu).args(["--size", "32", "-o"]).arg(&co).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(decode(&co).0, 32);
}
