//! Reading tags the way people ask for them: by keyword, `(gggg,eeee)`, or a path into
//! sequences (`SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing`), and
//! printing values the way pydicom does (`print(ds)`, `ds.PatientID`, `ds.data_element(...)`).

use super::header::{strings, transfer_syntax_name};
use crate::error::{Error, Result};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

/// One step of a tag path: a tag and, for sequences, an item index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub tag: Tag,
    pub item: Option<usize>,
}

/// Parse `PatientID`, `0010,0020`, `(0010,0020)`, `00100020`, or a dotted path with `[i]` items.
pub fn parse_tag_path(s: &str) -> Result<Vec<PathStep>> {
    let bad = |why: String| Error::usage(why).with_hint("name a tag by keyword (PatientID), as (0010,0020), or as a path Seq[0].Keyword");
    let mut steps = Vec::new();
    // Split on '.' outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.trim().chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            '.' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let (name, item) = match p.find('[') {
            Some(i) if p.ends_with(']') => {
                let idx = p[i + 1..p.len() - 1].parse::<usize>().map_err(|_| bad(format!("bad item index in '{p}'")))?;
                (&p[..i], Some(idx))
            }
            _ => (p.as_str(), None),
        };
        let tag = parse_tag(name).ok_or_else(|| bad(format!("unknown tag or keyword '{name}'")))?;
        steps.push(PathStep { tag, item });
    }
    if steps.is_empty() {
        return Err(bad("empty tag".into()));
    }
    Ok(steps)
}

/// A single tag from a keyword or hex form.
pub fn parse_tag(s: &str) -> Option<Tag> {
    let t = s.trim();
    let hex = t.trim_start_matches('(').trim_end_matches(')').replace([',', ' '], "");
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let g = u16::from_str_radix(&hex[..4], 16).ok()?;
        let e = u16::from_str_radix(&hex[4..], 16).ok()?;
        return Some(Tag(g, e));
    }
    StandardDataDictionary.by_name(t).map(|e| e.tag())
}

/// The keyword of a tag ("Unknown" for private or unlisted tags).
pub fn keyword(tag: Tag) -> String {
    if tag.group() % 2 == 1 {
        return if tag.element() < 0x0100 { "PrivateCreator".into() } else { "Private".into() };
    }
    StandardDataDictionary.by_tag(tag).map(|e| e.alias().to_string()).unwrap_or_else(|| "Unknown".into())
}

pub fn tag_str(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

/// Find the element a path points at.
pub fn resolve<'a>(obj: &'a InMemDicomObject, path: &[PathStep]) -> Option<&'a InMemElement> {
    let (last, init) = path.split_last()?;
    let mut cur = obj;
    for step in init {
        let e = cur.get(step.tag)?;
        cur = e.items()?.get(step.item.unwrap_or(0))?;
    }
    let e = cur.get(last.tag)?;
    Some(e)
}

/// Put the file meta elements (group 0002) into the dataset, so a tag lookup finds
/// TransferSyntaxUID and its neighbours like any other element (dicom-rs keeps them apart).
pub fn merge_meta(obj: &mut dicom_object::DefaultDicomObject) {
    let meta: Vec<InMemElement> =
        obj.meta().to_element_iter().filter_map(|e| e.value().primitive().map(|v| InMemElement::new(e.tag(), e.vr(), v.clone()))).collect();
    for e in meta {
        obj.put(e);
    }
}

fn is_binary(vr: VR) -> bool {
    matches!(vr, VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN)
}

fn is_numeric_string(vr: VR) -> bool {
    matches!(vr, VR::DS | VR::IS)
}

fn fmt_num(p: &PrimitiveValue) -> Vec<String> {
    match p {
        PrimitiveValue::F32(v) => v.iter().map(|x| format_float(*x as f64)).collect(),
        PrimitiveValue::F64(v) => v.iter().map(|x| format_float(*x)).collect(),
        PrimitiveValue::Tags(v) => v.iter().map(|t| tag_str(*t)).collect(),
        other => strings(other),
    }
}

/// Floats as Python prints them (`1.0`, `0.5`, `1e-05`).
fn format_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 { format!("{x:.1}") } else { format!("{x}") }
}

/// The value as `ds.Keyword` prints it in pydicom: strings bare, multi-values as `[a, b]`.
pub fn value_string(e: &InMemElement) -> String {
    render(e, false)
}

/// The value as it appears in pydicom's element line (`LO: 'value'`).
pub fn element_value(e: &InMemElement) -> String {
    render(e, true)
}

