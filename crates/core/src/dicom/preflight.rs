//! A walk over a DICOM file's element structure before the real parser sees it, for two things
//! a hostile or corrupt file can do to a recursive parser that allocates by declared length:
//! sequences nested thousands deep (a stack overflow aborts the process, the whole folder lost)
//! and element lengths far beyond the file (gigabytes allocated per file per thread). It reads
//! tags and lengths only, skipping values, and stops at the pixel data; anything it does not
//! understand it leaves to the parser, which reports it.

use crate::error::{Error, Result};
use dicom_dictionary_std::tags;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::Path;

/// Deeper than any real image header (CT nests 3 or 4 levels; structured reports a dozen).
pub const MAX_DEPTH: usize = 64;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (tags::PIXEL_DATA.0, tags::PIXEL_DATA.1);
const PIXEL_REPRESENTATION: (u16, u16) = (tags::PIXEL_REPRESENTATION.0, tags::PIXEL_REPRESENTATION.1);

/// What the walk is inside of: a sequence (item headers come next) or an item (elements).
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Sequence,
    Item,
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
}

/// A reader that counts the bytes it has given out.
struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Counted<R> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).ok()?;
        self.pos += N as u64;
        Some(b)
    }
    fn skip(&mut self, n: u64) -> Option<()> {
        let got = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink()).ok()?;
        self.pos += got;
        (got == n).then_some(())
    }
}

/// Check `path`'s structure; `Ok` also when the walk stops early on something it does not parse.
/// `whole`: the pixel data will be read too, so its length is checked against the file as well
/// (a header scan stops before it, and a truncated slice is then reported when it is decoded).
pub fn check(path: &Path, whole: bool) -> Result<()> {
    let Ok(f) = std::fs::File::open(path) else { return Ok(()) };
    let file_len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    check_from(BufReader::with_capacity(16 << 10, f), file_len, path, whole, &mut None)
}

/// A whole file already in memory: the same check, and where its encapsulated pixel data's
/// fragments are (byte ranges in `bytes`, the basic offset table left out) when the walk reached
/// all of them, so a decoder can take them without parsing the file again. `Ok(None)`: native
/// pixels, a deflated data set, or a walk that stopped early (the parser's business).
pub fn pixel_fragments(bytes: &[u8], path: &Path) -> Result<Option<Vec<Range<usize>>>> {
    let mut fragments = None;
    check_from(bytes, bytes.len() as u64, path, true, &mut fragments)?;
    Ok(fragments.and_then(|f: Vec<Range<u64>>| {
        let f: Vec<Range<usize>> = f.into_iter().skip(1).map(|r| r.start as usize..r.end as usize).collect();
        (!f.is_empty()).then_some(f)
    }))
}

fn check_from<R: BufRead>(reader: R, file_len: u64, path: &Path, whole: bool, fragments: &mut Option<Vec<Range<u64>>>) -> Result<()> {
    let mut r = Counted { inner: reader, pos: 0 };
    // The magic after a 128-byte preamble, or at the very start: the parser's default
    // (ReadPreamble::Auto) accepts both (found by fuzzing: a 179-byte file without a preamble
    // skipped this walk, and the parser filled a 1.8 GB meta element).
    let Some(magic) = r.bytes::<4>() else { return Ok(()) };
    if &magic != b"DICM" {
        let Some(head) = r.bytes::<128>() else { return Ok(()) };
        if &head[124..] != b"DICM" {
            return Ok(());
        }
    }
    // File meta group: always explicit VR little endian; it names the data set's syntax. Read as
    // the parser reads it: elements of any group until FileMetaInformationGroupLength is used up
    // (found by fuzzing: an off-group element inside the meta group moved where the deflated
    // data set starts, and the walk inflated garbage while the parser read a 3.9 GB claim).
    let mut ts = String::new();
    let mut meta_left = None;
    loop {
        match meta_left {
            Some(0) => break,
            Some(_) => {}
            None => {
                let Ok(buf) = r.inner.fill_buf() else { return Ok(()) };
                if buf.len() < 2 || u16::from_le_bytes([buf[0], buf[1]]) != 0x0002 {
                    break;
                }
            }
        }
        let start = r.pos;
        let Some((tag, _, len)) = element(&mut r, Syntax::ExplicitLe) else { return Ok(()) };
        if len == UNDEFINED || r.pos + u64::from(len) > file_len {
            return Err(too_long(path, tag, len, file_len));
        }
        if tag == (0x0002, 0x0000) && len == 4 && meta_left.is_none() {
            let Some(b) = r.bytes::<4>() else { return Ok(()) };
            meta_left = Some(u64::from(u32::from_le_bytes(b)));
            continue;
        }
        if tag == (0x0002, 0x0010) {
            let mut v = vec![0u8; len as usize];
            if r.inner.read_exact(&mut v).is_err() {
                return Ok(());
            }
            r.pos += u64::from(len);
            ts = String::from_utf8_lossy(&v).trim_end_matches(['\0', ' ']).to_string();
        } else if r.skip(u64::from(len)).is_none() {
            return Ok(());
        }
        meta_left = meta_left.map(|left: u64| left.saturating_sub(r.pos - start));
    }
    let (syntax, deflated) = match ts.as_str() {
        "1.2.840.10008.1.2" => (Syntax::ImplicitLe, false),
        "1.2.840.10008.1.2.2" => (Syntax::ExplicitBe, false),
        "1.2.840.10008.1.2.1.99" => (Syntax::ExplicitLe, true),
        _ => (Syntax::ExplicitLe, false),
    };
    if deflated {
        // The data set is a raw deflate stream: walk the inflated bytes, whose lengths are bounded
        // by what deflate can inflate to (about 1032:1). (Found by fuzzing: an element inside a
        // deflated data set claimed 1.9 GB.)
        let rest = r.inner;
        // Unbuffered: reads as small as the parser's, so a corrupt stream further on does not hide
        // the element headers before it.
        let mut inflated = Counted { inner: flate2::bufread::DeflateDecoder::new(rest), pos: 0 };
        return walk(&mut inflated, syntax, file_len.saturating_mul(1032), path, whole, &mut None);
    }
    walk(&mut r, syntax, file_len, path, whole, fragments)
}

