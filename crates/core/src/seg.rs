//! Lung segmentation: the tutorial's algorithm voxel for voxel, and a robust default that does
//! not fail where it does (table splitting the outside air, trachea, gas under the diaphragm,
//! nodules on the pleura).

use crate::error::{Error, Result};
use crate::geometry::xyz_from_zyx;
use crate::meta::{Kind, Rescale};
use crate::morph::{
    Box3, Components, Connectivity, Runs, close_mm, coarse_factors, coarsen, count_nonzero, dilate_mm, erode_cross, erode_mm,
    fill_holes_2d, fill_holes_2d_by, fill_holes_3d, in_box, label2d, run_end,
};
use crate::volume::{Volume, VolumeData, Voxel};
use ndarray::{Array3, ArrayView3, Axis, Zip};
use rayon::prelude::*;
use serde::Serialize;

/// Radius (mm) of the opening that separates the lungs from gas below the diaphragm.
const OPEN_MM: f64 = 7.0;

/// The tutorial's threshold (HU).
pub const THRESHOLD_HU: f32 = -320.0;

/// `largest_label_volume`: the most frequent label other than `bg` (ties: the smallest label).
fn largest_label(counts: &[u64], bg: Option<usize>) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (l, &c) in counts.iter().enumerate() {
        if Some(l) == bg || c == 0 {
            continue;
        }
        if best.is_none_or(|(_, bc)| c > bc) {
            best = Some((l, c));
        }
    }
    best.map(|b| b.0)
}

/// `segment_lung_mask(image, fill_lung_structures)` from the tutorial, exactly (skimage's full
/// connectivity in 3-D and 2-D). Input: `image > -320` `[z, y, x]` (made by `above`), reused as
/// the working array.
pub fn tutorial(dense: Array3<u8>, fill: bool) -> Array3<u8> {
    // binary_image = (image > -320) + 1: 1 = air, 2 = dense.
    let mut b = dense;
    b.par_mapv_inplace(|v| v + 1);
    // measure.label(binary_image): components of equal value (background 0 is absent); the air
    // component holding voxel [0, 0, 0] is the outside and becomes dense.
    if b[[0, 0, 0]] == 1 {
        let air = Components::new(&b.view(), Connectivity::TwentySix, |v| v == 1);
        let outside = air.label_at(0, 0, 0);
        air.paint_into(&mut b.view_mut(), |l| (Some(l) == outside).then_some(2));
    }
    if fill {
        b.axis_iter_mut(Axis(0)).into_par_iter().for_each(|s| {
            // axial_slice - 1: 0 = air, 1 = dense; label (8-conn), keep the largest dense part.
            let mut s = s.insert_axis(Axis(0));
            let dense = Components::new(&s.view(), Connectivity::Eighteen, |v| v == 2);
            if let Some(lmax) = largest_label(&dense.sizes(), Some(0)) {
                dense.paint_into(&mut s, |l| (l as usize != lmax).then_some(1));
            }
        });
    }
    // binary -= 1; binary = 1 - binary: lungs (air) are now 1; keep the largest.
    let lungs = Components::new(&b.view(), Connectivity::TwentySix, |v| v == 1);
    match largest_label(&lungs.sizes(), Some(0)) {
        Some(lmax) => lungs.paint(0u8, |l| (l as usize == lmax).then_some(1)),
        None => Array3::zeros(b.raw_dim()),
    }
}

#[derive(Debug, Clone)]
pub struct LungOptions {
    /// Remove trachea and main bronchi.
    pub remove_airways: bool,
    /// Closing radius (mm) per lung before filling, to include nodules on the pleura.
    pub close_mm: f64,
    /// Final dilation (mm), the tutorial's advice; 0 = none.
    pub dilate_mm: f64,
}

impl Default for LungOptions {
    fn default() -> Self {
        LungOptions { remove_airways: true, close_mm: 10.0, dilate_mm: 0.0 }
    }
}

/// Quality numbers for a lung mask.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LungQc {
    pub right_ml: f64,
    pub left_ml: f64,
    pub total_ml: f64,
    /// Lung volume / body volume.
    pub body_fraction: f64,
    /// Mask voxels on the sides of the field of view (air around the patient): 0 for the robust
    /// method by construction; the tutorial's method can return outside air.
    pub fov_edge_voxels: u64,
    /// Air components (inside the body) considered.
    pub air_components: usize,
    pub lungs_found: usize,
    pub mean_hu: f64,
    /// LPS bounding box of the mask (mm): [min, max] per axis.
    pub bbox_lps_mm: Option<[[f64; 2]; 3]>,
    pub airway_voxels_removed: u64,
    /// Pieces of lung-density air (under a quarter of it at or below -950 HU) that the opening
    /// had cut off a lung and were joined back to it (mL).
    pub rejoined_ml: f64,
    /// Air touching the lungs that was left out as gas (a quarter or more of it at or below
    /// -950 HU), such as the stomach's under the diaphragm (mL).
    pub adjacent_air_left_out_ml: f64,
    /// Tissue in dents of the lungs' costal surface filled as enclosed lesions (mL).
    pub costal_dents_filled_ml: f64,
    pub fallback: Option<String>,
    pub warnings: Vec<String>,
}

/// Result of the robust method: labels (1 = right, 2 = left; both 1 when they touch) and QC.
#[derive(Debug)]
pub struct LungResult {
    pub labels: Array3<u8>,
    pub qc: LungQc,
}

/// The robust default: body first, air inside it, airways tracked and removed, each lung opened
/// away from gas below the diaphragm, closed and filled.
pub fn robust(vol: &Volume, o: &LungOptions) -> Result<LungResult> {
    // The steps below read array axis 0 as head-feet and axis 1 as front-back: a sagittal or
    // coronal array is segmented as an axial copy and its labels put back in its own order.
    let order = vol.geometry.anatomical_array_axes();
    if order != [0, 1, 2] {
        let mut r = robust(&vol.permuted(order), o)?;
        let mut back = [0; 3];
        for (k, &a) in order.iter().enumerate() {
            back[a] = k;
        }
        r.labels = r.labels.permuted_axes(back).as_standard_layout().into_owned();
        return Ok(r);
    }
    let sp = vol.geometry.spacing;
    let first = robust_once(vol, o, 0.0)?;
    if implausibility(&first.qc).is_none() {
        return Ok(first);
    }
    // The tutorial's fallback: a closing of a few millimetres, then try again.
    let why = implausibility(&first.qc).unwrap_or_default();
    let mut second = robust_once(vol, o, 3.0 * sp.iter().cloned().fold(1.0, f64::max).min(3.0))?;
    second.qc.fallback = Some(format!("first pass implausible ({why}); retried after closing the body mask"));
    if let Some(w) = implausibility(&second.qc) {
        second.qc.warnings.push(format!("result still implausible: {w}"));
    }
    Ok(second)
}

/// Why a result does not look like two lungs, if it does not.
fn implausibility(qc: &LungQc) -> Option<String> {
    if qc.lungs_found == 0 {
        return Some("no lungs".into());
    }
    if qc.total_ml < 200.0 {
        return Some(format!("only {:.0} mL of lung", qc.total_ml));
    }
    if qc.left_ml > 0.0 && qc.right_ml > 0.0 && (qc.left_ml / qc.right_ml > 5.0 || qc.right_ml / qc.left_ml > 5.0) {
        return Some(format!("one lung far larger than the other ({:.0} vs {:.0} mL)", qc.right_ml, qc.left_ml));
    }
    None
}

fn robust_once(vol: &Volume, o: &LungOptions, body_close: f64) -> Result<LungResult> {
    let sp = vol.geometry.spacing;
    let voxel_ml = vol.voxel_volume_mm3() / 1000.0;
    let mut qc = LungQc::default();
    // Lung-seg's peak memory: one byte per voxel says what is known of it (dense, thin, body),
    // then becomes the air inside the body, then the grown labels; the body is kept as runs.
    let mut flags = dense_voxels(vol);
    let shape = flags.raw_dim();
    let body = body_mask(&mut flags, body_close, sp)?;
    let body_voxels = body.count() as f64;
    let mut air = flags;
    air.par_mapv_inplace(|v| u8::from(v == BODY));
    // Airways: track the trachea down from the top slice and cut it with the main bronchi.
    if o.remove_airways {
        let head_last = vol.geometry.direction[2][2] >= 0.0;
        let tree = track_airways(&mut air, &body.mean_x_per_slice(), sp, head_last);
        qc.airway_voxels_removed = cut_around(&mut air, &tree);
    }
    let (grown, n_seeds) = seed_and_grow(air, sp, &mut qc);
    let lungs = pick_lungs(grown.counts(), n_seeds, voxel_ml);
    if lungs.is_empty() {
        qc.lungs_found = 0;
        return Ok(LungResult { labels: Array3::zeros(shape), qc });
    }
    // Said only when there are lungs to say it of.
    if o.remove_airways && qc.airway_voxels_removed == 0 {
        qc.warnings.push(
            "the trachea was not found (no tube of air down the mid-line into the lungs): the airways stay inside the lung labels".into(),
        );
    }
    // Each lung is a set of labels of `source`; the full-size 0/1 copies are made only to split.
    let mut source = grown;
    let mut ids: Vec<Vec<u32>> = lungs.iter().map(|&l| vec![l as u32]).collect();
    let mut known = rejoin_lung_pieces(vol, &source, &mut ids, &mut qc);
    // One piece: the lungs touch (or a bronchus still joins them). Erode until it splits in two.
    if ids.len() == 1 {
        let [nz, ny, nx] = [shape[0], shape[1], shape[2]];
        let piece = source.mask(&ids[0], [(0, nz), (0, ny), (0, nx)]);
        if let Some(seeds) = split_in_two(&piece, 12) {
            source = Seeded::Few(grow_from_blocks(&seeds.view(), [1, 1, 1], &piece));
            ids = vec![vec![1], vec![2]];
            known.clear();
            qc.warnings.push("the lungs touch: separated by erosion".into());
        }
    }
    let (mut labels, mut region) = close_and_fill(vol, source, &ids, &known, &body, o, &mut qc);
    if o.dilate_mm > 0.0 {
        dilate_labels_mm(&mut labels, o.dilate_mm, sp);
        let reach = crate::morph::margin_vox(o.dilate_mm, sp);
        let dims = [shape[0], shape[1], shape[2]];
        region = region.map(|r| crate::morph::grow_box(r.map(|r| r.0), r.map(|r| r.1 - 1), reach, dims));
    }
    qc.lungs_found = ids.len();
    lung_qc(vol, &labels, region.unwrap_or([(0, 0); 3]), body_voxels, &mut qc);
    Ok(LungResult { labels, qc })
}

/// Dense runs front to back shorter than this (mm) are a table's skin, not the body's wall.
const THIN_MM: f64 = 4.0;
/// How far (mm) the body grows back into such thin runs: a thin stretch of its own wall.
const THIN_REGROW_MM: f64 = 10.0;

/// A voxel's flag in lung-seg's working bytes: part of the body. Below it, the threshold's 1
/// (denser than -320 HU) or `mark_thin_runs`' 2 (dense, in a thin run); so a byte equal to
/// `BODY` is air inside the body.
const BODY: u8 = 4;

