//! Pixel data to stored values: every slice of a series decoded in parallel straight into its
//! plane of the volume; our single-pass lossless-JPEG decoder first, dicom-pixeldata for the rest.

use super::header::SliceHeader;
use super::series::Ordered;
use crate::error::{Error, Result};
use crate::volume::Voxel;
use dicom_core::value::Value;
use ndarray::{Array3, Axis};
use rayon::prelude::*;

/// Decode every slice's stored values (parallel) into one `[z, y, x]` array.
pub(super) fn decode_all<T: Voxel>(o: &Ordered) -> Result<Array3<T>> {
    let f = &o.slices[0];
    let (nz, ny, nx) = (o.slices.len(), f.rows as usize, f.columns as usize);
    let bytes = [ny as u64, nx as u64, std::mem::size_of::<T>() as u64].iter().try_fold(nz as u64, |a, &b| a.checked_mul(b));
    crate::io::check_claim(&f.path, "the series", bytes.unwrap_or(u64::MAX), None)?;
    for h in &o.slices {
        h.check_pixels_fit()?;
    }
    let mut vol = crate::volume::zeroed::<T>((nz, ny, nx));
    let _progress = crate::progress::task("decoding slices", nz as u64);
    vol.axis_iter_mut(Axis(0)).into_par_iter().zip(o.slices.par_iter()).try_for_each(|(mut slab, h)| -> Result<()> {
        let out = slab.as_slice_mut().expect("standard layout");
        decode_stored_into(h, out)?;
        crate::progress::advance(1);
        Ok(())
    })?;
    Ok(vol)
}

/// Stored values of one slice (masked to BitsStored and sign-extended), as i32.
pub fn decode_stored(h: &SliceHeader) -> Result<Vec<i32>> {
    let mut out = vec![0i32; h.rows as usize * h.columns as usize];
    decode_stored_into(h, &mut out)?;
    Ok(out)
}

/// Decode one slice's stored values (masked to BitsStored and sign-extended) straight into `out`
/// (Rows x Columns, row-major).
pub fn decode_stored_into<T: Voxel>(h: &SliceHeader, out: &mut [T]) -> Result<()> {
    // The decoder asserts on some impossible pixel formats: refuse them with a message first.
    // (Found by the byte-mutation tests: BitsStored 0 panicked inside dicom-pixeldata.)
    // (And fuzzing: SamplesPerPixel 0 panicked in the JPEG adapter.)
    if !matches!(h.bits_allocated, 8 | 16 | 32)
        || h.bits_stored == 0
        || h.bits_stored > h.bits_allocated
        || h.rows == 0
        || h.columns == 0
        || !(1..=4).contains(&h.samples_per_pixel)
    {
        return Err(Error::bad_input(format!(
            "impossible pixel format: Rows {}, Columns {}, BitsAllocated {}, BitsStored {}, SamplesPerPixel {}",
            h.rows, h.columns, h.bits_allocated, h.bits_stored, h.samples_per_pixel
        ))
        .with_path(&h.path)
        .with_hint("the image header is corrupt: re-export the file"));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_checked(h, out))).map_err(|_| {
        Error::bad_input("the pixel decoder failed on this file")
            .with_path(&h.path)
            .with_hint("the pixel data is corrupt: re-export the file")
    })?
}