/// The data set: a stack of open sequences and items (their end offset when their length is
/// defined), popped as delimiters or ends are reached.
/// `fragments`: filled with the byte ranges of the top-level encapsulated pixel data's items.
fn walk<R: Read>(
    r: &mut Counted<R>,
    syntax: Syntax,
    file_len: u64,
    path: &Path,
    whole: bool,
    fragments: &mut Option<Vec<Range<u64>>>,
) -> Result<()> {
    // Open sequences and items, with their end when their length is defined. Inside a sequence
    // the parser reads item headers; anywhere else elements, where even an item or sequence
    // delimiter tag is an element with a value (found by fuzzing: a stray (FFFE,E0DD) with a
    // length of 4 GB, which the walk took for a delimiter and the parser allocated).
    let mut open: Vec<(Option<u64>, Open)> = Vec::new();
    // The parser reads every US-or-SS element as SS, whatever VR the file gives it, once it has
    // read a PixelRepresentation of 1 (found by fuzzing: a PixelPaddingValue marked SQ with a
    // 32-bit length of 1.1 GB, which the walk entered as a sequence and the parser allocated).
    let mut signed = false;
    loop {
        while open.last().is_some_and(|(end, _)| end.is_some_and(|e| r.pos >= e)) {
            open.pop();
        }
        if open.len() > MAX_DEPTH {
            return Err(Error::bad_input(format!("sequences nested more than {MAX_DEPTH} deep (at byte {})", r.pos))
                .with_path(path)
                .with_hint("no image header nests like this: the file is corrupt or made to crash readers; leave it out"));
        }
        let Some((tag, vr, len)) = element(r, syntax) else { return Ok(()) };
        // Sequences and items of a defined length must fit the file too, as values must.
        let fits = len == UNDEFINED || r.pos.saturating_add(u64::from(len)) <= file_len;
        let end = (len != UNDEFINED).then(|| r.pos + u64::from(len));
        if open.last().is_some_and(|(_, o)| *o == Open::Sequence) {
            match tag {
                ITEM if fits => open.push((end, Open::Item)),
                ITEM => return Err(too_long(path, tag, len, file_len)),
                // Either delimiter closes what is open, as the parser has it.
                ITEM_END | SEQ_END => {
                    open.pop();
                }
                // The parser stops here with an error of its own.
                _ => return Ok(()),
            }
            continue;
        }
        match tag {
            // Outside any sequence the parser skips a stray item end; inside an item it ends it.
            ITEM_END => {
                open.pop();
            }
            // A header scan stops at the pixel data. Read whole, it and whatever follows it must
            // fit the file too (found by fuzzing: a length of 0xFFFFFFFD, and an element after
            // the pixels claiming 2.6 GB).
            PIXEL_DATA if open.is_empty() && !whole => return Ok(()),
            // Encapsulated pixels (an icon image's too): fragments, not elements.
            PIXEL_DATA if len == UNDEFINED => {
                let mut items = Vec::new();
                if !fragments_fit(r, syntax, file_len, path, &mut items)? {
                    return Ok(());
                }
                if open.is_empty() {
                    *fragments = Some(items);
                }
            }
            _ => {
                // The parser reads any other undefined length as a sequence of items too (found by
                // fuzzing: an OB of undefined length hid an element claiming 2.6 GB).
                // The VR the parser reads the value as: the file's, or in implicit VR the
                // dictionary's; US-or-SS elements as SS once the pixels are signed.
                let vr = if signed && is_us_or_ss(tag) { *b"SS" } else { value_vr(syntax, tag, vr) };
                if !fits {
                    return Err(too_long(path, tag, len, file_len));
                }
                if len == UNDEFINED || vr == *b"SQ" {
                    open.push((end, Open::Sequence));
                } else {
                    let read = value_bytes(vr, len);
                    let mut skip = read;
                    if tag == PIXEL_REPRESENTATION && read >= 2 && vr == *b"US" {
                        let Some(b) = r.bytes::<2>() else { return Ok(()) };
                        let first = if syntax == Syntax::ExplicitBe { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) };
                        signed = first != 0;
                        skip -= 2;
                    }
                    if r.skip(skip).is_none() {
                        return Ok(());
                    }
                    // The parser counts the whole length as read (item ends are measured so).
                    r.pos += u64::from(len) - read;
                }
            }
        }
    }
}