/// The body: the largest component denser than -320 HU, closed by `body_close` mm when asked,
/// holes filled per slice; flagged `BODY` in `flags` (1 where dense, else 0) and returned as
/// runs. The skins of a carbon-fibre table join the body where the patient lies on it and
/// enclose the table's air-like core, which would be air inside the body, larger than a lung.
/// So dense runs from front to back thinner than `THIN_MM` are left out when the body is picked
/// (marked 2: still not air), then the body grows back into them by `THIN_REGROW_MM`: a thin
/// stretch of its own wall comes back, the table's far skin (a table's depth away) does not.
/// Both lengths are in mm: the result does not depend on the grid.
fn body_mask(flags: &mut Array3<u8>, body_close: f64, sp: [f64; 3]) -> Result<Runs> {
    let thin = mark_thin_runs(flags, (THIN_MM / sp[1]).ceil() as usize);
    let dense_parts = Components::new(&flags.view(), Connectivity::Six, |v| v == 1);
    let Some(body_label) = largest_label(&dense_parts.sizes(), Some(0)) else {
        return Err(Error::empty("no body found: nothing denser than -320 HU").with_hint("is the input in HU? run hu-convert first"));
    };
    dense_parts.update_into(&mut flags.view_mut(), |l| l as usize == body_label, |v| *v |= BODY);
    drop(dense_parts);
    regrow_into_thin(flags, &thin, (THIN_REGROW_MM / sp[0].min(sp[1])).ceil() as usize);
    if body_close > 0.0 {
        // The fallback's closing works on a mask of its own (a retry: memory is not the point).
        let closed = close_mm(&flags.mapv(|v| u8::from(v & BODY != 0)), body_close, sp);
        Zip::from(&mut *flags).and(&closed).par_for_each(|f, &c| *f = (*f & !BODY) | (c * BODY));
    }
    fill_holes_2d_by(flags, usize::MAX, |v| v & BODY != 0, |v| *v |= BODY);
    Ok(Runs::new(&flags.view(), |v| v & BODY != 0))
}

/// Flag `BODY` through the thin dense voxels (2 in `flags`, flat indices `thin`), `steps`
/// 6-neighbour steps from where they touch the body.
fn regrow_into_thin(flags: &mut Array3<u8>, thin: &[usize], steps: usize) {
    let dims = flags.dim();
    let f = flags.as_slice_mut().expect("standard layout");
    let mut front: Vec<usize> = thin
        .iter()
        .copied()
        .filter(|&i| {
            let mut touches = false;
            crate::morph::face_neighbours(i, dims, |j| touches |= f[j] & BODY != 0);
            touches
        })
        .collect();
    for _ in 0..steps {
        for &i in &front {
            f[i] |= BODY;
        }
        let mut next = Vec::new();
        for &i in &front {
            crate::morph::face_neighbours(i, dims, |j| {
                if f[j] == 2 {
                    f[j] |= BODY;
                    next.push(j);
                }
            });
        }
        if next.is_empty() {
            break;
        }
        front = next;
    }
}

/// Mark 2 the runs of 1s along array axis 1 (front to back) shorter than `min_run` voxels;
/// returns their flat indices.
fn mark_thin_runs(dense: &mut Array3<u8>, min_run: usize) -> Vec<usize> {
    let (_, ny, nx) = dense.dim();
    let plane_len = ny * nx;
    // Run lengths saturate at `min_run`: only shorter ones matter, and they fit a byte.
    let cap = min_run.min(255) as u8;
    let data = dense.as_slice_mut().expect("standard layout");
    let per_plane: Vec<Vec<usize>> = data
        .par_chunks_mut(plane_len)
        .enumerate()
        .map(|(z, plane)| {
            let mut thin = Vec::new();
            // Length of the run of 1s ending at the previous row, per column; and per column
            // whether a short run ends at this row (row by row, so both loops vectorize).
            let mut run = vec![0u8; nx];
            let mut ends = vec![0u8; nx];
            let empty = vec![0u8; nx];
            for y in 0..=ny {
                let row = if y < ny { &plane[y * nx..(y + 1) * nx] } else { &empty[..] };
                let mut any = 0u8;
                for ((r, e), &v) in run.iter_mut().zip(ends.iter_mut()).zip(row) {
                    // Branch-free (bitwise, not short-circuit) so that it vectorizes.
                    let here = u8::from(v != 0);
                    *e = (here ^ 1) & u8::from(*r != 0) & u8::from(*r < cap);
                    any |= *e;
                    *r = r.saturating_add(1).min(cap) & here.wrapping_neg();
                }
                if any == 0 {
                    continue;
                }
                for x in (0..nx).filter(|&x| ends[x] != 0) {
                    let mut yy = y;
                    while yy > 0 && plane[(yy - 1) * nx + x] == 1 {
                        yy -= 1;
                        plane[yy * nx + x] = 2;
                        thin.push(z * plane_len + yy * nx + x);
                    }
                }
            }
            thin
        })
        .collect();
    per_plane.concat()
}

/// Cut thin bridges (gas under the diaphragm seen through partial volume, leaks): seeds from the
/// air eroded by a ball, grown back through the air at full resolution, all at once, so each air
/// voxel joins the seed that reaches it first and a neck between lung and stomach splits. The
/// erosion only picks seeds, so it runs on the ~2 mm grid (blocks wholly air), 8x fewer voxels
/// at 1 mm. Returns the grown labels and the number of seeds.
fn seed_and_grow(air: Array3<u8>, sp: [f64; 3], qc: &mut LungQc) -> (Seeded, usize) {
    let factors = coarse_factors(sp);
    let coarse_sp: [f64; 3] = std::array::from_fn(|a| sp[a] * factors[a] as f64);
    // Blocks wholly air, and distances between block centres, each stand about half a block off
    // the voxel-level erosion: the ball is smaller by the block's excess over a voxel. (Checked on
    // the chest series at 1 mm and at its native 0.7 x 0.7 x 1.25 mm: half that lost 27 mL of
    // denser lung at native resolution; this keeps the seeds of the voxel-level erosion.)
    let shrink = (0..3).map(|a| coarse_sp[a] - sp[a]).fold(0.0, f64::max);
    let eroded = erode_mm(&coarsen(&air.view(), factors), OPEN_MM - shrink, coarse_sp);
    let pieces = Components::new(&eroded.view(), Connectivity::Six, |v| v != 0);
    drop(eroded);
    qc.air_components = pieces.n;
    // Every eroded piece of at least 1 mL is a seed.
    let min_seed = (1000.0 / (coarse_sp.iter().product::<f64>())).ceil() as u64;
    let mut seed_id = vec![0u16; pieces.n + 1];
    let mut n_seeds = 0usize;
    for (l, &size) in pieces.sizes().iter().enumerate().skip(1) {
        if size >= min_seed && n_seeds < (u16::OPEN - 1) as usize {
            n_seeds += 1;
            seed_id[l] = n_seeds as u16;
        }
    }
    let seeds = pieces.paint(0u16, |l| Some(seed_id[l as usize]));
    drop(pieces);
    // Labels as bytes when they fit: grown in the air's own memory, and half the memory every
    // later pass over them reads.
    let grown = if n_seeds < u8::OPEN as usize {
        Seeded::Few(grow_in_place(seeds, factors, air))
    } else {
        Seeded::Many(grow_freeing(seeds, factors, air))
    };
    (grown, n_seeds)
}

/// The lungs among the grown pieces: the two largest of at least 50 mL, the second only when it
/// is at least an eighth of the first (a smaller one is gas or bowel: the lungs touch).
fn pick_lungs(counts: &[u64], n_seeds: usize, voxel_ml: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (1..=n_seeds).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]));
    let min_voxels = (50.0 / voxel_ml) as u64;
    let mut lungs: Vec<usize> = order.iter().copied().take(2).filter(|&l| counts[l] >= min_voxels).collect();
    if lungs.len() == 2 && counts[lungs[1]] * 8 < counts[lungs[0]] {
        lungs.truncate(1);
    }
    lungs
}

/// Air at or below this (HU) is gas, or emphysema.
const GAS_HU: f64 = -950.0;
/// A piece with less than this share of its voxels at or below `GAS_HU` holds lung tissue:
/// normal lung has a few percent there, gas under the diaphragm most (the stomach of the chest
/// series 57%, with its partial volume and contents).
const LUNG_MAX_GAS_SHARE: f64 = 0.25;

/// The opening that seeds the lungs can cut a part of a lung off through a narrow neck (a lower
/// lobe behind a thick fissure, denser lung joined along a thin band): that part grows as a piece
/// of its own and would be dropped. A piece that touches a lung (or a piece joined to one) and
/// holds lung tissue, not gas, joins that lung; gas touching the lungs (the stomach's, bowel's,
/// through the diaphragm's partial volume) stays out, and is counted. A gas piece touching a
/// lung above the lung's middle cannot be below the diaphragm: warned about, as what was left
/// out may be lung (emphysema, a bulla).
fn rejoin_lung_pieces(vol: &Volume, source: &Seeded, lungs: &mut [Vec<u32>], qc: &mut LungQc) -> Vec<(u32, crate::morph::LabelBox)> {
    let voxel_ml = vol.voxel_volume_mm3() / 1000.0;
    let owner = |lungs: &[Vec<u32>], l: u32| lungs.iter().position(|g| g.contains(&l));
    let neighbours = |x: u32| {
        source.contacts().iter().filter_map(move |&((a, b), n)| {
            if a == x {
                Some((b, n))
            } else if b == x {
                Some((a, n))
            } else {
                None
            }
        })
    };
    // Every piece the lungs reach through touching pieces, with its box: one pass over the
    // labels for all of them, the lungs' included (close_and_fill reuses them).
    let mut reach: Vec<u32> = lungs.concat();
    let mut i = 0;
    while i < reach.len() {
        for (y, _) in neighbours(reach[i]) {
            if !reach.contains(&y) {
                reach.push(y);
            }
        }
        i += 1;
    }
    let boxes: Vec<(u32, crate::morph::LabelBox)> = reach.iter().copied().zip(source.boxes(&reach)).collect();
    let box_of = |id: u32| boxes.iter().find(|(l, _)| *l == id).map(|(_, b)| *b);
    let rescale = vol.meta.rescale.unwrap_or(Rescale::IDENTITY);
    let hu_at = |p: [usize; 3]| crate::with_data!(&vol.data, a => rescale.apply(a[p].to_f64()));
    // Pieces touching a lung, nearest first; gas pieces left out, each with the lung it touches.
    let mut seen: Vec<u32> = lungs.concat();
    let mut frontier: Vec<u32> = lungs.concat();
    let mut gas: Vec<(usize, crate::morph::LabelBox)> = Vec::new();
    while !frontier.is_empty() {
        let mut touching: Vec<u32> = Vec::new();
        for &x in &frontier {
            for (y, _) in neighbours(x) {
                if !seen.contains(&y) && !touching.contains(&y) {
                    touching.push(y);
                }
            }
        }
        frontier.clear();
        for piece in touching {
            seen.push(piece);
            let Some(b) = box_of(piece).filter(|b| b.count > 0) else { continue };
            let bx: Box3 = std::array::from_fn(|a| (b.lo_zyx[a], b.hi_zyx[a] + 1));
            // The lung it touches most, among lungs and the pieces already joined to them.
            let Some((k, _)) = neighbours(piece).filter_map(|(other, n)| owner(lungs, other).map(|k| (k, n))).max_by_key(|&(_, n)| n)
            else {
                continue;
            };
            let gas_share = source.mean_over(piece, bx, &|p| f64::from(u8::from(hu_at(p) <= GAS_HU)));
            if gas_share < LUNG_MAX_GAS_SHARE {
                lungs[k].push(piece);
                qc.rejoined_ml += b.count as f64 * voxel_ml;
                frontier.push(piece);
            } else {
                gas.push((k, b));
            }
        }
    }
    // Gas left out: where it lies along head-feet against the lung it touches.
    for (k, b) in gas {
        qc.adjacent_air_left_out_ml += b.count as f64 * voxel_ml;
        let (mut n, mut sum) = (0u64, [0.0f64; 3]);
        for lb in lungs[k].iter().filter_map(|&id| box_of(id)) {
            n += lb.count;
            for a in 0..3 {
                sum[a] += lb.index_sum_xyz[a];
            }
        }
        let lung_z = vol.geometry.index_to_world(sum.map(|v| v / n.max(1) as f64))[2];
        let piece_z = vol.geometry.index_to_world(b.index_sum_xyz.map(|v| v / b.count as f64))[2];
        let ml = b.count as f64 * voxel_ml;
        // LPS z grows towards the head.
        if ml >= 20.0 && piece_z > lung_z {
            qc.warnings.push(format!(
                "{ml:.0} mL of air touching a lung was left out as gas (mostly at or below {GAS_HU} HU) although it lies above the lung's middle: emphysema or a bulla? check it"
            ));
        }
    }
    boxes
}

