//! A software renderer for mesh previews: orthographic, z-buffered, Lambert-shaded, PNG out.

use super::Mesh;

/// Which side the camera looks from (patient directions, LPS vertices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Anterior,
    Posterior,
    Left,
    Right,
    Superior,
    Inferior,
}

impl View {
    pub fn parse(s: &str) -> Option<View> {
        Some(match s {
            "anterior" | "a" => View::Anterior,
            "posterior" | "p" => View::Posterior,
            "left" | "l" => View::Left,
            "right" | "r" => View::Right,
            "superior" | "s" => View::Superior,
            "inferior" | "i" => View::Inferior,
            _ => return None,
        })
    }
    /// (screen-right, screen-up, towards-camera) unit vectors in LPS.
    fn basis(self) -> ([f64; 3], [f64; 3], [f64; 3]) {
        match self {
            // Facing the patient: their left is on our right, head up, camera at anterior (-y).
            View::Anterior => ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]),
            View::Posterior => ([-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
            View::Left => ([0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]),
            View::Right => ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]),
            View::Superior => ([1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]),
            View::Inferior => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
        }
    }
}

/// Render to an RGB image of at most `size` pixels on the long side. Returns (width, height, rgb).
pub fn render(mesh: &Mesh, view: View, size: usize, color: [f32; 3]) -> (usize, usize, Vec<u8>) {
    rasterize(mesh, view, size, color, true)
}

/// `cull`: skip triangles whose bounding box holds no pixel centre before shading them (the same
/// picture, tested against `cull = false`, which visits every pixel of every bounding box).
fn rasterize(mesh: &Mesh, view: View, size: usize, color: [f32; 3], cull: bool) -> (usize, usize, Vec<u8>) {
    let (r, u, f) = view.basis();
    let dot = |a: [f32; 3], b: [f64; 3]| a[0] as f64 * b[0] + a[1] as f64 * b[1] + a[2] as f64 * b[2];
    let proj: Vec<[f64; 3]> = mesh.vertices.iter().map(|&v| [dot(v, r), dot(v, u), dot(v, f)]).collect();
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in &proj {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    if !lo[0].is_finite() {
        return (size, size, vec![255; size * size * 3]);
    }
    let ext = [(hi[0] - lo[0]).max(1e-6), (hi[1] - lo[1]).max(1e-6)];
    let margin = 0.04;
    let scale = (size as f64 * (1.0 - 2.0 * margin)) / ext[0].max(ext[1]);
    let (w, h) =
        (((ext[0] * scale) / (1.0 - 2.0 * margin)).ceil() as usize + 1, ((ext[1] * scale) / (1.0 - 2.0 * margin)).ceil() as usize + 1);
    let (ox, oy) = (w as f64 * margin, h as f64 * margin);
    let screen: Vec<[f64; 3]> = proj.iter().map(|p| [(p[0] - lo[0]) * scale + ox, (hi[1] - p[1]) * scale + oy, p[2]]).collect();
    let mut depth = vec![f64::NEG_INFINITY; w * h];
    let mut shade = vec![0f32; w * h];
    let light = {
        let l: [f64; 3] = [0.3, 0.5, 1.0];
        let n: f64 = (l[0] * l[0] + l[1] * l[1] + l[2] * l[2]).sqrt();
        [l[0] / n, l[1] / n, l[2] / n]
    };
    for t in &mesh.triangles {
        let (a, b, c) = (screen[t[0] as usize], screen[t[1] as usize], screen[t[2] as usize]);
        // Only pixel centres (px + 0.5) inside the bounding box can be inside the triangle. At
        // 1 mm a bone mesh has about two triangles per pixel, most covering no centre at all:
        // skip those before any shading work.
        let centre = if cull { 0.5 } else { 0.0 };
        let (lo_x, hi_x) = (a[0].min(b[0]).min(c[0]) - centre, a[0].max(b[0]).max(c[0]) - centre);
        let (lo_y, hi_y) = (a[1].min(b[1]).min(c[1]) - centre, a[1].max(b[1]).max(c[1]) - centre);
        let (x0, x1, y0, y1) = if cull {
            (lo_x.ceil(), hi_x.floor(), lo_y.ceil(), hi_y.floor())
        } else {
            (lo_x.floor(), hi_x.ceil(), lo_y.floor(), hi_y.ceil())
        };
        let (x0, x1) = (x0.max(0.0), x1.min((w - 1) as f64));
        let (y0, y1) = (y0.max(0.0), y1.min((h - 1) as f64));
        if x1 < x0 || y1 < y0 {
            continue;
        }
        let (x0, x1, y0, y1) = (x0 as usize, x1 as usize, y0 as usize, y1 as usize);
        let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        // Normal in view space (x right, y up, z towards camera): from the projected coordinates.
        let (pa, pb, pc) = (proj[t[0] as usize], proj[t[1] as usize], proj[t[2] as usize]);
        let e1 = [pb[0] - pa[0], pb[1] - pa[1], pb[2] - pa[2]];
        let e2 = [pc[0] - pa[0], pc[1] - pa[1], pc[2] - pa[2]];
        let n = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
        let nl = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if nl == 0.0 {
            continue;
        }
        let lambert = ((n[0] * light[0] + n[1] * light[1] + n[2] * light[2]) / nl).abs();
        let s = (0.15 + 0.85 * lambert) as f32;
        for py in y0..=y1 {
            for px in x0..=x1 {
                let (x, y) = (px as f64 + 0.5, py as f64 + 0.5);
                let w0 = ((b[0] - x) * (c[1] - y) - (b[1] - y) * (c[0] - x)) / area;
                let w1 = ((c[0] - x) * (a[1] - y) - (c[1] - y) * (a[0] - x)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let z = w0 * a[2] + w1 * b[2] + w2 * c[2];
                let i = py * w + px;
                if z > depth[i] {
                    depth[i] = z;
                    shade[i] = s;
                }
            }
        }
    }
    let mut rgb = vec![255u8; w * h * 3];
    for i in 0..w * h {
        if depth[i] > f64::NEG_INFINITY {
            for k in 0..3 {
                rgb[3 * i + k] = (255.0 * (color[k] * shade[i]).clamp(0.0, 1.0)) as u8;
            }
        }
    }
    (w, h, rgb)
}

/// Encode RGB pixels as PNG.
pub fn png_bytes(w: usize, h: usize, rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(rgb)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Culling triangles that cover no pixel centre changes nothing in the picture.
        #[test]
        fn culling_keeps_the_picture(coords in prop::collection::vec(-20.0f32..20.0, 9..90), size in 8usize..48) {
            let vertices: Vec<[f32; 3]> = coords.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
            let n = vertices.len() as u32;
            let triangles: Vec<[u32; 3]> = (0..n).map(|i| [i, (i * 7 + 1) % n, (i * 13 + 2) % n]).collect();
            let mesh = Mesh { vertices, triangles };
            for view in [View::Anterior, View::Left, View::Superior] {
                prop_assert_eq!(rasterize(&mesh, view, size, [0.9, 0.8, 0.7], true), rasterize(&mesh, view, size, [0.9, 0.8, 0.7], false));
            }
        }
    }
}