/// Skip the fragments of encapsulated pixel data, each checked against the file; `Ok(false)`
/// when the walk cannot go on (something it does not parse: the parser's business).
/// `items`: each item's value range.
fn fragments_fit<R: Read>(r: &mut Counted<R>, syntax: Syntax, file_len: u64, path: &Path, items: &mut Vec<Range<u64>>) -> Result<bool> {
    loop {
        let Some((t, _, l)) = element(r, syntax) else { return Ok(false) };
        match t {
            ITEM if l != UNDEFINED && r.pos.saturating_add(u64::from(l)) <= file_len => {
                items.push(r.pos..r.pos + u64::from(l));
                if r.skip(u64::from(l)).is_none() {
                    return Ok(false);
                }
            }
            ITEM => return Err(too_long(path, t, l, file_len)),
            SEQ_END => return Ok(true),
            _ => return Ok(false),
        }
    }
}

/// Tag, VR (explicit syntaxes; blank otherwise) and value length of the next element.
fn element<R: Read>(r: &mut Counted<R>, syntax: Syntax) -> Option<((u16, u16), [u8; 2], u32)> {
    let be = syntax == Syntax::ExplicitBe;
    let u16_ = |b: [u8; 2]| if be { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) };
    let u32_ = |b: [u8; 4]| if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
    let t = r.bytes::<4>()?;
    // Item and delimiter tags are always little endian in LE syntaxes, and carry no VR.
    let tag = (u16_([t[0], t[1]]), u16_([t[2], t[3]]));
    if tag.0 == 0xFFFE {
        return Some((tag, [b' '; 2], u32_(r.bytes::<4>()?)));
    }
    if syntax == Syntax::ImplicitLe {
        return Some((tag, [b' '; 2], u32_(r.bytes::<4>()?)));
    }
    let vr = r.bytes::<2>()?;
    // The VRs with a 16-bit length; every other one, unknown ones included (as the parser reads
    // them), has two reserved bytes and a 32-bit length.
    let short = matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    );
    let long = !short;
    let len = if long {
        r.bytes::<2>()?;
        u32_(r.bytes::<4>()?)
    } else {
        u32::from(u16_(r.bytes::<2>()?))
    };
    Some((tag, vr, len))
}

/// The bytes the parser reads of a value of `len`: binary numbers as whole numbers only (found
/// by fuzzing: a UL of length 106 is read as 26 values, 104 bytes, and the next element then
/// starts 2 bytes early, where the walk saw another one); everything else whole.
fn value_bytes(vr: [u8; 2], len: u32) -> u64 {
    let size = match &vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"UL" | b"SL" | b"FL" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    };
    u64::from(len) / size * size
}

/// The VR the parser reads a value as: the file's (explicit syntaxes), else the dictionary's.
fn value_vr(syntax: Syntax, tag: (u16, u16), vr: [u8; 2]) -> [u8; 2] {
    if syntax == Syntax::ImplicitLe { implicit_vr(tag) } else { vr }
}

/// The VR the parser gives a tag in implicit VR: the dictionary's, relaxed as the parser relaxes
/// it (US-or-SS as US, OB-or-OW as OW), UN when the dictionary does not know the tag.
fn implicit_vr(tag: (u16, u16)) -> [u8; 2] {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let vr =
        dicom_dictionary_std::StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1)).map_or(dicom_core::VR::UN, |e| e.vr().relaxed());
    let b = vr.to_string().as_bytes();
    [b[0], b[1]]
}

/// Elements the dictionary types "US or SS" (pixel padding, smallest/largest values...).
fn is_us_or_ss(tag: (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1)).is_some_and(|e| e.vr() == VirtualVr::Xs)
}

fn too_long(path: &Path, tag: (u16, u16), len: u32, file_len: u64) -> Error {
    let what = if len == UNDEFINED { "an undefined length where none is allowed".to_string() } else { format!("a length of {len} bytes") };
    Error::bad_input(format!("element ({:04X},{:04X}) claims {what}, beyond the file's {file_len} bytes", tag.0, tag.1))
        .with_path(path)
        .with_hint("the file is truncated or corrupt: re-copy or re-export it")
}