/// Each lung (a set of grown labels) closed (inside the body), filled, its costal dents filled,
/// then pasted as label 1 (right) or 2 (left); also the union of the lungs' boxes, where QC looks.
fn close_and_fill(
    vol: &Volume,
    source: Seeded,
    ids: &[Vec<u32>],
    known: &[(u32, crate::morph::LabelBox)],
    body: &Runs,
    o: &LungOptions,
    qc: &mut LungQc,
) -> (Array3<u8>, Option<Box3>) {
    let sp = vol.geometry.spacing;
    let dims = vol.shape();
    let shape = (dims[0], dims[1], dims[2]);
    let flat: Vec<u32> = ids.concat();
    // The pieces' boxes: those already measured, or one pass for all.
    let measured: Option<Vec<crate::morph::LabelBox>> =
        flat.iter().map(|id| known.iter().find(|(l, _)| l == id).map(|(_, b)| *b)).collect();
    let piece_boxes = measured.unwrap_or_else(|| source.boxes(&flat));
    // One box per lung: the union of its pieces'.
    let boxes: Vec<crate::morph::LabelBox> = ids
        .iter()
        .map(|g| {
            let mut u = crate::morph::LabelBox { count: 0, index_sum_xyz: [0.0; 3], lo_zyx: [usize::MAX; 3], hi_zyx: [0; 3] };
            for (id, b) in flat.iter().zip(&piece_boxes) {
                if g.contains(id) && b.count > 0 {
                    u.count += b.count;
                    for a in 0..3 {
                        u.index_sum_xyz[a] += b.index_sum_xyz[a];
                        u.lo_zyx[a] = u.lo_zyx[a].min(b.lo_zyx[a]);
                        u.hi_zyx[a] = u.hi_zyx[a].max(b.hi_zyx[a]);
                    }
                }
            }
            u
        })
        .collect();
    // Patient's right is -x in LPS: the lung whose centroid (the affine map of the index
    // centroid) has the smaller x is the right one.
    let centroid_x = |b: &crate::morph::LabelBox| vol.geometry.index_to_world(b.index_sum_xyz.map(|v| v / b.count.max(1) as f64))[0];
    let mut order: Vec<usize> = (0..ids.len()).collect();
    if ids.len() == 2 && centroid_x(&boxes[0]) > centroid_x(&boxes[1]) {
        order.swap(0, 1);
    }
    // The chest's axis in each axial plane, (y, x) in voxels: the lungs' joint centroid.
    let total: u64 = boxes.iter().map(|b| b.count).sum();
    let axis_yx = [1, 0].map(|a| boxes.iter().map(|b| b.index_sum_xyz[a]).sum::<f64>() / total.max(1) as f64);
    // Work inside each lung's bounding box: a closing by a ball never leaves it (a ball just
    // beyond a face covers any voxel past it), close_mm pads it for its own work, and holes open
    // to a face would be open to a wider box's margin too. Each lung is cut to its box first, so
    // the grown labels are freed before the output is made (lung-seg's peak memory).
    let lungs: Vec<(usize, Box3, Array3<u8>)> = order
        .iter()
        .enumerate()
        .filter(|&(_, &k)| boxes[k].count > 0)
        .map(|(i, &k)| {
            let b = crate::morph::grow_box(boxes[k].lo_zyx, boxes[k].hi_zyx, [0; 3], dims);
            (i, b, source.mask(&ids[k], b))
        })
        .collect();
    drop(source);
    let mut region: Option<Box3> = None;
    // The lungs are closed and filled one after the other (each step is parallel inside; side by
    // side they only raised the peak memory), then pasted in order into the output, made last:
    // it is written over the lungs' whole height, and the closings' arrays are gone by then.
    let mut closed = Vec::with_capacity(lungs.len());
    for (i, b, mut m) in lungs {
        let body = body.crop(b);
        region = Some(region.map_or(b, |r| std::array::from_fn(|a| (r[a].0.min(b[a].0), r[a].1.max(b[a].1)))));
        if o.close_mm > 0.0 {
            m = close_mm(&m, o.close_mm, sp);
            // Closing may reach outside the body at the chest wall: keep it inside.
            Zip::from(&mut m).and(&body).par_for_each(|m, &b| *m &= b);
        }
        // Holes up to 20 cm^2 per slice: vessels and nodules, not the dome the lung wraps around.
        fill_holes_2d(&mut m, (2000.0 / (sp[0] * sp[1])) as usize);
        fill_holes_3d(&mut m);
        let centre = [axis_yx[0] - b[1].0 as f64, axis_yx[1] - b[2].0 as f64];
        let dents = fill_costal_dents(&mut m, &body.view(), centre, [sp[1], sp[0]]);
        qc.costal_dents_filled_ml += dents as f64 * vol.voxel_volume_mm3() / 1000.0;
        closed.push((i, b, m));
    }
    let mut labels = Array3::<u8>::zeros(shape);
    for (i, b, m) in closed {
        let lab = if ids.len() == 2 { i as u8 + 1 } else { 1 };
        Zip::from(&mut labels.slice_mut(in_box(b))).and(&m).par_for_each(|d, &v| {
            if v != 0 && *d == 0 {
                *d = lab;
            }
        });
    }
    (labels, region)
}

/// Largest area (mm^2) of one dent in one slice that counts as a lesion: a 6 cm mass.
const DENT_MAX_MM2: f64 = 3000.0;

/// Policy: a lesion the lung encloses is lung (the tutorial's fill means this). A mass or
/// consolidation on the costal pleura is enclosed by lung on its inner side and the chest wall
/// on its outer one, and a closing can fill only dents narrower than its ball. Per axial slice,
/// the dents of the lung's convex hull on the lateral side of the lung (beyond its centroid,
/// away from the chest's mid-line `centre_yx`) whose mouth faces the chest wall (farther from
/// the chest's axis than the lung's centroid) are filled when at most `DENT_MAX_MM2`; the
/// mediastinal side (heart, hilum, spine, the dome a lung wraps around) never is. Returns the
/// voxels added.
fn fill_costal_dents(m: &mut Array3<u8>, body: &ArrayView3<u8>, centre_yx: [f64; 2], sp_yx: [f64; 2]) -> u64 {
    let max_area = (DENT_MAX_MM2 / (sp_yx[0] * sp_yx[1])) as u64;
    m.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(body.axis_iter(Axis(0)).into_par_iter())
        .map(|(mut s, body)| {
            let (ny, nx) = s.dim();
            // The hull of the slice's lung, from each row's first and last lung voxel.
            let mut pts: Vec<(f64, f64)> = Vec::new();
            let (mut n, mut sy, mut sx) = (0u64, 0.0, 0.0);
            for (y, row) in s.outer_iter().enumerate() {
                let (mut first, mut last, mut count, mut sum) = (usize::MAX, 0, 0usize, 0usize);
                for (x, &v) in row.iter().enumerate() {
                    if v != 0 {
                        first = first.min(x);
                        last = x;
                        count += 1;
                        sum += x;
                    }
                }
                if count > 0 {
                    pts.push((first as f64, y as f64));
                    pts.push((last as f64, y as f64));
                    n += count as u64;
                    sy += (y * count) as f64;
                    sx += sum as f64;
                }
            }
            if pts.len() < 6 {
                return 0;
            }
            let hull = convex_hull(pts);
            // Inside the hull, not lung: the dents.
            let spans: Vec<Option<(usize, usize)>> = (0..ny)
                .map(|y| hull_span(&hull, y as f64).map(|(a, b)| (a.ceil().max(0.0) as usize, (b.floor().max(0.0) as usize).min(nx - 1))))
                .collect();
            let span = |y: usize| spans[y];
            let dist = |y: f64, x: f64| (((y - centre_yx[0]) * sp_yx[0]).powi(2) + ((x - centre_yx[1]) * sp_yx[1]).powi(2)).sqrt();
            let lung_dist = dist(sy / n as f64, sx / n as f64);
            // Only voxels lateral of the lung's centroid (farther from the mid-line, on its side)
            // can be in a costal dent: the mediastinal side, where the hull spans the heart, the
            // hilum and the spine, is never labelled.
            let lung_x = sx / n as f64;
            let outward = (lung_x - centre_yx[1]).signum();
            let mut dent = ndarray::Array2::<u8>::zeros((ny, nx));
            let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
            for y in 0..ny {
                let Some((a, b)) = span(y) else { continue };
                for x in a..=b {
                    if s[[y, x]] == 0 && body[[y, x]] != 0 && (x as f64 - lung_x) * outward > 0.0 {
                        dent[[y, x]] = 1;
                        lo = [lo[0].min(y), lo[1].min(x)];
                        hi = [hi[0].max(y), hi[1].max(x)];
                    }
                }
            }
            if lo[0] == usize::MAX {
                return 0;
            }
            // Labelled in the dents' own box.
            let (oy, ox) = (lo[0], lo[1]);
            let (lab, k) = label2d(&dent.slice(ndarray::s![lo[0]..=hi[0], lo[1]..=hi[1]]), false);
            // Per dent: area, and the mouth (dent voxels with a 4-neighbour outside the hull).
            let mut area = vec![0u64; k + 1];
            let mut mouth = vec![(0u64, 0.0f64, 0.0f64); k + 1];
            let inside = |y: isize, x: isize| {
                y >= 0 && (y as usize) < ny && span(y as usize).is_some_and(|(a, b)| x >= a as isize && x <= b as isize)
            };
            for ((y, x), &l) in lab.indexed_iter() {
                if l == 0 {
                    continue;
                }
                let (y, x) = (y + oy, x + ox);
                area[l as usize] += 1;
                let (yi, xi) = (y as isize, x as isize);
                if [(yi - 1, xi), (yi + 1, xi), (yi, xi - 1), (yi, xi + 1)].iter().any(|&(a, b)| !inside(a, b)) {
                    let e = &mut mouth[l as usize];
                    *e = (e.0 + 1, e.1 + y as f64, e.2 + x as f64);
                }
            }
            let keep: Vec<bool> = (0..=k)
                .map(|l| {
                    l > 0
                        && area[l] <= max_area
                        && mouth[l].0 > 0
                        && dist(mouth[l].1 / mouth[l].0 as f64, mouth[l].2 / mouth[l].0 as f64) > lung_dist
                })
                .collect();
            let mut added = 0u64;
            for ((y, x), &l) in lab.indexed_iter() {
                if keep[l as usize] {
                    s[[y + oy, x + ox]] = 1;
                    added += 1;
                }
            }
            added
        })
        .sum()
}