fn decode_checked<T: Voxel>(h: &SliceHeader, out: &mut [T]) -> Result<()> {
    use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
    let ts = &h.transfer_syntax;
    // Lossless JPEG, one 16-bit frame per file (most archived CT): the file read once, its
    // fragments found by the structure check every file gets anyway, and our single-pass decoder
    // writing straight into the volume's plane; the parser and the general decoder (which cost
    // more than the decoding itself) take whatever it leaves.
    let lossless = matches!(ts.as_str(), "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70");
    if lossless && h.frames_in_file == 1 && h.samples_per_pixel == 1 && h.bits_allocated == 16 && decode_lossless(h, out)? {
        return Ok(());
    }
    let obj = super::open_full(&h.path)?;
    if let Ok(Value::PixelSequence(ps)) = obj.element(dicom_dictionary_std::tags::PIXEL_DATA).map(|e| e.value()) {
        super::codestream::check_fragments(h, ps.fragments())?;
    }
    let decoded = if h.frames_in_file > 1 { obj.decode_pixel_data_frame(h.frame) } else { obj.decode_pixel_data() }.map_err(|e| {
        let msg = super::error_chain(&e);
        let ts_name = super::header::transfer_syntax_name(ts);
        if msg.contains("unsupported") || msg.contains("Unsupported") || msg.contains("not supported") {
            Error::unsupported(format!("cannot decode pixel data in transfer syntax {ts_name}: {msg}"))
                .with_path(&h.path)
                .with_hint("transcode the file to explicit VR little endian (e.g. `gdcmconv --raw` or `dcmdjpeg`) and try again")
        } else {
            Error::bad_input(format!("corrupt pixel data ({ts_name}): {msg}"))
                .with_path(&h.path)
                .with_hint("the file is damaged: re-copy or re-export it")
        }
    })?;
    let mismatch = |n: usize| {
        Error::bad_input(format!("decoded {} pixels, expected {}x{}", n, h.rows, h.columns))
            .with_path(&h.path)
            .with_hint("the pixel data does not match Rows/Columns: the file is damaged")
    };
    // The common case (one sample of 8 or 16 bits, little endian) straight from the decoded
    // bytes: dicom-pixeldata's general conversion costs as much as the JPEG decoding itself.
    let bytes = decoded.bits_allocated().div_ceil(8) as usize;
    let big_endian = h.transfer_syntax == "1.2.840.10008.1.2.2";
    if decoded.samples_per_pixel() == 1 && matches!(bytes, 1 | 2) && !big_endian {
        let raw = decoded.frame_data(0).map_err(|_| mismatch(decoded.data().len() / bytes))?;
        if raw.len() != out.len() * bytes {
            return Err(mismatch(raw.len() / bytes));
        }
        let bits = decoded.bits_stored().clamp(1, 8 * bytes as u16) as u32;
        let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
        if bytes == 2 {
            store_samples(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32), bits, signed, out);
        } else {
            store_samples(raw.iter().map(|&b| b as u32), bits, signed, out);
        }
        return Ok(());
    }
    let opts =
        ConvertOptions::new().with_modality_lut(ModalityLutOption::Override(dicom_pixeldata::Rescale { slope: 1.0, intercept: 0.0 }));
    let values = decoded.to_vec_frame_with_options::<i32>(0, &opts).map_err(|e| {
        Error::bad_input(format!("cannot convert pixel data: {}", super::error_chain(&e)))
            .with_path(&h.path)
            .with_hint("the file is damaged or uses an unusual pixel format")
    })?;
    if values.len() != out.len() {
        return Err(mismatch(values.len()));
    }
    for (d, v) in out.iter_mut().zip(values) {
        *d = T::from_i32(v);
    }
    Ok(())
}

/// The lossless-JPEG fast path; `Ok(false)` when it leaves the slice to the general one.
fn decode_lossless<T: Voxel>(h: &SliceHeader, out: &mut [T]) -> Result<bool> {
    // A slice file is its pixels and a header: anything far larger goes through the parser,
    // which reads by element instead of the whole file at once.
    let pixels = out.len() as u64 * 2;
    match std::fs::metadata(&h.path) {
        Ok(m) if m.len() <= pixels + (16 << 20) => {}
        _ => return Ok(false),
    }
    let bytes = std::fs::read(&h.path).map_err(|e| Error::io("cannot read", &h.path, e))?;
    let Some(fragments) = super::preflight::pixel_fragments(&bytes, &h.path)? else { return Ok(false) };
    let joined: Vec<u8>;
    let stream: &[u8] = if let [one] = fragments.as_slice() {
        &bytes[one.clone()]
    } else {
        joined = fragments.iter().flat_map(|r| &bytes[r.clone()]).copied().collect();
        &joined
    };
    let (rows, cols) = (h.rows as usize, h.columns as usize);
    let (bits, signed) = (h.bits_stored as u32, h.pixel_representation == 1);
    if let Some(plane) = as_u16_plane(out, signed, bits) {
        // 16-bit volumes (nearly all CT): decoded in place, then masked to BitsStored.
        if super::ljpeg::decode(stream, rows, cols, plane).is_err() {
            return Ok(false);
        }
        if bits < 16 {
            // The same value store_samples gives, in the sample's own 16 bits.
            plane.iter_mut().for_each(|v| *v = stored_value(u32::from(*v), bits, signed) as u16);
        }
        return Ok(true);
    }
    let mut samples = vec![0u16; out.len()];
    if super::ljpeg::decode(stream, rows, cols, &mut samples).is_err() {
        return Ok(false);
    }
    store_samples(samples.into_iter().map(u32::from), bits, signed, out);
    Ok(true)
}

