//! One file on its own: `dcm-inspect --pixels` statistics and a single image (or multi-frame
//! file) as a volume for `vol-view slice.dcm`.

use super::decode::decode_stored;
use super::header::open_header;
use crate::error::{Error, Result};
use crate::geometry::{Geometry, cross, normalize, sub};
use crate::meta::{Kind, Meta};
use crate::volume::{Volume, VolumeData};
use ndarray::{Array3, Axis};
use std::path::Path;

/// Size, format and value statistics of one file's pixel data (`dcm-inspect --pixels`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PixelStats {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub samples_per_pixel: u16,
    pub transfer_syntax: String,
    pub stored_min: f64,
    pub stored_max: f64,
    pub stored_mean: f64,
    pub padding_value: Option<f64>,
    pub padding_pixels: usize,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// Real values (rescale applied) over non-padding pixels.
    pub hu_min: f64,
    pub hu_max: f64,
    pub hu_mean: f64,
}

impl PixelStats {
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("rows             {}", self.rows),
            format!("columns          {}", self.columns),
            format!("frames           {}", self.frames),
            format!(
                "bits             allocated {}, stored {}, {}",
                self.bits_allocated,
                self.bits_stored,
                if self.signed { "signed" } else { "unsigned" }
            ),
            format!("samples/pixel    {}", self.samples_per_pixel),
            format!("transfer syntax  {}", self.transfer_syntax),
            format!("stored           min {} max {} mean {:.3}", self.stored_min, self.stored_max, self.stored_mean),
            format!(
                "padding          {}",
                match self.padding_value {
                    Some(v) => format!("{v}: {} pixel(s)", self.padding_pixels),
                    None => "no PixelPaddingValue".into(),
                }
            ),
            format!("rescale          slope {} intercept {}", self.rescale_slope, self.rescale_intercept),
            format!("HU (no padding)  min {} max {} mean {:.3}", self.hu_min, self.hu_max, self.hu_mean),
        ]
    }
}

/// Decode every frame of one file and summarise it.
pub fn pixel_stats(path: &Path) -> Result<PixelStats> {
    let headers = open_header(path)?;
    let h0 = headers.first().ok_or_else(|| Error::bad_input("no image in this file").with_path(path))?.clone();
    if h0.rows == 0 || h0.columns == 0 {
        return Err(Error::bad_input("this DICOM object has no image (Rows/Columns missing)")
            .with_path(path)
            .with_hint("--pixels needs an image file"));
    }
    h0.check_pixels_fit()?;
    let (mut smin, mut smax, mut ssum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    let (mut hmin, mut hmax, mut hsum, mut hn, mut pad) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize, 0usize);
    for h in &headers {
        for v in decode_stored(h)? {
            let v = v as f64;
            smin = smin.min(v);
            smax = smax.max(v);
            ssum += v;
            n += 1;
            if h.padding.as_ref().is_some_and(|p| p.contains(v)) {
                pad += 1;
            } else {
                let r = h.rescale.apply(v);
                hmin = hmin.min(r);
                hmax = hmax.max(r);
                hsum += r;
                hn += 1;
            }
        }
    }
    Ok(PixelStats {
        rows: h0.rows,
        columns: h0.columns,
        frames: h0.frames_in_file,
        bits_allocated: h0.bits_allocated,
        bits_stored: h0.bits_stored,
        signed: h0.pixel_representation == 1,
        samples_per_pixel: h0.samples_per_pixel,
        transfer_syntax: super::header::transfer_syntax_name(&h0.transfer_syntax),
        stored_min: smin,
        stored_max: smax,
        stored_mean: ssum / n.max(1) as f64,
        padding_value: h0.padding.as_ref().map(|p| p.value),
        padding_pixels: pad,
        rescale_slope: h0.rescale.slope,
        rescale_intercept: h0.rescale.intercept,
        hu_min: hmin,
        hu_max: hmax,
        hu_mean: hsum / hn.max(1) as f64,
    })
}

/// One DICOM file as a volume (its frames as slices): stored values with the rescale, for looking
/// at a single image (`vol-view slice.dcm`).
pub fn file_volume(path: &Path) -> Result<Volume> {
    let headers = open_header(path)?;
    let h = headers.first().ok_or_else(|| Error::bad_input("no image in this file").with_path(path))?;
    if h.rows == 0 || h.columns == 0 || h.samples_per_pixel != 1 {
        return Err(Error::unsupported("not a grayscale image").with_path(path).with_hint("vol-view shows CT images and volumes"));
    }
    let (ny, nx) = (h.rows as usize, h.columns as usize);
    h.check_pixels_fit()?;
    crate::io::check_claim(path, "the image as float32", (headers.len() * ny * nx * 4) as u64, None)?;
    let mut data = Array3::<f32>::zeros((headers.len(), ny, nx));
    for (k, fh) in headers.iter().enumerate() {
        let v = decode_stored(fh)?;
        if v.len() != ny * nx {
            return Err(Error::bad_input("pixel data does not match Rows/Columns").with_path(path));
        }
        for (d, s) in data.index_axis_mut(Axis(0), k).iter_mut().zip(v) {
            *d = fh.rescale.apply(s as f64) as f32;
        }
    }
    let o = h.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let (row, col) = (normalize([o[0], o[1], o[2]]), normalize([o[3], o[4], o[5]]));
    let ps = h.pixel_spacing.unwrap_or([1.0, 1.0]);
    let dz = if headers.len() > 1 {
        match (headers[0].position, headers[1].position) {
            (Some(a), Some(b)) => crate::geometry::norm(sub(b, a)).max(1e-3),
            _ => h.slice_thickness.unwrap_or(1.0),
        }
    } else {
        h.slice_thickness.unwrap_or(1.0)
    };
    let geometry =
        Geometry { spacing: [ps[1], ps[0], dz], origin: h.position.unwrap_or([0.0; 3]), direction: [row, col, normalize(cross(row, col))] };
    let meta =
        Meta { kind: if h.modality.as_deref() == Some("CT") { Kind::Hu } else { Kind::Unknown }, window: h.window, ..Meta::default() };
    Ok(Volume { data: VolumeData::F32(data), geometry, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_an_image_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.dcm");
        std::fs::write(&p, b"not dicom at all").unwrap();
        for e in [pixel_stats(&p).unwrap_err(), file_volume(&p).unwrap_err()] {
            assert!(e.to_string().contains("junk.dcm"), "{e}");
        }
    }

    #[test]
    fn pixel_stats_lines_name_each_fact() {
        let s = PixelStats {
            rows: 2,
            columns: 3,
            frames: 1,
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
            samples_per_pixel: 1,
            transfer_syntax: "Explicit VR Little Endian".into(),
            stored_min: 0.0,
            stored_max: 4095.0,
            stored_mean: 1000.0,
            padding_value: Some(-2000.0),
            padding_pixels: 7,
            rescale_slope: 1.0,
            rescale_intercept: -1024.0,
            hu_min: -1024.0,
            hu_max: 3071.0,
            hu_mean: -24.0,
        };
        let text = s.lines().join("\n");
        for want in ["rows             2", "allocated 16, stored 12, unsigned", "-2000: 7 pixel(s)", "intercept -1024", "mean -24.000"] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
    }
}