/// Convex hull (counter-clockwise, no collinear points) of (x, y) points: Andrew's monotone chain.
fn convex_hull(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f64, f64)>> = if pass == 0 { Box::new(pts.iter()) } else { Box::new(pts.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// The x range where row `y` crosses a convex polygon (points (x, y)), if it does.
fn hull_span(hull: &[(f64, f64)], y: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        if (a.1 - y) * (b.1 - y) > 0.0 {
            continue;
        }
        let xs = if a.1 == b.1 {
            [a.0, b.0]
        } else {
            let x = a.0 + (y - a.1) / (b.1 - a.1) * (b.0 - a.0);
            [x, x]
        };
        for x in xs {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    (lo <= hi).then_some((lo, hi))
}

/// Volumes, body fraction, mean HU and world bounding box of the labels, each in one parallel
/// pass over the lungs' `region` (the mean of the stored values: the rescale is affine, so it
/// maps the mean).
fn lung_qc(vol: &Volume, labels: &Array3<u8>, region: Box3, body_voxels: f64, qc: &mut LungQc) {
    let voxel_ml = vol.voxel_volume_mm3() / 1000.0;
    let mut qc_boxes = crate::morph::label_boxes(&labels.slice(in_box(region)), &[1, 2]);
    for b in &mut qc_boxes {
        for a in 0..3 {
            b.lo_zyx[a] += region[a].0;
            b.hi_zyx[a] += region[a].0;
        }
    }
    let (r, l) = (qc_boxes[0].count, qc_boxes[1].count);
    let n = r + l;
    let (mut lo_xyz, mut hi_xyz) = ([usize::MAX; 3], [0usize; 3]);
    for b in qc_boxes.iter().filter(|b| b.count > 0) {
        let (lo, hi) = (xyz_from_zyx(b.lo_zyx), xyz_from_zyx(b.hi_zyx));
        for a in 0..3 {
            lo_xyz[a] = lo_xyz[a].min(lo[a]);
            hi_xyz[a] = hi_xyz[a].max(hi[a]);
        }
    }
    // An affine map sends the index box's extremes to the world box's extremes.
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    if n > 0 {
        for c in 0..8 {
            let ijk = [0, 1, 2].map(|a| if c & (1 << a) != 0 { hi_xyz[a] as f64 } else { lo_xyz[a] as f64 });
            let w = vol.geometry.index_to_world(ijk);
            for a in 0..3 {
                lo[a] = lo[a].min(w[a]);
                hi[a] = hi[a].max(w[a]);
            }
        }
    }
    if qc.lungs_found == 2 {
        qc.right_ml = r as f64 * voxel_ml;
        qc.left_ml = l as f64 * voxel_ml;
    }
    qc.total_ml = n as f64 * voxel_ml;
    qc.body_fraction = n as f64 / body_voxels.max(1.0);
    qc.mean_hu = mean_hu_inside(vol, labels, n, region);
    qc.bbox_lps_mm = (n > 0).then(|| std::array::from_fn(|a| [lo[a], hi[a]]));
}

/// 1 where the voxel is denser than the tutorial's -320 HU, thresholded from the stored values:
/// no float copy of the volume. The array has room to be padded in place (`pad_in_place`);
/// the room's pages are never touched until then.
fn dense_voxels(vol: &Volume) -> Array3<u8> {
    let rescale = vol.meta.rescale.unwrap_or(Rescale::IDENTITY);
    let [nz, ny, nx] = vol.shape();
    let mut room = vec![0u8; (nz + 2) * (ny + 2) * (nx + 2)];
    room.truncate(nz * ny * nx);
    let mut out = Array3::from_shape_vec((nz, ny, nx), room).expect("sized for the shape");
    crate::with_data!(&vol.data, a => above_into(a, rescale, THRESHOLD_HU as f64, &mut out));
    out
}

/// Mean HU over the `n` nonzero voxels of `mask`, all inside `region` ((z, y, x) ranges), from
/// the stored values in one parallel pass (the rescale is affine, so it maps the mean).
fn mean_hu_inside(vol: &Volume, mask: &Array3<u8>, n: u64, region: Box3) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let region = in_box(region);
    let sum_stored = crate::with_data!(&vol.data, a => Zip::from(mask.slice(region)).and(a.slice(region)).par_fold(|| 0.0f64, |s, &v, &h| if v != 0 { s + h.to_f64() } else { s }, |a, b| a + b));
    vol.meta.rescale.unwrap_or(Rescale::IDENTITY).apply(sum_stored / n as f64)
}

/// [`above_into`] into a new array.
#[cfg(test)]
fn above<T: Voxel>(a: &Array3<T>, rescale: Rescale, hu: f64) -> Array3<u8> {
    let mut out = Array3::zeros(a.raw_dim());
    above_into(a, rescale, hu, &mut out);
    out
}

/// 1 into `out` (same shape) where the stored value's HU is above `hu`, else 0. For integers
/// under a rising rescale the test is one integer comparison in the stored type (it
/// vectorizes): m v + b > t exactly when v > floor((t - b) / m), v being an integer.
fn above_into<T: Voxel>(a: &Array3<T>, rescale: Rescale, hu: f64, out: &mut Array3<u8>) {
    let out = Zip::from(out).and(a);
    if T::DTYPE.is_integer() && rescale.slope > 0.0 {
        let t = ((hu - rescale.intercept) / rescale.slope).floor();
        let (lo, hi) = T::DTYPE.range();
        if t < lo {
            return out.par_for_each(|o, _| *o = 1);
        }
        let t = T::from_f64(t.min(hi));
        return out.par_for_each(|o, &v| *o = u8::from(v > t));
    }
    out.par_for_each(|o, &v| *o = u8::from(rescale.apply(v.to_f64()) > hu))
}

/// Erode a mask (6-neighbour steps, at most `max_steps`) until its second largest piece holds
/// at least a hundredth of the whole; return the two largest pieces as seeds (1 = the largest).
fn split_in_two(mask: &Array3<u8>, max_steps: usize) -> Option<Array3<u8>> {
    let total = count_nonzero(mask);
    let mut cur = mask.clone();
    for _ in 0..max_steps {
        cur = erode_cross(&cur);
        let pieces = Components::new(&cur.view(), Connectivity::Six, |v| v != 0);
        let s = pieces.sizes();
        let mut order: Vec<u32> = (1..=pieces.n as u32).collect();
        order.sort_by(|&a, &b| s[b as usize].cmp(&s[a as usize]));
        if order.len() >= 2 && s[order[1] as usize] * 10 >= total / 10 {
            let (a, b) = (order[0], order[1]);
            return Some(pieces.paint(0u8, |l| (l == a).then_some(1).or((l == b).then_some(2))));
        }
        if order.is_empty() {
            return None;
        }
    }
    None
}

/// Dilate the nonzero labels by a ball of `r` mm, in place: new voxels take the label of the
/// lung that reaches them first (breadth first, 6-neighbour steps), as growing the labels
/// through `dilate_mm(labels)` would give. No volume-sized array besides the labels: voxels
/// are written only where the dilation reaches, the ball's distances streamed along z.
fn dilate_labels_mm(labels: &mut Array3<u8>, r: f64, sp: [f64; 3]) {
    let Some(b) = crate::morph::bbox(labels, crate::morph::margin_vox(r, sp)) else { return };
    let feature = Zip::from(labels.slice(in_box(b))).par_map_collect(|&v| v != 0);
    crate::morph::ball_into(&feature, sp, r, crate::morph::WINDOW_BYTES, &mut labels.slice_mut(in_box(b)), |l, near| {
        if near && *l == 0 {
            *l = u8::OPEN;
        }
    });
    drop(feature);
    grow_into_open(labels);
}

/// Grow the labels (below OPEN) through the OPEN voxels of `labels`, all at once (breadth first,
/// 6-neighbour steps, bounds tested: no padded copy); OPEN voxels no label reaches become 0.
fn grow_into_open(labels: &mut Array3<u8>) {
    const OPEN: u8 = u8::OPEN;
    let dims = labels.dim();
    let plane = dims.1 * dims.2;
    let lab = labels.as_slice_mut().expect("standard layout");
    // The frontier: labelled voxels next to one not reached yet, in C order.
    let mut frontier: Vec<usize> = lab
        .par_chunks(plane)
        .enumerate()
        .map(|(z, p)| {
            let lab = &*lab;
            (0..plane)
                .filter(|&k| p[k] != 0 && p[k] != OPEN)
                .map(|k| z * plane + k)
                .filter(|&i| {
                    let mut open = false;
                    crate::morph::face_neighbours(i, dims, |j| open |= lab[j] == OPEN);
                    open
                })
                .collect::<Vec<usize>>()
        })
        .collect::<Vec<_>>()
        .concat();
    let mut next = Vec::new();
    while !frontier.is_empty() {
        next.clear();
        for &i in &frontier {
            let l = lab[i];
            crate::morph::face_neighbours(i, dims, |j| {
                if lab[j] == OPEN {
                    lab[j] = l;
                    next.push(j);
                }
            });
        }
        std::mem::swap(&mut frontier, &mut next);
    }
    lab.par_iter_mut().filter(|v| **v == OPEN).for_each(|v| *v = 0);
}

/// A label while labels grow: its largest value marks a voxel of the mask no label has reached
/// yet, so labels stay below it.
trait Label: Copy + PartialEq + Default + Into<u32> + Into<u64> + Send + Sync {
    const OPEN: Self;
    /// A seed's label (below OPEN: the caller counts its seeds).
    fn of(seed: u16) -> Self;
}

impl Label for u8 {
    const OPEN: u8 = u8::MAX;
    fn of(seed: u16) -> u8 {
        seed as u8
    }
}

impl Label for u16 {
    const OPEN: u16 = u16::MAX;
    fn of(seed: u16) -> u16 {
        seed
    }
}

/// Labels grown through a mask, on a grid padded by one voxel all round that also says where
/// they may go (0: not in the mask, or the pad; OPEN: in it, not reached), so a voxel's six
/// neighbours are fixed offsets: no bounds tests or divisions, one array read per neighbour.
struct Grown<L> {
    padded: Array3<L>,
    /// Voxels per label (index 0 counts nothing).
    counts: Vec<u64>,
    /// Pairs of labels (smaller first) that touch, with how many face contacts they share.
    contacts: Vec<((u32, u32), u64)>,
}

impl<L: Label> Grown<L> {
    /// The labels on the mask's grid; OPEN where no label reached (never one of them).
    fn labels(&self) -> ArrayView3<'_, L> {
        let (pz, py, px) = self.padded.dim();
        self.padded.slice(ndarray::s![1..pz - 1, 1..py - 1, 1..px - 1])
    }

    /// 1 where one of labels `ids` is, inside the box of (z, y, x) ranges `b`.
    fn mask(&self, ids: &[u32], b: Box3) -> Array3<u8> {
        Zip::from(self.labels().slice(in_box(b))).par_map_collect(|&v| u8::from(ids.contains(&Into::<u32>::into(v))))
    }

    /// Mean of `value` over label `id`'s voxels inside box `b` (its box).
    fn mean_over(&self, id: u32, b: Box3, value: &(dyn Fn([usize; 3]) -> f64 + Sync)) -> f64 {
        let (n, sum) = Zip::indexed(self.labels().slice(in_box(b))).par_fold(
            || (0u64, 0.0f64),
            |(n, s), (z, y, x), &v| {
                if Into::<u32>::into(v) == id { (n + 1, s + value([z + b[0].0, y + b[1].0, x + b[2].0])) } else { (n, s) }
            },
            |a, c| (a.0 + c.0, a.1 + c.1),
        );
        sum / n.max(1) as f64
    }
}

/// Grown labels in the narrowest type that holds them.
enum Seeded {
    Few(Grown<u8>),
    Many(Grown<u16>),
}

impl Seeded {
    fn counts(&self) -> &[u64] {
        match self {
            Seeded::Few(g) => &g.counts,
            Seeded::Many(g) => &g.counts,
        }
    }

    fn contacts(&self) -> &[((u32, u32), u64)] {
        match self {
            Seeded::Few(g) => &g.contacts,
            Seeded::Many(g) => &g.contacts,
        }
    }

    fn boxes(&self, ids: &[u32]) -> Vec<crate::morph::LabelBox> {
        match self {
            Seeded::Few(g) => crate::morph::label_boxes(&g.labels(), ids),
            Seeded::Many(g) => crate::morph::label_boxes(&g.labels(), ids),
        }
    }

    fn mask(&self, ids: &[u32], b: Box3) -> Array3<u8> {
        match self {
            Seeded::Few(g) => g.mask(ids, b),
            Seeded::Many(g) => g.mask(ids, b),
        }
    }

    fn mean_over(&self, id: u32, b: Box3, value: &(dyn Fn([usize; 3]) -> f64 + Sync)) -> f64 {
        match self {
            Seeded::Few(g) => g.mean_over(id, b, value),
            Seeded::Many(g) => g.mean_over(id, b, value),
        }
    }
}

/// Grow labels seeded on a grid of blocks (`factors` (x, y, z) voxels each; 0 = no seed) inside
/// `within` at full resolution, breadth first: each voxel joins the label that reaches it first.
fn grow_from_blocks<S: Copy + Into<u16> + Sync, L: Label>(seeds: &ArrayView3<S>, factors: [usize; 3], within: &Array3<u8>) -> Grown<L> {
    start_growth(seeds, factors, within).run()
}

/// [`grow_from_blocks`] on arrays the caller gives up: the seeds and `within` are in the label
/// grid once it is seeded, and are freed before it grows (lung-seg's peak memory).
fn grow_freeing<S: Copy + Into<u16> + Sync, L: Label>(seeds: Array3<S>, factors: [usize; 3], within: Array3<u8>) -> Grown<L> {
    let start = start_growth(&seeds.view(), factors, &within);
    drop((seeds, within));
    start.run()
}

/// [`grow_from_blocks`] in `within`'s own memory (made with room for the padding by
/// `dense_voxels`, or moved when it has none); the seeds are freed before the growth.
fn grow_in_place<S: Copy + Into<u16> + Sync>(seeds: Array3<S>, factors: [usize; 3], within: Array3<u8>) -> Grown<u8> {
    let dims = within.dim();
    let start = seed_grid(pad_in_place(within), dims, &seeds.view(), factors);
    drop(seeds);
    start.run()
}

/// Labels seeded, not grown yet: the seeds and `within` are in `lab` now, so a caller that owns
/// them can free them before the growth (lung-seg's peak memory).
struct Growth<L> {
    lab: Vec<L>,
    /// The seed voxels a growth step can do anything at (next to a voxel not reached, or to
    /// another label), in C order.
    frontier: Vec<usize>,
    /// Voxels per label, seeds only.
    counts: Vec<u64>,
    dims: (usize, usize, usize),
}

/// The first step of [`grow_from_blocks`]: the padded label grid and the seeds' frontier.
fn start_growth<S: Copy + Into<u16> + Sync, L: Label>(seeds: &ArrayView3<S>, factors: [usize; 3], within: &Array3<u8>) -> Growth<L> {
    let (nz, ny, nx) = within.dim();
    let (py, px) = (ny + 2, nx + 2);
    let plane = py * px;
    let mut lab = vec![L::default(); (nz + 2) * plane];
    lab[plane..(nz + 1) * plane].par_chunks_mut(plane).zip(within.outer_iter().into_par_iter()).for_each(|(lab, inside)| {
        for (y, row) in inside.outer_iter().enumerate() {
            let first = (y + 1) * px + 1;
            for (l, &w) in lab[first..first + nx].iter_mut().zip(row.iter()) {
                // Voxels outside `within` (most of them) stay 0: their pages are never written.
                if w != 0 {
                    *l = L::OPEN;
                }
            }
        }
    });
    seed_grid(lab, within.dim(), seeds, factors)
}

/// A mask of `dims` (C order, in `grid`, which has room for more) moved in place to the layout
/// padded by one voxel all round, the padding 0: the label grid grows in the mask's memory.
fn pad_in_place(grid: Array3<u8>) -> Vec<u8> {
    let (nz, ny, nx) = grid.dim();
    // The rows are moved as flat C-order memory: anything else would be scrambled.
    assert!(grid.is_standard_layout(), "pad_in_place needs a mask in standard layout");
    let (mut data, offset) = grid.into_raw_vec_and_offset();
    assert_eq!(offset.unwrap_or(0), 0, "pad_in_place needs a mask that starts its buffer");
    let (py, px) = (ny + 2, nx + 2);
    let plane = py * px;
    // Within the room `dense_voxels` left, this neither copies nor touches more than a plane.
    data.resize((nz + 2) * plane, 0);
    // Each row moves to a place at or after its own; last first, so none is overwritten first.
    for z in (0..nz).rev() {
        for y in (0..ny).rev() {
            let from = (z * ny + y) * nx;
            data.copy_within(from..from + nx, ((z + 1) * py + y + 1) * px + 1);
        }
    }
    data[..plane].fill(0);
    for z in 1..=nz {
        let p = &mut data[z * plane..(z + 1) * plane];
        p[..px].fill(0);
        p[(py - 1) * px..].fill(0);
        for y in 1..=ny {
            p[y * px] = 0;
            p[y * px + px - 1] = 0;
        }
    }
    data
}

/// Seed a padded grid whose nonzero voxels are the mask: each takes its block's seed label
/// (seeds on a grid of blocks of `factors` (x, y, z) voxels; 0 = no seed), or OPEN.
fn seed_grid<S: Copy + Into<u16> + Sync, L: Label>(
    mut lab: Vec<L>,
    (nz, ny, nx): (usize, usize, usize),
    seeds: &ArrayView3<S>,
    factors: [usize; 3],
) -> Growth<L> {
    let [fx, fy, fz] = factors;
    let (py, px) = (ny + 2, nx + 2);
    let plane = py * px;
    // Most of the grid is 0 (not air, or outside the body): only its runs of mask are visited.
    let in_mask = |l: L| l != L::default();
    let column_block: Vec<usize> = (0..nx).map(|x| x / fx).collect();
    lab[plane..(nz + 1) * plane].par_chunks_mut(plane).enumerate().for_each(|(z, lab)| {
        let seeds = seeds.index_axis(Axis(0), z / fz);
        for y in 0..ny {
            let block_row = seeds.index_axis(Axis(0), y / fy);
            let row = &mut lab[(y + 1) * px + 1..(y + 1) * px + 1 + nx];
            let mut x = 0;
            while x < nx {
                let x0 = run_end(row, x, false, &in_mask);
                x = run_end(row, x0, true, &in_mask);
                for (l, &b) in row[x0..x].iter_mut().zip(&column_block[x0..x]) {
                    let s: u16 = block_row[b].into();
                    *l = if s != 0 { L::of(s) } else { L::OPEN };
                }
            }
        }
    });
    // The frontier and the seeds' sizes, slice by slice in parallel (in order: the frontier is
    // in C order). Seeds are large blocks: most of their voxels have nothing to do in the
    // growth and are left out of the frontier, which would hold 8 bytes for each.
    let slot = |l: L| Into::<u32>::into(l) as usize;
    let parts: Vec<(Vec<usize>, Vec<u64>)> = (1..=nz)
        .into_par_iter()
        .fold(
            || (Vec::new(), vec![0u64; slot(L::OPEN)]),
            |(mut front, mut counts), z| {
                for row_start in (z * plane + px..(z + 1) * plane - px).step_by(px) {
                    let row = &lab[row_start..row_start + px];
                    let mut x = 0;
                    while x < px {
                        let x0 = run_end(row, x, false, &in_mask);
                        x = run_end(row, x0, true, &in_mask);
                        for i in (row_start + x0..row_start + x).filter(|&i| lab[i] != L::OPEN) {
                            let l = lab[i];
                            counts[slot(l)] += 1;
                            let acts = [i - 1, i + 1, i - px, i + px, i - plane, i + plane].iter().any(|&j| {
                                let lj = lab[j];
                                lj == L::OPEN || (lj != l && lj != L::default())
                            });
                            if acts {
                                front.push(i);
                            }
                        }
                    }
                }
                (front, counts)
            },
        )
        .collect();
    let mut counts = vec![0u64; slot(L::OPEN)];
    for (_, c) in &parts {
        for (t, &n) in counts.iter_mut().zip(c) {
            *t += n;
        }
    }
    let frontier = parts.into_iter().flat_map(|(f, _)| f).collect();
    Growth { lab, frontier, counts, dims: (nz, ny, nx) }
}

/// How many frontier voxels ahead [`Growth::run`] asks for the neighbours' cache lines.
const PREFETCH_AHEAD: usize = 16;

/// Ask for the cache line holding `v[i]` (a hint: nothing if `i` is out of range).
#[inline(always)]
fn prefetch<T>(v: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = v.get(i) {
        // SAFETY: a prefetch never faults, and the pointer is to an element of `v`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, i);
}

impl<L: Label> Growth<L> {
    fn run(self) -> Grown<L> {
        let Growth { mut lab, mut frontier, mut counts, dims: (nz, ny, nx) } = self;
        let (py, px) = (ny + 2, nx + 2);
        let plane = py * px;
        let slot = |l: L| Into::<u32>::into(l) as usize;
        let mut next = Vec::new();
        // Where two labels meet, one of the two voxels is processed after the other was labelled:
        // every contact is seen here.
        let mut touching: Vec<(L, L)> = Vec::new();
        while !frontier.is_empty() {
            next.clear();
            for (k, &i) in frontier.iter().enumerate() {
                // The neighbours a plane away are cache misses (the frontier is a sparse shell):
                // asked for a few voxels ahead, they arrive while these are done.
                if let Some(&ahead) = frontier.get(k + PREFETCH_AHEAD) {
                    prefetch(&lab, ahead - plane);
                    prefetch(&lab, ahead + plane);
                }
                let l = lab[i];
                for j in [i - 1, i + 1, i - px, i + px, i - plane, i + plane] {
                    let lj = lab[j];
                    if lj == L::OPEN {
                        lab[j] = l;
                        counts[slot(l)] += 1;
                        next.push(j);
                    } else if lj != l && lj != L::default() {
                        touching.push((l, lj));
                    }
                }
            }
            std::mem::swap(&mut frontier, &mut next);
        }
        let mut pairs: Vec<(u32, u32)> =
            touching.into_iter().map(|(a, b)| (slot(a).min(slot(b)) as u32, slot(a).max(slot(b)) as u32)).collect();
        pairs.sort_unstable();
        let mut contacts: Vec<((u32, u32), u64)> = Vec::new();
        for p in pairs {
            match contacts.last_mut() {
                Some((q, n)) if *q == p => *n += 1,
                _ => contacts.push((p, 1)),
            }
        }
        Grown { padded: Array3::from_shape_vec((nz + 2, py, px), lab).expect("same shape"), counts, contacts }
    }
}

/// Clear the voxels at flat indices `tree` and their 6-neighbours (the airway wall's partial
/// volume) in `air`; returns how many were set.
fn cut_around(air: &mut Array3<u8>, tree: &[usize]) -> u64 {
    let dims = air.dim();
    let air = air.as_slice_mut().expect("standard layout");
    let mut removed = 0u64;
    let mut cut = |j: usize| {
        if air[j] != 0 {
            air[j] = 0;
            removed += 1;
        }
    };
    for &i in tree {
        cut(i);
        crate::morph::face_neighbours(i, dims, &mut cut);
    }
    removed
}

/// Trachea and main bronchi, as flat voxel indices (and marked 2 in `air`), found by anatomy
/// wherever the scan starts: going from the head end plane by plane, each small air component
/// near the body's mid-line is grown through the air in 3-D (6-neighbours) until the growth
/// front explodes, i.e. it has run down a tube into a lung; the leaking fronts are removed again.
/// A pocket that closes without reaching a lung (a sinus, the mouth, a blocked pharynx) is passed
/// over with everything it holds, and the search goes on below it. If no tube reaches a lung (a
/// trachea blocked by mucus, bronchi not resolved), the longest closed tube running at least
/// 40 mm along the body is taken. Planes are array axis 0, the head-feet axis (`robust` hands
/// over an axial layout); `head_last` says which end is the head.
fn track_airways(air: &mut Array3<u8>, body_mid_x: &[Option<f64>], sp: [f64; 3], head_last: bool) -> Vec<usize> {
    let (nz, _, _) = air.dim();
    let px_mm2 = sp[0] * sp[1];
    let max_area = 900.0 / px_mm2; // trachea up to ~34 mm across
    let candidates = |air: &Array3<u8>, z: usize| -> Vec<Vec<(usize, usize)>> {
        let s = air.index_axis(Axis(0), z);
        let (l, n) = label2d(&s, false);
        let mut comps: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n + 1];
        for ((y, x), &v) in l.indexed_iter() {
            if v != 0 {
                comps[v as usize].push((y, x));
            }
        }
        comps.into_iter().skip(1).collect()
    };
    let zs: Vec<usize> = if head_last { (0..nz).rev().collect() } else { (0..nz).collect() };
    let dims = air.dim();
    let plane_len = dims.1 * dims.2;
    let flat = |(z, y, x): (usize, usize, usize)| (z * dims.1 + y) * dims.2 + x;
    let tol = 30.0 / sp[0];
    let mut tree: Vec<usize> = Vec::new();
    // The longest closed tube so far (voxels, and its length in planes).
    let mut best_closed: (Vec<usize>, usize) = (Vec::new(), 0);
    'planes: for &z in &zs {
        let Some(cx) = body_mid_x[z] else { continue };
        let mut cands: Vec<Vec<(usize, usize)>> = candidates(air, z)
            .into_iter()
            .filter(|c| (c.len() as f64) < max_area && c.len() as f64 > 20.0 / px_mm2)
            .filter(|c| (c.iter().map(|p| p.1 as f64).sum::<f64>() / c.len() as f64 - cx).abs() < tol)
            .collect();
        cands.sort_by_key(|c| std::cmp::Reverse(c.len()));
        for c in cands {
            let seed: Vec<usize> = c.iter().map(|&(y, x)| flat((z, y, x))).collect();
            // Candidates in a pocket already grown and passed over are skipped.
            if air.as_slice().is_some_and(|a| a[seed[0]] != 1) {
                continue;
            }
            match grow_airway(air, &seed, sp, max_area) {
                Ok(t) => {
                    tree = t;
                    break 'planes;
                }
                Err(pocket) => {
                    let mut planes: Vec<usize> = pocket.iter().map(|&i| i / plane_len).collect();
                    planes.sort_unstable();
                    planes.dedup();
                    let tube = pocket.len() as f64 <= max_area * planes.len() as f64;
                    if tube && planes.len() as f64 * sp[2] >= 40.0 && planes.len() > best_closed.1 {
                        best_closed = (pocket, planes.len());
                    }
                }
            }
        }
    }
    let air = air.as_slice_mut().expect("standard layout");
    if tree.is_empty() {
        tree = best_closed.0;
    }
    for v in air.iter_mut() {
        if *v == PASSED {
            *v = 1;
        }
    }
    for &i in &tree {
        air[i] = TREE;
    }
    tree
}