/// `out` as raw 16-bit samples when its voxels are 16-bit integers that hold every stored value
/// as its sample's bits once masked and sign-extended (i16 for signed or narrower than 16 bits,
/// u16 for unsigned), else `None`.
fn as_u16_plane<T: Voxel>(out: &mut [T], signed: bool, bits: u32) -> Option<&mut [u16]> {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    let fits = (t == TypeId::of::<i16>() && (signed || bits < 16)) || (t == TypeId::of::<u16>() && !signed);
    if !fits {
        return None;
    }
    // SAFETY: T is i16 or u16: same size and alignment as u16, every bit pattern valid.
    Some(unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), out.len()) })
}

/// Raw samples to stored values: the low `bits` bits, sign-extended when the pixels are signed.
fn store_samples<T: Voxel>(samples: impl Iterator<Item = u32>, bits: u32, signed: bool, out: &mut [T]) {
    for (d, v) in out.iter_mut().zip(samples) {
        *d = T::from_i32(stored_value(v, bits, signed));
    }
}

/// One raw sample's stored value: its low `bits` bits, sign-extended when signed.
#[inline(always)]
fn stored_value(v: u32, bits: u32, signed: bool) -> i32 {
    let shift = 32 - bits.clamp(1, 32);
    if signed { ((v << shift) as i32) >> shift } else { (v << shift >> shift) as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_bits_stored_and_their_sign() {
        let mut out = [0i32; 4];
        // 12-bit signed: 0xFFF is -1, 0x800 is -2048; bits above BitsStored are ignored.
        store_samples([0x0FFFu32, 0x0800, 0x07FF, 0xF001].into_iter(), 12, true, &mut out);
        assert_eq!(out, [-1, -2048, 2047, 1]);
        store_samples([0x0FFFu32, 0xF001, 0xFFFF, 0].into_iter(), 12, false, &mut out);
        assert_eq!(out, [4095, 1, 4095, 0]);
        let mut wide = [0i32; 2];
        store_samples([0xFFFFu32, 0x8000].into_iter(), 16, true, &mut wide);
        assert_eq!(wide, [-1, -32768]);
    }

    #[test]
    fn impossible_pixel_formats_are_refused_before_the_file_is_opened() {
        for (bits_allocated, bits_stored, rows, samples_per_pixel) in
            [(12, 12, 4, 1), (16, 0, 4, 1), (16, 17, 4, 1), (16, 16, 0, 1), (1, 1, 4, 1), (64, 64, 4, 1), (16, 16, 4, 0), (16, 16, 4, 5)]
        {
            let h = SliceHeader {
                path: "/nonexistent/slice.dcm".into(),
                rows,
                columns: 4,
                bits_allocated,
                bits_stored,
                samples_per_pixel,
                ..SliceHeader::default()
            };
            let e = decode_stored(&h).unwrap_err();
            assert!(e.to_string().contains("impossible pixel format"), "{bits_allocated}/{bits_stored}: {e}");
            assert!(e.to_string().contains("slice.dcm"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let h = SliceHeader {
            path: "/nonexistent/slice.dcm".into(),
            rows: 4,
            columns: 4,
            bits_allocated: 16,
            bits_stored: 12,
            samples_per_pixel: 1,
            ..SliceHeader::default()
        };
        let e = decode_stored(&h).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/slice.dcm"), "{e}");
    }
}