fn render(e: &InMemElement, quoted: bool) -> String {
    let vr = e.vr();
    match e.value() {
        Value::Sequence(seq) => format!("<Sequence, length {}>", seq.items().len()),
        Value::PixelSequence(ps) => format!("<encapsulated pixel data: {} fragment(s)>", ps.fragments().len()),
        Value::Primitive(p) => {
            if is_binary(vr) {
                let n = p.calculate_byte_len();
                return if n <= 16 { format!("{:?}", p.to_bytes()) } else { format!("Array of {n} bytes") };
            }
            let numeric = !matches!(
                p,
                PrimitiveValue::Str(_)
                    | PrimitiveValue::Strs(_)
                    | PrimitiveValue::Date(_)
                    | PrimitiveValue::Time(_)
                    | PrimitiveValue::DateTime(_)
            );
            let items: Vec<String> = if numeric { fmt_num(p) } else { strings(p) };
            let stringy = !numeric && !is_numeric_string(vr);
            let q = |s: &String| {
                if stringy || (quoted && is_numeric_string(vr) && items.len() == 1) { format!("'{s}'") } else { s.clone() }
            };
            match items.len() {
                0 => String::new(),
                1 if !quoted || vr == VR::UI => items[0].clone(),
                1 => {
                    if stringy || is_numeric_string(vr) {
                        format!("'{}'", items[0])
                    } else {
                        items[0].clone()
                    }
                }
                _ => {
                    let shown: Vec<String> = items.iter().map(q).collect();
                    let s = format!("[{}]", shown.join(", "));
                    if s.len() > 200 { format!("[{}, ...] ({} values)", shown[..4.min(shown.len())].join(", "), shown.len()) } else { s }
                }
            }
        }
    }
}

/// One element line: `(0010,0020) PatientID                     LO: 'value'`.
pub fn element_line(e: &InMemElement, indent: usize) -> String {
    let kw = keyword(e.tag());
    let pad = " ".repeat(indent * 2);
    let mut line = format!("{pad}{} {:<36} {}: {}", tag_str(e.tag()), kw, e.vr(), element_value(e));
    if e.tag() == tags::PIXEL_DATA {
        line = format!("{pad}{} {:<36} {}: {}", tag_str(e.tag()), kw, e.vr(), render_pixel_summary(e));
    }
    line
}

fn render_pixel_summary(e: &InMemElement) -> String {
    match e.value() {
        Value::PixelSequence(ps) => format!("<encapsulated pixel data: {} fragment(s)>", ps.fragments().len()),
        Value::Primitive(p) => format!("Array of {} bytes", p.calculate_byte_len()),
        _ => String::new(),
    }
}

/// Every element (file meta first, sequences indented), like pydicom's `print(ds)`.
pub fn dump_lines(obj: &dicom_object::DefaultDicomObject, notes: &dyn Fn(&InMemElement) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    let meta = obj.meta();
    let ts = meta.transfer_syntax().trim_end_matches('\0');
    let meta_rows = [
        (tags::MEDIA_STORAGE_SOP_CLASS_UID, "UI", meta.media_storage_sop_class_uid().trim_end_matches('\0').to_string()),
        (tags::MEDIA_STORAGE_SOP_INSTANCE_UID, "UI", meta.media_storage_sop_instance_uid.trim_end_matches('\0').to_string()),
        (tags::TRANSFER_SYNTAX_UID, "UI", format!("{} ({})", ts, transfer_syntax_name(ts).split(" (").next().unwrap_or(""))),
        (tags::IMPLEMENTATION_CLASS_UID, "UI", meta.implementation_class_uid.trim_end_matches('\0').to_string()),
    ];
    for (t, vr, v) in meta_rows {
        out.push(format!("{} {:<36} {}: {}", tag_str(t), keyword(t), vr, v));
    }
    dump_dataset(obj, 0, &mut out, notes);
    out
}

fn dump_dataset(obj: &InMemDicomObject, indent: usize, out: &mut Vec<String>, notes: &dyn Fn(&InMemElement) -> Option<String>) {
    for e in obj.iter() {
        let mut line = element_line(e, indent);
        if let Some(n) = notes(e) {
            line.push_str("  # ");
            line.push_str(&n);
        }
        out.push(line);
        if let Some(items) = e.items() {
            for (i, item) in items.iter().enumerate() {
                out.push(format!("{}  item {} of {}", " ".repeat(indent * 2), i, keyword(e.tag())));
                dump_dataset(item, indent + 2, out, notes);
            }
        }
    }
}

