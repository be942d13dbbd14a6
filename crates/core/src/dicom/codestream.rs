//! What a compressed frame says its size is (JPEG, JPEG-LS, JPEG 2000), read from the stream's
//! own header so that a stream claiming 65535 x 65535 is refused before a decoder allocates for
//! it: a hostile file can make every decoder thread ask for gigabytes.

use super::SliceHeader;
use crate::error::{Error, Result};

/// Before a decoder sees a compressed frame: JPEG-family frames must say the header's size, RLE
/// frames must unpack to it (fragments as dicom-object gives them, for slice `h`).
pub fn check_fragments(h: &SliceHeader, fragments: &[impl AsRef<[u8]>]) -> Result<()> {
    let damaged = |msg: String, hint: &str| Error::bad_input(msg).with_path(&h.path).with_hint(hint);
    let ts = h.transfer_syntax.as_str();
    if ts == "1.2.840.10008.1.2.5" {
        // RLE: one fragment per frame, one segment per byte of each sample.
        let frag = fragments.get(h.frame as usize).ok_or_else(|| {
            damaged(format!("RLE pixel data has no fragment for frame {}", h.frame + 1), "the file is damaged: re-copy or re-export it")
        })?;
        let segments = usize::from(h.samples_per_pixel.max(1)) * usize::from(h.bits_allocated).div_ceil(8);
        check_rle(frag.as_ref(), segments, h.rows as usize * h.columns as usize)
            .map_err(|why| damaged(format!("corrupt RLE pixel data: {why}"), "the file is damaged: re-copy or re-export it"))?;
    }
    if ts.starts_with("1.2.840.10008.1.2.4.") {
        for f in fragments.iter().filter_map(|f| dims(f.as_ref())) {
            // The decoders write what the stream holds into a buffer sized by the header, and
            // panic when it holds more (found by fuzzing: SamplesPerPixel 0 for a 1-component
            // stream): size, components and sample size must all agree.
            let disagreement = if (f.rows, f.columns) != (h.rows, h.columns) {
                Some(format!("says {} x {} pixels, the header {} x {}", f.rows, f.columns, h.rows, h.columns))
            } else if let Some(c) = f.components.filter(|&c| c != h.samples_per_pixel) {
                Some(format!("has {c} components, the header {} samples per pixel", h.samples_per_pixel))
            } else {
                f.precision
                    .filter(|&p| u16::from(p).div_ceil(8) > h.bits_allocated.div_ceil(8))
                    .map(|p| format!("has {p}-bit samples, the header allocates {} bits", h.bits_allocated))
            };
            if let Some(what) = disagreement {
                return Err(damaged(
                    format!("the compressed stream {what}"),
                    "the pixel data does not belong to this header: the file is damaged",
                ));
            }
        }
    }
    Ok(())
}

/// The frame size from a JPEG family SOF marker (baseline, extended, lossless, JPEG-LS) or a
/// JPEG 2000 SIZ marker; `None` for anything else (RLE, unknown, too short).
pub fn dims(stream: &[u8]) -> Option<FrameSize> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*stream.get(i)?, *stream.get(i + 1)?]) as u32);
    let be32 = |i: usize| Some(u32::from_be_bytes(stream.get(i..i + 4)?.try_into().ok()?));
    if stream.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 4 <= stream.len() {
            if stream[i] != 0xFF {
                i += 1;
                continue;
            }
            let marker = stream[i + 1];
            if marker == 0xFF || marker == 0x00 || (0xD0..=0xD8).contains(&marker) {
                i += if marker == 0xFF { 1 } else { 2 };
                continue;
            }
            if marker == 0xDA {
                return None; // scan data: no frame header came first
            }
            let sof = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC)) || marker == 0xF7;
            if sof {
                let (precision, components) = (*stream.get(i + 4)?, *stream.get(i + 9)?);
                return Some(FrameSize {
                    rows: be16(i + 5)?,
                    columns: be16(i + 7)?,
                    components: Some(components.into()),
                    precision: Some(precision),
                });
            }
            i += 2 + be16(i + 2)? as usize;
        }
        return None;
    }
    // JPEG 2000: a raw codestream (SOC then SIZ), or the first one inside a JP2 file.
    let jp2 = stream.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20]);
    let start = if stream.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        0
    } else if jp2 {
        stream.windows(4).take(4096).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?
    } else {
        return None;
    };
    let siz = start + 4;
    let (x, y, x0, y0) = (be32(siz + 4)?, be32(siz + 8)?, be32(siz + 12)?, be32(siz + 16)?);
    // Csiz follows XTsiz, YTsiz, XTOsiz and YTOsiz; sample sizes vary per component.
    let components = stream.get(siz + 36..siz + 38).map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some(FrameSize { rows: y.checked_sub(y0)?, columns: x.checked_sub(x0)?, components, precision: None })
}