/// Airway tree voxels are marked this in the air while it grows.
const TREE: u8 = 2;
/// Air of a pocket grown from a candidate and passed over.
const PASSED: u8 = 3;

/// Grow from `seed` through the air (value 1) front by front. Inside the airway tree the front
/// stays about as large as the trachea's cross-section; when it explodes the growth has run into
/// a lung: the last fronts are given back and the tree returned (if it is a tube: no wider on
/// average than `max_area` voxels per plane). A growth still going after 300 mm is returned
/// too (it is running down the bronchial tree). Otherwise everything grown is marked PASSED and
/// returned as the error.
fn grow_airway(air: &mut Array3<u8>, seed: &[usize], sp: [f64; 3], max_area: f64) -> std::result::Result<Vec<usize>, Vec<usize>> {
    let dims = air.dim();
    let plane_len = dims.1 * dims.2;
    let air = air.as_slice_mut().expect("standard layout");
    let mut fronts: Vec<Vec<usize>> = vec![seed.to_vec()];
    for &i in seed {
        air[i] = TREE;
    }
    let max_steps = (300.0 / sp.iter().cloned().fold(f64::INFINITY, f64::min)) as usize;
    let mut reference = seed.len() as f64;
    let mut exploded = false;
    // A growth still going after 300 mm runs down the bronchial tree: it is the airway too.
    let mut still_going = true;
    for step in 0..max_steps {
        let mut next = Vec::new();
        for &i in fronts.last().map(|f| f.as_slice()).unwrap_or(&[]) {
            crate::morph::face_neighbours(i, dims, |j| {
                if air[j] == 1 {
                    air[j] = TREE;
                    next.push(j);
                }
            });
        }
        if next.is_empty() {
            still_going = false;
            break;
        }
        if step < 10 {
            reference = reference.max(next.len() as f64);
        }
        exploded = step >= 10 && next.len() as f64 > 4.0 * reference;
        fronts.push(next);
        if exploded {
            // Undo the leak: the last few fronts.
            let undo = fronts.len().min(1 + (5.0 / sp[0]).ceil() as usize);
            for f in fronts.drain(fronts.len() - undo..) {
                for i in f {
                    air[i] = 1;
                }
            }
            break;
        }
    }
    let tree = fronts.concat();
    let mut planes: Vec<usize> = tree.iter().map(|&i| i / plane_len).collect();
    planes.sort_unstable();
    planes.dedup();
    if (exploded || still_going) && !tree.is_empty() && tree.len() as f64 <= max_area * planes.len() as f64 {
        return Ok(tree);
    }
    // Not a tube into a lung: pass over all of it (the undone fronts are lung: never a seed's).
    for &i in &tree {
        air[i] = PASSED;
    }
    Err(tree)
}