/// Sorted keywords present in the dataset (top level), filtered case-insensitively, as
/// pydicom's `ds.dir(filter)`.
pub fn keywords(obj: &InMemDicomObject, filter: Option<&str>) -> Vec<String> {
    let f = filter.map(|s| s.to_ascii_lowercase());
    let mut v: Vec<String> = obj
        .iter()
        .map(|e| e.tag())
        .filter(|t| t.group() % 2 == 0)
        .filter_map(|t| StandardDataDictionary.by_tag(t).map(|e| e.alias().to_string()))
        .filter(|k| f.as_ref().is_none_or(|f| k.to_ascii_lowercase().contains(f)))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A JSON value for `--tag` output in JSON modes (numbers as numbers, multi-values as arrays).
pub fn value_json(e: &InMemElement) -> serde_json::Value {
    use serde_json::Value as J;
    match e.value() {
        Value::Sequence(seq) => J::String(format!("<Sequence, length {}>", seq.items().len())),
        Value::PixelSequence(_) => J::Null,
        Value::Primitive(p) => {
            if is_binary(e.vr()) {
                return J::String(format!("<{} bytes>", p.calculate_byte_len()));
            }
            // Integer VRs stay integers (Rows 512, not 512.0) and decimals stay decimals (DS -145
            // is -145.0), as pydicom gives them.
            let decimal = matches!(e.vr(), dicom_core::VR::DS | dicom_core::VR::FL | dicom_core::VR::FD);
            let as_num = |s: &str| match s.parse::<i64>() {
                Ok(i) if !decimal => Some(J::from(i)),
                _ => s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(J::Number),
            };
            let strs: Vec<String> = match p {
                PrimitiveValue::Str(_)
                | PrimitiveValue::Strs(_)
                | PrimitiveValue::Date(_)
                | PrimitiveValue::Time(_)
                | PrimitiveValue::DateTime(_) => strings(p),
                _ => fmt_num(p),
            };
            let numeric = is_numeric_string(e.vr())
                || !matches!(
                    p,
                    PrimitiveValue::Str(_)
                        | PrimitiveValue::Strs(_)
                        | PrimitiveValue::Date(_)
                        | PrimitiveValue::Time(_)
                        | PrimitiveValue::DateTime(_)
                        | PrimitiveValue::Tags(_)
                );
            let conv = |s: &String| {
                if numeric { as_num(s).unwrap_or(J::String(s.clone())) } else { J::String(s.clone()) }
            };
            match strs.len() {
                0 => J::Null,
                1 => conv(&strs[0]),
                _ => J::Array(strs.iter().map(conv).collect()),
            }
        }
    }
}

/// The value of a US element as written in an explicit-VR little-endian file, when the parser
/// has reinterpreted it: dicom-rs turns PixelPaddingValue (0028,0120) and PixelPaddingRangeLimit
/// (0028,0121) into SS when pixels are signed, but the file (and pydicom) say `US 63536`.
pub fn raw_us_value(file_head: &[u8], tag: Tag) -> Option<u16> {
    let [g0, g1] = tag.group().to_le_bytes();
    let [e0, e1] = tag.element().to_le_bytes();
    let pat = [g0, g1, e0, e1, b'U', b'S', 2, 0];
    // Only the part before the pixel data.
    let end = file_head.windows(4).position(|w| w == [0xE0, 0x7F, 0x10, 0x00]).unwrap_or(file_head.len());
    let head = &file_head[..end];
    let i = head.windows(8).position(|w| w == pat)?;
    let v = head.get(i + 8..i + 10)?;
    Some(u16::from_le_bytes([v[0], v[1]]))
}

/// The first 64 KiB of a file (where the header elements are), or nothing when it cannot be read.
pub fn file_head(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(64 * 1024).read_to_end(&mut buf);
    }
    buf
}

/// Put back the `US` value the file holds for padding tags that dicom-rs re-typed as `SS`
/// (see [`raw_us_value`]), so every view of the object (a tag, an element line, JSON, the
/// dump) shows what the file and pydicom say: `US 63536`, not `SS -2000`.
pub fn restore_padding_vr(obj: &mut InMemDicomObject, file_head: &[u8]) {
    for tag in [tags::PIXEL_PADDING_VALUE, tags::PIXEL_PADDING_RANGE_LIMIT] {
        if let Some(raw) = raw_us_value(file_head, tag) {
            obj.put(InMemElement::new(tag, dicom_core::VR::US, dicom_core::PrimitiveValue::from(raw)));
        }
    }
}