/// What a compressed frame's own header says: its size, and (when read) its components and
/// bits per sample.
#[derive(Debug, PartialEq)]
pub struct FrameSize {
    pub rows: u32,
    pub columns: u32,
    pub components: Option<u16>,
    pub precision: Option<u8>,
}

/// Check an RLE Lossless frame (DICOM PS3.5 Annex G) before the decoder sees it: the segment
/// count and offsets must fit the fragment, and every segment must unpack (PackBits) to at least
/// `pixels` bytes. (Found by fuzzing: a short segment made the decoder index past its buffer.)
pub fn check_rle(frame: &[u8], segments_expected: usize, pixels: usize) -> std::result::Result<(), String> {
    let le32 = |i: usize| frame.get(4 * i..4 * i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let n = le32(0).ok_or("the RLE header is cut short")?;
    if n != segments_expected || n == 0 || n > 15 {
        return Err(format!("the RLE header has {n} segments, the image needs {segments_expected}"));
    }
    for s in 0..n {
        let start = le32(1 + s).ok_or("the RLE header is cut short")?;
        let end = if s + 1 < n { le32(2 + s).ok_or("the RLE header is cut short")? } else { frame.len() };
        if start < 64 || start > end || end > frame.len() {
            return Err(format!("RLE segment {} lies outside the frame ({start}..{end} of {})", s + 1, frame.len()));
        }
        let (mut i, mut out, seg) = (0usize, 0usize, &frame[start..end]);
        while i < seg.len() && out < pixels {
            let h = seg[i] as i8;
            if h >= 0 {
                out += h as usize + 1;
                i += h as usize + 2;
            } else if h != -128 {
                out += (1 - h as isize) as usize;
                i += 2;
            } else {
                i += 1;
            }
        }
        if out < pixels || i > seg.len() {
            return Err(format!("RLE segment {} unpacks to {out} bytes, the image needs {pixels}", s + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_must_agree_with_the_header_in_size_components_and_sample_size() {
        let frame = crate::dicom::ljpeg::encode(&[0u16; 6 * 9], 6, 9, 12, 1);
        let h = SliceHeader {
            path: "slice.dcm".into(),
            transfer_syntax: "1.2.840.10008.1.2.4.70".into(),
            rows: 6,
            columns: 9,
            samples_per_pixel: 1,
            bits_allocated: 16,
            ..SliceHeader::default()
        };
        assert!(check_fragments(&h, &[&frame]).is_ok());
        let refused = |h: &SliceHeader| check_fragments(h, &[&frame]).unwrap_err().to_string();
        assert!(refused(&SliceHeader { rows: 7, ..h.clone() }).contains("says 6 x 9 pixels, the header 7 x 9"));
        let e = refused(&SliceHeader { samples_per_pixel: 3, ..h.clone() });
        assert!(e.contains("has 1 components, the header 3 samples per pixel") && e.contains("slice.dcm"), "{e}");
        assert!(refused(&SliceHeader { bits_allocated: 8, ..h.clone() }).contains("has 12-bit samples, the header allocates 8 bits"));
    }

    #[test]
    fn reads_the_frame_size_of_each_family() {
        let ljpeg = crate::dicom::ljpeg::encode(&[0u16; 6 * 9], 6, 9, 12, 1);
        assert_eq!(dims(&ljpeg), Some(FrameSize { rows: 6, columns: 9, components: Some(1), precision: Some(12) }));
        // JPEG-LS SOF55 after an APP segment.
        let jls = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0, 0xFF, 0xF7, 0x00, 0x0B, 16, 0x02, 0x00, 0x03, 0x00, 1, 1, 0x11, 0];
        assert_eq!(dims(&jls), Some(FrameSize { rows: 512, columns: 768, components: Some(1), precision: Some(16) }));
        let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [700u32, 500, 100, 50] {
            j2k.extend_from_slice(&v.to_be_bytes());
        }
        let size = |components| Some(FrameSize { rows: 450, columns: 600, components, precision: None });
        assert_eq!(dims(&j2k), size(None), "no Csiz");
        j2k.extend_from_slice(&[0; 16]);
        j2k.extend_from_slice(&3u16.to_be_bytes());
        assert_eq!(dims(&j2k), size(Some(3)));
        assert_eq!(dims(b"RLE data"), None);
        assert_eq!(dims(&[0xFF, 0xD8, 0xFF, 0xC0]), None, "cut short");
    }
}