/// Run a method on a volume: returns the mask volume (u8; labels when asked) and QC.
pub fn segment(vol: &Volume, method: Method, o: &LungOptions, labels: bool) -> Result<(Volume, LungQc)> {
    if matches!(vol.meta.kind, Kind::Mask | Kind::Labels | Kind::Normalized) {
        return Err(Error::bad_input(format!("lung-seg needs an HU volume; this one is a {} volume", vol.meta.kind.name()))
            .with_hint("run it on hu-convert's output (or vol-resample's)"));
    }
    if vol.meta.kind == Kind::Stored && vol.meta.rescale.is_none() {
        return Err(Error::bad_input("stored values without a rescale").with_hint("convert to HU first with hu-convert"));
    }
    let (mask, qc) = match method {
        Method::Tutorial { fill } => {
            let mut m = tutorial(dense_voxels(vol), fill);
            if o.dilate_mm > 0.0 {
                m = dilate_mm(&m, o.dilate_mm, vol.geometry.spacing);
            }
            let n = count_nonzero(&m);
            let voxel_ml = vol.voxel_volume_mm3() / 1000.0;
            let (nz, ny, nx) = m.dim();
            let mean_hu = mean_hu_inside(vol, &m, n, [(0, nz), (0, ny), (0, nx)]);
            let mut qc = LungQc { total_ml: n as f64 * voxel_ml, lungs_found: usize::from(n > 0), mean_hu, ..LungQc::default() };
            tutorial_qc(vol, &m, n, &mut qc);
            (m, qc)
        }
        Method::Robust => {
            let r = robust(vol, o)?;
            let mut m = r.labels;
            if !labels {
                // In place, writing only the lungs: pages elsewhere stay untouched (peak memory).
                m.par_map_inplace(|v| {
                    if *v > 1 {
                        *v = 1;
                    }
                });
            }
            (m, r.qc)
        }
    };
    let mut meta = vol.meta.clone();
    meta.kind = if labels && matches!(method, Method::Robust) { Kind::Labels } else { Kind::Mask };
    meta.rescale = None;
    meta.padding = None;
    meta.normalization = None;
    meta.window = None;
    meta.extra.insert("lung_qc".into(), serde_json::to_value(&qc).unwrap_or_default());
    Ok((Volume { data: VolumeData::U8(mask), geometry: vol.geometry.clone(), meta }, qc))
}

/// Smallest total that can be an adult's two lungs (mL); a full breath holds 4-6 L.
const TUTORIAL_MIN_ML: f64 = 500.0;
/// Share of the mask on one side of the body's mid-line above which it is not two lungs.
const TUTORIAL_MAX_ONE_SIDE: f64 = 0.9;

