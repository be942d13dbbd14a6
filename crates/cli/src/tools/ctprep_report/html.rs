//! The page: one self-contained HTML file (inline CSS and script, no network).

use super::gather::Patient;
use anyhow::Result;
use base64::Engine;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// How the thumbnails reach the page.
pub struct Images<'a> {
    /// Inside the page as data: URLs, or linked relative to `page_dir`.
    pub embed: bool,
    pub page_dir: &'a Path,
}

/// Text for HTML: the patient folder names and the tools' messages are not ours.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `target` relative to `from` (both made absolute), for a link that survives moving the
/// dataset folder with its report.
fn relative(target: &Path, from: &Path) -> Option<String> {
    let target = std::fs::canonicalize(target).ok()?;
    let from = std::fs::canonicalize(from).ok()?;
    let (t, f): (Vec<Component>, Vec<Component>) = (target.components().collect(), from.components().collect());
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    // A URL path: percent-encode what a file name may hold but a URL may not.
    let mut url = String::new();
    for b in rel.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' | b'~' => url.push(b as char),
            _ => write!(url, "%{b:02X}").ok()?,
        }
    }
    Some(url)
}

fn image(path: &Option<PathBuf>, alt: &str, images: &Images) -> String {
    let src = path.as_ref().and_then(|p| {
        if images.embed {
            let bytes = std::fs::read(p).ok()?;
            Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
        } else {
            relative(p, images.page_dir)
        }
    });
    match src {
        Some(src) => format!(r#"<img src="{}" alt="{}" loading="lazy">"#, esc(&src), esc(alt)),
        None => r#"<span class="none">no picture</span>"#.to_string(),
    }
}

/// A sortable cell: `data-v` holds the value the script sorts on (empty sorts last).
fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!(r#"<td class="num" data-v="{v}">{v:.digits$}</td>"#),
        _ => r#"<td class="num" data-v="">-</td>"#.to_string(),
    }
}