/// Tags whose raw VR dicom-rs may rewrite (see [`raw_us_value`]).
pub fn is_padding_tag(tag: Tag) -> bool {
    tag == tags::PIXEL_PADDING_VALUE || tag == tags::PIXEL_PADDING_RANGE_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::DataElement;

    fn obj() -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        o.put(DataElement::new(Tag(0x0010, 0x0020), VR::LO, PrimitiveValue::from("fe5c37")));
        o.put(DataElement::new(Tag(0x0020, 0x0032), VR::DS, PrimitiveValue::from("-118.900002\\-145.000000\\-75.980003")));
        o.put(DataElement::new(Tag(0x0028, 0x1053), VR::DS, PrimitiveValue::from("1")));
        o.put(DataElement::new(Tag(0x0008, 0x0008), VR::CS, PrimitiveValue::from("ORIGINAL\\PRIMARY\\AXIAL")));
        o.put(DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(512u16)));
        o.put(DataElement::new(Tag(0x0028, 0x0120), VR::US, PrimitiveValue::from(63536u16)));
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(Tag(0x0028, 0x0030), VR::DS, PrimitiveValue::from("0.5\\0.5")));
        let mut outer = InMemDicomObject::new_empty();
        outer.put(DataElement::new(Tag(0x0028, 0x9110), VR::SQ, dicom_core::value::DataSetSequence::from(vec![item])));
        o.put(DataElement::new(Tag(0x5200, 0x9229), VR::SQ, dicom_core::value::DataSetSequence::from(vec![outer])));
        o
    }

    #[test]
    fn tags_parse_in_every_spelling() {
        let t = Tag(0x0010, 0x0020);
        for s in ["PatientID", "0010,0020", "(0010,0020)", "00100020", "(0010, 0020)"] {
            assert_eq!(parse_tag_path(s).unwrap(), vec![PathStep { tag: t, item: None }], "{s}");
        }
        assert!(parse_tag_path("NoSuchKeyword").is_err());
        let p = parse_tag_path("SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], PathStep { tag: Tag(0x0028, 0x9110), item: Some(0) });
    }

    #[test]
    fn values_print_like_pydicom() {
        let o = obj();
        let get = |s: &str| value_string(resolve(&o, &parse_tag_path(s).unwrap()).unwrap());
        assert_eq!(get("PatientID"), "fe5c37");
        assert_eq!(get("ImagePositionPatient"), "[-118.900002, -145.000000, -75.980003]");
        assert_eq!(get("RescaleSlope"), "1");
        assert_eq!(get("ImageType"), "['ORIGINAL', 'PRIMARY', 'AXIAL']");
        assert_eq!(get("Rows"), "512");
        assert_eq!(get("PixelPaddingValue"), "63536");
        assert_eq!(get("SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing"), "[0.5, 0.5]");
        let e = resolve(&o, &parse_tag_path("PatientID").unwrap()).unwrap();
        assert_eq!(element_line(e, 0), format!("(0010,0020) {:<36} LO: 'fe5c37'", "PatientID"));
        let e = resolve(&o, &parse_tag_path("RescaleSlope").unwrap()).unwrap();
        assert!(element_line(e, 0).ends_with("DS: '1'"));
    }

    #[test]
    fn raw_us_padding_is_found_before_pixel_data_only() {
        let mut b = vec![0u8; 10];
        b.extend_from_slice(&[0x28, 0x00, 0x20, 0x01, b'U', b'S', 2, 0, 0x30, 0xF8]);
        assert_eq!(raw_us_value(&b, Tag(0x0028, 0x0120)), Some(63536));
        let mut c = vec![0xE0, 0x7F, 0x10, 0x00];
        c.extend_from_slice(&b);
        assert_eq!(raw_us_value(&c, Tag(0x0028, 0x0120)), None);
    }

    #[test]
    fn keyword_filter_is_case_insensitive_and_sorted() {
        let o = obj();
        assert_eq!(keywords(&o, Some("patient")), vec!["ImagePositionPatient", "PatientID"]);
        assert_eq!(keywords(&o, None).len(), 7);
    }

    #[test]
    fn json_values_are_typed() {
        let o = obj();
        let j = |s: &str| value_json(resolve(&o, &parse_tag_path(s).unwrap()).unwrap());
        assert_eq!(j("Rows"), serde_json::json!(512));
        assert_eq!(j("ImagePositionPatient"), serde_json::json!([-118.900002, -145.0, -75.980003]));
        assert_eq!(j("PatientID"), serde_json::json!("fe5c37"));
    }
}