/// The tutorial's method keeps the largest air pocket and knows nothing of body or sides: say
/// when what it kept cannot be two lungs (air around the patient split off by the table, gas
/// below the diaphragm, a speck), without changing the mask (it stays the tutorial's, exactly).
/// Cheap by design (no labelling): a few passes over the mask and the dense voxels.
fn tutorial_qc(vol: &Volume, mask: &Array3<u8>, n: u64, qc: &mut LungQc) {
    if n == 0 {
        return;
    }
    if qc.total_ml < TUTORIAL_MIN_ML {
        qc.warnings.push(format!(
            "implausible for lungs: the tutorial's mask holds only {:.0} mL (an air pocket, gas below the diaphragm?); check it, or use the robust default",
            qc.total_ml
        ));
    }
    // Lungs never reach the sides of the field of view (the array faces other than the two
    // head-feet ones, which a scan may cut through the lungs); the air around the patient does.
    let g = &vol.geometry;
    let head_feet = crate::geometry::array_axis(g.index_axis_along([0.0, 0.0, 1.0]));
    let mut edge = 0u64;
    for ax in (0..3).filter(|&ax| ax != head_feet) {
        let last = mask.len_of(Axis(ax)).saturating_sub(1);
        // Both faces, once each (one when the axis is a single voxel long).
        for k in std::iter::once(0).chain((last > 0).then_some(last)) {
            edge += mask.index_axis(Axis(ax), k).iter().filter(|&&v| v != 0).count() as u64;
        }
    }
    qc.fov_edge_voxels = edge;
    if edge > 0 {
        qc.warnings.push(format!(
            "implausible for lungs: the tutorial's mask reaches the edge of the field of view ({edge} voxels): air around the patient or in the table; use the robust default"
        ));
        return;
    }
    // Two lungs lie on both sides of the mid-line: the mean patient-left coordinate of the
    // voxels denser than -320 HU (body and table), from every 2nd voxel along each axis. World
    // x is affine in the index.
    let dx: [f64; 3] = std::array::from_fn(|a| g.direction[a][0] * g.spacing[a]);
    let x_of = move |(z, y, x): (usize, usize, usize)| dx[0] * x as f64 + dx[1] * y as f64 + dx[2] * z as f64;
    let rescale = vol.meta.rescale.unwrap_or(Rescale::IDENTITY);
    let (dense_n, dense_sum) = crate::with_data!(&vol.data, a => Zip::indexed(a.slice(ndarray::s![..;2, ..;2, ..;2])).par_fold(
        || (0u64, 0.0f64),
        |(c, s), (z, y, x), v| if rescale.apply(v.to_f64()) > f64::from(THRESHOLD_HU) { (c + 1, s + x_of((2 * z, 2 * y, 2 * x))) } else { (c, s) },
        |a, b| (a.0 + b.0, a.1 + b.1),
    ));
    let mid = dense_sum / dense_n.max(1) as f64;
    let left = Zip::indexed(mask).par_fold(|| 0u64, |l, i, &m| l + u64::from(m != 0 && x_of(i) > mid), |a, b| a + b);
    let one_side = left.max(n - left) as f64 / n as f64;
    if one_side > TUTORIAL_MAX_ONE_SIDE {
        qc.warnings.push(format!(
            "implausible for two lungs: {:.0}% of the tutorial's mask is on the patient's {} (one lung only, or gas below the diaphragm); check it",
            100.0 * one_side,
            if left * 2 > n { "left" } else { "right" }
        ));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Tutorial { fill: bool },
    Robust,
}

/// Dice overlap of two masks.
pub fn dice(a: &Array3<u8>, b: &Array3<u8>) -> f64 {
    let (mut inter, mut na, mut nb) = (0u64, 0u64, 0u64);
    Zip::from(a).and(b).for_each(|&x, &y| {
        let (x, y) = (x != 0, y != 0);
        inter += u64::from(x && y);
        na += u64::from(x);
        nb += u64::from(y);
    });
    if na + nb == 0 { 1.0 } else { 2.0 * inter as f64 / (na + nb) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::morph::par_map;

    #[test]
    fn tutorial_picks_the_air_pocket_not_the_outside() {
        // A dense box with an air cavity, surrounded by air: the cavity is the lung.
        let mut hu = Array3::<f32>::from_elem((10, 12, 12), -1000.0);
        for z in 1..9 {
            for y in 2..10 {
                for x in 2..10 {
                    hu[[z, y, x]] = 40.0;
                }
            }
        }
        for z in 3..7 {
            for y in 4..8 {
                for x in 4..8 {
                    hu[[z, y, x]] = -850.0;
                }
            }
        }
        for fill in [false, true] {
            let m = tutorial(above(&hu, Rescale::IDENTITY, THRESHOLD_HU as f64), fill);
            assert_eq!(m.iter().filter(|&&v| v == 1).count(), 64);
            assert_eq!(m[[5, 5, 5]], 1);
            assert_eq!(m[[0, 0, 0]], 0);
        }
        // A vessel inside the cavity: filled only with fill = true.
        hu[[5, 5, 5]] = 40.0;
        let dense = above(&hu, Rescale::IDENTITY, THRESHOLD_HU as f64);
        assert_eq!(tutorial(dense.clone(), false)[[5, 5, 5]], 0);
        assert_eq!(tutorial(dense, true)[[5, 5, 5]], 1);
    }

    /// A 2 mm body (water, 200 x 120 mm) in air, with the given air pockets (z, y, x boxes).
    fn body_with_pockets(pockets: &[[(usize, usize); 3]]) -> Volume {
        let mut hu = Array3::<i16>::from_elem((60, 80, 120), -1000);
        hu.slice_mut(ndarray::s![.., 10..70, 10..110]).fill(0);
        for p in pockets {
            hu.slice_mut(ndarray::s![p[0].0..p[0].1, p[1].0..p[1].1, p[2].0..p[2].1]).fill(-850);
        }
        let meta = crate::meta::Meta { kind: Kind::Hu, ..Default::default() };
        Volume::new(VolumeData::I16(hu), crate::geometry::Geometry::identity([2.0; 3]), meta)
    }

    #[test]
    fn the_tutorials_result_is_flagged_when_it_cannot_be_two_lungs() {
        let warnings = |v: &Volume| segment(v, Method::Tutorial { fill: true }, &LungOptions::default(), false).unwrap().1.warnings;
        // Two lungs of 800 mL, one each side of the mid-line (x = 60 voxels), joined by a
        // "trachea" (the tutorial keeps one component): nothing to say.
        let two = body_with_pockets(&[[(5, 55), (15, 65), (15, 55)], [(5, 55), (15, 65), (65, 105)], [(5, 10), (35, 40), (55, 65)]]);
        assert!(warnings(&two).is_empty(), "{:?}", warnings(&two));
        // One pocket on the patient's left (LPS x grows to the left): one lung, or stomach gas.
        let one = body_with_pockets(&[[(5, 55), (15, 65), (65, 105)]]);
        let w = warnings(&one);
        assert!(w.iter().any(|w| w.contains("100% of the tutorial's mask is on the patient's left")), "{w:?}");
        // A speck: 4 x 4 x 4 voxels of 8 mm^3 is 0.5 mL.
        let speck = body_with_pockets(&[[(30, 34), (40, 44), (40, 44)]]);
        assert!(warnings(&speck).iter().any(|w| w.contains("holds only 1 mL")), "{:?}", warnings(&speck));
    }

    /// A chest at 1 mm (so the wide morphology runs on 2 mm blocks): body, trachea (a bronchus into the right lung), two lungs, a
    /// nodule on the right lung's outer wall, and a gas pocket under the left lung joined to it
    /// by a 3 mm neck; with `bridge`, the lungs also meet across the midline along a 20 mm wide
    /// band of lung (too wide for the 7 mm opening to cut). Returns the HU volume, the true lungs
    /// (bridge included), the nodule and the gas.
    fn chest_1mm(bridge: bool) -> (Volume, Array3<u8>, Array3<u8>, Array3<u8>) {
        let dims = (128, 100, 130);
        let inside = |p: [f64; 3], c: [f64; 3], r: [f64; 3]| (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>() <= 1.0;
        // Lungs of 120 mL each (the robust method wants at least 50 mL a lung, 200 mL in all).
        let (right, left) = ([30.0, 50.0, 75.0], [100.0, 50.0, 75.0]);
        let lung_r = [20.0, 32.0, 45.0];
        let nodule = ([11.0, 50.0, 75.0], [4.0; 3]);
        // Big enough to seed its own growth (a 7 mm erosion leaves more than 1 mL of it).
        let gas = ([100.0, 50.0, 14.0], [14.0; 3]);
        let mut hu = Array3::<f32>::from_elem(dims, -1000.0);
        let (mut truth, mut nod, mut gas_m) = (Array3::<u8>::zeros(dims), Array3::<u8>::zeros(dims), Array3::<u8>::zeros(dims));
        for ((z, y, x), v) in hu.indexed_iter_mut() {
            let p = [x as f64, y as f64, z as f64];
            if inside(p, [65.0, 50.0, 0.0], [60.0, 45.0, 1e9]) {
                *v = 40.0;
            }
            // The trachea, open at the top, and a bronchus into the right lung.
            let trachea = (p[0] - 65.0).powi(2) + (p[1] - 35.0).powi(2) <= 36.0 && p[2] > 92.0;
            let bronchus = (p[1] - 35.0).powi(2) + (p[2] - 95.0).powi(2) <= 9.0 && (38.0..=65.0).contains(&p[0]);
            if trachea || bronchus {
                *v = -1000.0;
            }
            // Gas, its neck blurred by partial volume.
            let neck = (p[0] - 100.0).powi(2) + (p[1] - 50.0).powi(2) <= 2.25 && p[2] > 14.0 && p[2] < 34.0;
            if inside(p, gas.0, gas.1) || neck {
                *v = if neck { -900.0 } else { -1000.0 };
                gas_m[[z, y, x]] = u8::from(!neck);
            }
            let band = bridge && (40.0..90.0).contains(&p[0]) && (40.0..60.0).contains(&p[1]) && (65.0..85.0).contains(&p[2]);
            if inside(p, right, lung_r) || inside(p, left, lung_r) || band {
                *v = -850.0;
                truth[[z, y, x]] = 1;
            }
            if inside(p, nodule.0, nodule.1) && truth[[z, y, x]] == 1 {
                *v = 40.0;
                nod[[z, y, x]] = 1;
            }
        }
        let meta = crate::meta::Meta { kind: Kind::Hu, ..crate::meta::Meta::default() };
        (Volume::new(VolumeData::F32(hu), crate::geometry::Geometry::identity([1.0; 3]), meta), truth, nod, gas_m)
    }

    #[test]
    fn both_methods_read_stored_values_through_the_rescale() {
        // The same chest as stored unsigned values under a rescale (as hu-convert leaves a DICOM
        // series it did not convert): thresholds and mean HU go through the rescale, so masks and
        // QC equal the HU volume's, and the mean is the plain mean of HU inside the mask.
        let (hu, ..) = chest_1mm(false);
        let VolumeData::F32(h) = &hu.data else { unreachable!("chest_1mm is f32") };
        let meta = crate::meta::Meta {
            kind: Kind::Stored,
            rescale: Some(Rescale { slope: 0.5, intercept: -1024.0 }),
            ..crate::meta::Meta::default()
        };
        let stored = Volume::new(VolumeData::U16(h.mapv(|v| ((v + 1024.0) * 2.0) as u16)), hu.geometry.clone(), meta);
        for method in [Method::Tutorial { fill: true }, Method::Robust] {
            let (from_hu, qc_hu) = segment(&hu, method, &LungOptions::default(), false).unwrap();
            let (from_stored, qc_stored) = segment(&stored, method, &LungOptions::default(), false).unwrap();
            let (VolumeData::U8(a), VolumeData::U8(b)) = (&from_hu.data, &from_stored.data) else { unreachable!("masks are u8") };
            assert_eq!(a, b, "{method:?}");
            let n = count_nonzero(a);
            assert!(n > 0, "{method:?}");
            let direct = Zip::from(a).and(h).fold(0.0, |s, &m, &v| if m != 0 { s + f64::from(v) } else { s }) / n as f64;
            assert!((qc_hu.mean_hu - direct).abs() < 1e-9 && (qc_stored.mean_hu - direct).abs() < 1e-9, "{method:?}: {direct}");
            assert_eq!(qc_hu.total_ml, qc_stored.total_ml);
        }
    }

    #[test]
    fn robust_at_1mm_keeps_the_pleural_nodule_and_drops_the_gas_below() {
        let (vol, truth, nodule, gas) = chest_1mm(false);
        let r = robust(&vol, &LungOptions::default()).unwrap();
        let mask = par_map(&r.labels, |v| u8::from(v != 0));
        assert!(dice(&mask, &truth) >= 0.98, "dice {}: {:?}", dice(&mask, &truth), r.qc);
        assert_eq!(r.qc.lungs_found, 2);
        // A closing fills a dent up to about a voxel short of its mouth: the nodule is inside
        // except where it meets the lung's outermost voxel layer.
        let core = erode_mm(&truth, 1.5, [1.0; 3]);
        let missed = Zip::from(&mask).and(&nodule).and(&core).fold(0, |c, &m, &n, &k| c + usize::from(n == 1 && k == 1 && m == 0));
        assert_eq!(missed, 0, "the nodule on the wall is inside");
        assert!(Zip::from(&mask).and(&gas).all(|&m, &g| g == 0 || m == 0), "the gas below is outside");
        // Right is -x in LPS: the lung at the smaller x index is label 1.
        assert_eq!((r.labels[[75, 50, 30]], r.labels[[75, 50, 100]]), (1, 2));
        assert!(r.qc.airway_voxels_removed > 0);
    }

    #[test]
    fn the_airway_cut_takes_each_tree_voxel_with_its_six_neighbours() {
        let mut air = Array3::<u8>::from_elem((4, 5, 6), 1);
        air[[2, 2, 4]] = 0; // not air: stays 0, not counted
        let flat = |z: usize, y: usize, x: usize| (z * 5 + y) * 6 + x;
        // An inner voxel (7 with its neighbours, one of which is not air: 6), a corner (4), and
        // the first one's neighbour (itself already cut: 5 more).
        let removed = cut_around(&mut air, &[flat(2, 2, 3), flat(0, 0, 0), flat(2, 2, 2)]);
        assert_eq!(removed, 6 + 4 + 5);
        for (z, y, x) in [(2, 2, 3), (1, 2, 3), (3, 2, 3), (2, 1, 3), (2, 3, 3), (2, 2, 2), (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)] {
            assert_eq!(air[[z, y, x]], 0, "({z}, {y}, {x})");
        }
        assert_eq!(count_nonzero(&air), 4 * 5 * 6 - 1 - 15);
    }

    #[test]
    fn airway_tracking_keeps_the_tube_and_gives_back_the_lung_it_leaked_into() {
        // Head at the last slice (+z); a 5 x 5 mm trachea from the top down to a large "lung".
        let (nz, ny, nx) = (60, 40, 40);
        let tube = |z: usize, y: usize, x: usize| z >= 31 && (18..23).contains(&y) && (18..23).contains(&x);
        let lung = |z: usize, y: usize, x: usize| (5..=30).contains(&z) && (5..35).contains(&y) && (5..35).contains(&x);
        let mut air = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| u8::from(tube(z, y, x) || lung(z, y, x)));
        let body = Array3::<u8>::ones((nz, ny, nx));
        let tree = track_airways(&mut air, &Runs::new(&body.view(), |v| v != 0).mean_x_per_slice(), [1.0; 3], true);
        let at = |i: usize| (i / (ny * nx), i / nx % ny, i % nx);
        assert!(
            tree.iter().all(|&i| {
                let (z, y, x) = at(i);
                tube(z, y, x)
            }),
            "the tree stays in the tube"
        );
        for z in 45..nz {
            assert!(tree.contains(&((z * ny + 20) * nx + 20)), "tube axis at z {z}");
        }
        // Tree voxels are marked 2; the fronts that leaked into the lung are air (1) again.
        for ((z, y, x), &v) in air.indexed_iter() {
            let i = (z * ny + y) * nx + x;
            let want = if tree.contains(&i) { 2 } else { u8::from(tube(z, y, x) || lung(z, y, x)) };
            assert_eq!(v, want, "({z}, {y}, {x})");
        }
    }

    /// The growth as plainly as it can be written: bounds tests, the same C-order seeds and
    /// the same neighbour order.
    fn grow_reference(seeds: &Array3<u16>, f: [usize; 3], within: &Array3<u8>) -> (Array3<u16>, Vec<u64>) {
        let mut lab = Array3::<u16>::zeros(within.raw_dim());
        let mut counts = vec![0u64; u16::OPEN as usize];
        let mut front = Vec::new();
        for ((z, y, x), &w) in within.indexed_iter() {
            let s = seeds[[z / f[2], y / f[1], x / f[0]]];
            if w != 0 && s != 0 {
                lab[[z, y, x]] = s;
                counts[s as usize] += 1;
                front.push([z, y, x]);
            }
        }
        let dims = [within.dim().0, within.dim().1, within.dim().2];
        while !front.is_empty() {
            let mut next = Vec::new();
            for p in front {
                for (axis, step) in [(2, -1), (2, 1), (1, -1), (1, 1), (0, -1), (0, 1)] {
                    let mut q = p;
                    let Some(c) = p[axis].checked_add_signed(step).filter(|&c| c < dims[axis]) else { continue };
                    q[axis] = c;
                    if within[q] != 0 && lab[q] == 0 {
                        lab[q] = lab[p];
                        counts[lab[p] as usize] += 1;
                        next.push(q);
                    }
                }
            }
            front = next;
        }
        (lab, counts)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn growth_on_the_padded_grid_equals_a_plain_breadth_first_search(
            bits in proptest::collection::vec(0u8..4, 7 * 8 * 9),
            seed_bits in proptest::collection::vec(0u16..40, 4 * 4 * 5),
            blocks in proptest::bool::ANY,
        ) {
            // Masks reach every face of the grid, where the padding stands in for bounds tests.
            let within = Array3::from_shape_vec((7, 8, 9), bits).unwrap().mapv(|v| u8::from(v != 0));
            let f = if blocks { [2, 2, 2] } else { [1, 1, 1] };
            let sparse = Array3::from_shape_vec((4, 4, 5), seed_bits).unwrap().mapv(|v| if v < 4 { v } else { 0 });
            // Seeds on the block grid; at full resolution, each voxel its block's seed.
            let seeds = if blocks { sparse } else { Array3::from_shape_fn((7, 8, 9), |(z, y, x)| sparse[[z % 4, y % 4, x % 5]]) };
            let grown: Grown<u16> = grow_from_blocks(&seeds.view(), f, &within);
            let (lab, counts) = grow_reference(&seeds, f, &within);
            let got = grown.labels().mapv(|l| if l == u16::OPEN { 0 } else { l });
            proptest::prop_assert_eq!(&got, &lab);
            proptest::prop_assert_eq!(&grown.counts[..4], &counts[..4]);
            // Unreached voxels of the mask are OPEN, never a label.
            let open = Zip::from(grown.labels()).and(&within).fold(0, |n, &l, &w| n + usize::from(w != 0 && l == u16::OPEN));
            proptest::prop_assert_eq!(open as u64, count_nonzero(&within) - counts.iter().sum::<u64>());
            // Byte labels grow the same.
            let narrow: Grown<u8> = grow_from_blocks(&seeds.view(), f, &within);
            proptest::prop_assert_eq!(&narrow.labels().mapv(|l| if l == u8::OPEN { 0 } else { u16::from(l) }), &lab);
            proptest::prop_assert_eq!(&narrow.counts[..4], &counts[..4]);
            // What lung-seg asks of either width: counts, boxes and masks.
            let (few, many) = (Seeded::Few(narrow), Seeded::Many(grown));
            proptest::prop_assert_eq!(&few.counts()[..4], &many.counts()[..4]);
            let ids = [1, 2, 3];
            for (a, b) in few.boxes(&ids).iter().zip(many.boxes(&ids)) {
                proptest::prop_assert_eq!((a.count, a.lo_zyx, a.hi_zyx, a.index_sum_xyz), (b.count, b.lo_zyx, b.hi_zyx, b.index_sum_xyz));
            }
            for id in ids {
                let part = [(1, 6), (0, 8), (2, 9)];
                let want = lab.slice(ndarray::s![1..6, 0..8, 2..9]).mapv(|l| u8::from(u32::from(l) == id));
                proptest::prop_assert_eq!(few.mask(&[id], part), want.clone());
                proptest::prop_assert_eq!(many.mask(&[id], part), want);
            }
            // Grown in the mask's own memory (with the room lung-seg leaves, and without): the
            // same labels, counts and contacts.
            let mut roomy = vec![0u8; 9 * 10 * 11];
            roomy.truncate(7 * 8 * 9);
            roomy.copy_from_slice(within.as_slice().unwrap());
            for mask in [Array3::from_shape_vec((7, 8, 9), roomy).unwrap(), within.clone()] {
                let in_place = grow_in_place(seeds.clone(), f, mask);
                proptest::prop_assert_eq!(&in_place.labels().mapv(|l| if l == u8::OPEN { 0 } else { u16::from(l) }), &lab);
                proptest::prop_assert_eq!(&in_place.counts[..4], &counts[..4]);
                proptest::prop_assert_eq!(&in_place.contacts, few.contacts());
            }
        }

        #[test]
        fn dilating_labels_in_place_equals_growing_them_through_the_dilated_mask(
            vals in proptest::collection::vec(0u8..12, 9 * 10 * 11),
            r in 0.5f64..4.5,
            sp in proptest::sample::select(vec![[1.0, 1.0, 1.0], [0.7, 0.7, 1.25], [1.0, 1.2, 1.5]]),
        ) {
            // Sparse labels 1..=3 (several per label, so labels meet and race).
            let labels = Array3::from_shape_vec((9, 10, 11), vals).unwrap().mapv(|v| v.saturating_sub(8));
            let (want, _) = grow_reference(&labels.mapv(u16::from), [1, 1, 1], &dilate_mm(&labels, r, sp));
            let mut got = labels.clone();
            dilate_labels_mm(&mut got, r, sp);
            proptest::prop_assert_eq!(got.mapv(u16::from), want);
        }
    }

    #[test]
    fn integer_threshold_equals_the_float_test_for_any_rescale() {
        let stored: Vec<i16> = (-2100..2100).step_by(3).map(|v| v as i16).chain([i16::MIN, i16::MAX]).collect();
        let a = Array3::from_shape_vec((1, 1, stored.len()), stored).unwrap();
        for (slope, intercept) in
            [(1.0, -1024.0), (1.0, 0.0), (0.5, -1000.5), (2.5, -3.25), (-1.0, 0.0), (1e-4, 0.0), (1.0, 50000.0), (1.0, -40000.0)]
        {
            let r = Rescale { slope, intercept };
            let fast = above(&a, r, THRESHOLD_HU as f64);
            let float = a.mapv(|v| u8::from(r.apply(f64::from(v)) > THRESHOLD_HU as f64));
            assert_eq!(fast, float, "slope {slope} intercept {intercept}");
        }
    }

    #[test]
    fn lungs_joined_by_a_broad_band_are_split_in_two() {
        let (vol, truth, _, _) = chest_1mm(true);
        let r = robust(&vol, &LungOptions::default()).unwrap();
        assert_eq!(r.qc.lungs_found, 2, "{:?}", r.qc);
        assert!(r.qc.warnings.iter().any(|w| w.contains("the lungs touch")), "{:?}", r.qc.warnings);
        let mask = par_map(&r.labels, |v| u8::from(v != 0));
        assert!(dice(&mask, &truth) >= 0.98, "dice {}", dice(&mask, &truth));
        assert_eq!((r.labels[[75, 50, 30]], r.labels[[75, 50, 100]]), (1, 2));
        // Each lung keeps its own side of the band.
        assert_eq!((r.labels[[75, 50, 45]], r.labels[[75, 50, 85]]), (1, 2));
    }

    #[test]
    fn lung_pieces_rejoin_and_gas_above_a_lung_is_warned_about() {
        // Three pieces of air at 2 mm, each seeded whole: a lung (z 0..20), lung tissue beside
        // it (x 20..40, z 0..10) and gas on top of it (22 mL, centroid above the lung's).
        let (nz, ny, nx) = (40, 20, 40);
        let lung = |z: usize, x: usize| z < 20 && x < 20;
        let tissue = |z: usize, x: usize| z < 10 && x >= 20;
        let gas = |z: usize, y: usize, x: usize| (20..34).contains(&z) && y < 14 && x < 14;
        let seeds = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
            if lung(z, x) {
                1u16
            } else if tissue(z, x) {
                3
            } else if gas(z, y, x) {
                2
            } else {
                0
            }
        });
        let air = seeds.mapv(|s| u8::from(s != 0));
        let hu = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
            if gas(z, y, x) {
                -1000i16
            } else if seeds[[z, y, x]] != 0 {
                -850
            } else {
                40
            }
        });
        let vol = Volume::new(
            VolumeData::I16(hu),
            crate::geometry::Geometry::identity([2.0; 3]),
            crate::meta::Meta { kind: Kind::Hu, ..Default::default() },
        );
        let source = Seeded::Few(grow_from_blocks(&seeds.view(), [1, 1, 1], &air));
        let mut lungs = vec![vec![1u32]];
        let mut qc = LungQc::default();
        let boxes = rejoin_lung_pieces(&vol, &source, &mut lungs, &mut qc);
        assert_eq!(lungs, vec![vec![1, 3]]);
        assert!((qc.rejoined_ml - 10.0 * 20.0 * 20.0 * 0.008).abs() < 1e-9, "{qc:?}");
        assert!((qc.adjacent_air_left_out_ml - 14.0 * 14.0 * 14.0 * 0.008).abs() < 1e-9, "{qc:?}");
        assert!(
            qc.warnings
                .iter()
                .any(|w| w.contains("22 mL of air touching a lung was left out as gas") && w.contains("above the lung's middle")),
            "{qc:?}"
        );
        assert_eq!(boxes.len(), 3);
        // Below the lung's middle (gas under the diaphragm) the same gas is not warned about.
        let flipped = Volume {
            geometry: crate::geometry::Geometry { direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], ..vol.geometry },
            ..vol
        };
        let mut qc = LungQc::default();
        rejoin_lung_pieces(&flipped, &source, &mut [vec![1u32]], &mut qc);
        assert!(qc.adjacent_air_left_out_ml > 0.0 && qc.warnings.is_empty(), "{qc:?}");
    }

    #[test]
    fn a_closed_tube_is_taken_as_the_trachea_only_when_long() {
        // Head at the last slice; no tube reaches the lung (z 2..12). A 20 mm pocket at the top
        // (a sinus) is passed over; a 50 mm tube below it (a trachea blocked by mucus) is taken.
        let (nz, ny, nx) = (90, 40, 40);
        let sinus = |z: usize, y: usize, x: usize| z >= 70 && (10..16).contains(&y) && (17..23).contains(&x);
        let tube = |z: usize, y: usize, x: usize| (15..65).contains(&z) && (18..23).contains(&y) && (18..23).contains(&x);
        let lung = |z: usize, y: usize, x: usize| (2..12).contains(&z) && (5..35).contains(&y) && (5..35).contains(&x);
        let mut air = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| u8::from(sinus(z, y, x) || tube(z, y, x) || lung(z, y, x)));
        let body = Array3::<u8>::ones((nz, ny, nx));
        let tree = track_airways(&mut air, &Runs::new(&body.view(), |v| v != 0).mean_x_per_slice(), [1.0; 3], true);
        assert_eq!(tree.len(), 50 * 25);
        let at = |i: usize| (i / (ny * nx), i / nx % ny, i % nx);
        assert!(tree.iter().all(|&i| {
            let (z, y, x) = at(i);
            tube(z, y, x)
        }));
        // Everything passed over is air again; the tree is marked.
        assert!(air.indexed_iter().all(|((z, y, x), &v)| v == if tube(z, y, x) { 2 } else { u8::from(sinus(z, y, x) || lung(z, y, x)) }));
        // Shorter than 40 mm, the same blocked tube is not taken.
        let mut air =
            Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| u8::from(sinus(z, y, x) || (tube(z, y, x) && z >= 40) || lung(z, y, x)));
        assert!(track_airways(&mut air, &Runs::new(&body.view(), |v| v != 0).mean_x_per_slice(), [1.0; 3], true).is_empty());
    }
}