fn txt(v: &str, sort: &str) -> String {
    format!(r#"<td data-v="{}">{}</td>"#, esc(sort), v)
}

const COLUMNS: [(&str, &str); 16] = [
    ("patient", "Patient"),
    ("flags", "Flags"),
    ("axial", "Axial"),
    ("coronal", "Coronal"),
    ("total", "Lungs mL"),
    ("right", "Right mL"),
    ("left", "Left mL"),
    ("ratio", "R/L"),
    ("body", "Body %"),
    ("components", "Air parts"),
    ("fallback", "Fallback"),
    ("slices", "Slices"),
    ("spacing", "Slice mm"),
    ("tilt", "Tilt °"),
    ("gaps", "Gaps"),
    ("notes", "Series, warnings, error"),
];

fn row(p: &Patient, images: &Images) -> String {
    let q = p.lungs.clone().unwrap_or_default();
    let ratio = match (q.right_ml, q.left_ml) {
        (Some(r), Some(l)) if l > 0.0 => Some(r / l),
        _ => None,
    };
    let mut class = Vec::new();
    if p.failure.is_some() {
        class.push("failed");
    }
    if !p.flags.is_empty() {
        class.push("flagged");
    }
    let flags: String = p.flags.iter().map(|f| format!("<li>{}</li>", esc(f))).collect();
    let mut notes = String::new();
    if let Some(f) = &p.failure {
        write!(notes, r#"<div class="error">{}</div>"#, esc(&f.error)).ok();
        if !f.hint.is_empty() {
            write!(notes, r#"<div class="hint">hint: {}</div>"#, esc(&f.hint)).ok();
        }
    }
    let s = &p.series;
    if let Some(d) = &s.description {
        write!(notes, "<div>{}{}</div>", esc(d), s.patient_position.as_deref().map(|p| format!(" ({})", esc(p))).unwrap_or_default()).ok();
    }
    if let Some(c) = &s.chosen {
        write!(notes, r#"<div class="chosen">{}</div>"#, esc(c)).ok();
    }
    for w in &p.warnings {
        write!(notes, r#"<div class="warning">{}</div>"#, esc(w)).ok();
    }
    let sort_note = p.failure.as_ref().map(|f| f.error.clone()).unwrap_or_default();
    let cells = [
        txt(&format!("<b>{}</b>", esc(&p.name)), &p.name),
        // Failures sort above any number of flags.
        format!(r#"<td data-v="{}"><ul class="flags">{flags}</ul></td>"#, p.flags.len() + if p.failure.is_some() { 1000 } else { 0 }),
        format!("<td>{}</td>", image(&p.axial, &format!("{} axial", p.name), images)),
        format!("<td>{}</td>", image(&p.coronal, &format!("{} coronal", p.name), images)),
        num(q.total_ml, 0),
        num(q.right_ml, 0),
        num(q.left_ml, 0),
        num(ratio, 2),
        num(q.body_fraction.map(|f| f * 100.0), 1),
        num(q.components.map(|c| c as f64), 0),
        txt(&esc(q.fallback.as_deref().unwrap_or("")), q.fallback.as_deref().unwrap_or("")),
        num(s.slices.map(|n| n as f64), 0),
        num(s.slice_spacing_mm, 2),
        num(s.tilt_deg, 1),
        num(s.gaps.map(|n| n as f64), 0),
        txt(&notes, &sort_note),
    ];
    format!(r#"<tr id="p-{}" data-patient="{}" class="{}">{}</tr>"#, esc(&p.name), esc(&p.name), class.join(" "), cells.concat())
}

/// Lung volumes in 500 mL bins, as an inline SVG bar chart.
fn histogram(rows: &[Patient]) -> String {
    let totals: Vec<f64> = rows.iter().filter_map(|p| p.lungs.as_ref()?.total_ml).collect();
    if totals.is_empty() {
        return r#"<p class="none">no lung volumes to plot</p>"#.into();
    }
    const BIN: f64 = 500.0;
    let bins = ((totals.iter().cloned().fold(0.0, f64::max) / BIN).floor() as usize + 1).max(8);
    let mut counts = vec![0usize; bins];
    for t in &totals {
        counts[((t.max(0.0) / BIN) as usize).min(bins - 1)] += 1;
    }
    let tallest = *counts.iter().max().unwrap_or(&1) as f64;
    // `pad` leaves room for the count over the tallest bar.
    let (w, h, bar, pad) = (bins as f64 * 28.0 + 40.0, 140.0, 24.0, 14.0);
    let mut svg = format!(
        r#"<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img" aria-label="histogram of total lung volumes">"#,
        pad + h + 30.0
    );
    for (i, &c) in counts.iter().enumerate() {
        let x = 30.0 + i as f64 * 28.0;
        let bh = c as f64 / tallest * h;
        write!(
            svg,
            r#"<rect class="bar" data-count="{c}" x="{x}" y="{}" width="{bar}" height="{bh}"><title>{}-{} mL: {c}</title></rect>"#,
            pad + h - bh,
            i as f64 * BIN,
            (i + 1) as f64 * BIN
        )
        .ok();
        if c > 0 {
            write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{c}</text>"#, x + bar / 2.0, pad + h - bh - 3.0).ok();
        }
        if i % 2 == 0 {
            write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{:.1}</text>"#, x, pad + h + 16.0, i as f64 * BIN / 1000.0).ok();
        }
    }
    write!(svg, r#"<text x="{}" y="{}" text-anchor="end">litres</text></svg>"#, w, pad + h + 28.0).ok();
    svg
}

pub fn page(rows: &[Patient], stats: Option<(f64, u64)>, images: &Images) -> Result<String> {
    let failed: Vec<&Patient> = rows.iter().filter(|p| p.failure.is_some()).collect();
    let flagged = rows.iter().filter(|p| !p.flags.is_empty()).count();
    let mut h = String::new();
    write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ctprep QC report ({n} patients)</title><style>{STYLE}</style></head>
<body>
<h1>ctprep QC report</h1>
<section id="summary">
<p class="counts"><span id="n-patients">{n}</span> patients: <span id="n-ok">{ok}</span> processed, <span id="n-failed">{nf}</span> failed, <span id="n-flagged">{flagged}</span> flagged. Dataset mean (subtracted from the inputs): <span id="mean">{mean}</span>.</p>
"#,
        n = rows.len(),
        ok = rows.len() - failed.len(),
        nf = failed.len(),
        mean = stats.map(|(m, c)| format!("{m:.4} (fitted over {c} volumes)")).unwrap_or_else(|| "not fitted".into()),
    )?;
    if !failed.is_empty() {
        h.push_str(r#"<div id="failed"><h2>Failed patients</h2><ul>"#);
        for p in &failed {
            let f = p.failure.as_ref().expect("filtered on failure");
            write!(
                h,
                r##"<li data-patient="{name}"><a href="#p-{name}">{name}</a> at {step}: <span class="error">{err}</span>{hint}</li>"##,
                name = esc(&p.name),
                step = esc(&f.step),
                err = esc(&f.error),
                hint = if f.hint.is_empty() { String::new() } else { format!(r#"<div class="hint">hint: {}</div>"#, esc(&f.hint)) }
            )?;
        }
        h.push_str("</ul></div>\n");
    }
    write!(h, "<figure><figcaption>Total lung volume, litres (patients per 0.5 L)</figcaption>{}</figure>\n</section>\n", histogram(rows))?;
    h.push_str(r#"<p class="controls"><label><input type="checkbox" id="only-flagged"> flagged only</label> · click a column to sort</p>"#);
    h.push_str("\n<table id=\"patients\"><thead><tr>");
    for (key, title) in COLUMNS {
        write!(h, r#"<th data-key="{key}">{}</th>"#, esc(title))?;
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for p in rows {
        h.push_str(&row(p, images));
        h.push('\n');
    }
    write!(h, "</tbody></table>\n<script>{SCRIPT}</script>\n</body></html>\n")?;
    Ok(h)
}
