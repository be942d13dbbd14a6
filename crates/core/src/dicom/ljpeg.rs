//! Lossless JPEG (ITU-T T.81 process 14, SOF3) with one component: the codec of most archived CT
//! (transfer syntaxes 1.2.840.10008.1.2.4.57 and .70). One pass from the entropy-coded bytes
//! straight to samples; the general decoder takes whatever this one leaves (restart intervals,
//! several components, point transforms), so it only ever adds speed.

/// Why a stream was not decoded here.
#[derive(Debug, PartialEq)]
pub enum Skip {
    /// A valid stream using something this decoder leaves to the general one.
    Unsupported(&'static str),
    /// A damaged stream (the general decoder gets a chance to say more).
    Corrupt(String),
}

type Res<T> = std::result::Result<T, Skip>;

fn corrupt<T>(m: impl Into<String>) -> Res<T> {
    Err(Skip::Corrupt(m.into()))
}

/// Canonical Huffman table with a 10-bit lookup for the short codes.
#[derive(Clone)]
struct Huffman {
    /// (code length, symbol) by the next 10 bits; length 0 = longer code.
    fast: Vec<(u8, u8)>,
    /// Per length 1..=16: the largest code (-1 = none), and the symbol index offset.
    max_code: [i32; 18],
    offset: [i32; 17],
    symbols: Vec<u8>,
    /// Code and difference bits together, by the next FUSED bits: the difference << 8 | the
    /// bits both take; 0 = longer than FUSED bits (then `fast` and the difference's own read).
    /// Most CT samples (short codes, small differences) cost one lookup.
    fused: Vec<i32>,
}

const LOOKUP: u32 = 10;
const FUSED: u32 = 12;

/// The difference coded by the `s` bits `v` (Table H.2: the lower half of the range is negative).
#[inline(always)]
fn extend(v: i32, s: u8) -> i32 {
    if v < 1 << (s - 1) { v - (1 << s) + 1 } else { v }
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Res<Huffman> {
        let mut fast = vec![(0u8, 0u8); 1 << LOOKUP];
        let mut max_code = [-1i32; 18];
        let mut offset = [0i32; 17];
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = counts[len - 1] as usize;
            offset[len] = k as i32 - code;
            for _ in 0..n {
                let Some(&sym) = symbols.get(k) else { return corrupt("Huffman table shorter than its counts") };
                if code >= 1 << len {
                    return corrupt("Huffman code lengths overflow");
                }
                if len as u32 <= LOOKUP {
                    let shift = LOOKUP - len as u32;
                    let first = (code as usize) << shift;
                    for e in &mut fast[first..first + (1 << shift)] {
                        *e = (len as u8, sym);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                max_code[len] = code - 1;
            }
            code <<= 1;
        }
        max_code[17] = i32::MAX;
        let mut fused = vec![0i32; 1 << FUSED];
        for (first, &(len, sym)) in fast.iter().enumerate() {
            // Each code appears 2^(LOOKUP - len) times in `fast`: take it once, at its first place.
            let len = len as u32;
            if len == 0 || first & ((1 << (LOOKUP - len)) - 1) != 0 {
                continue;
            }
            let code = first >> (LOOKUP - len);
            let extra = match sym {
                0 | 16 => 0,
                1..=15 => sym as u32,
                _ => continue, // the slow path reports it
            };
            if len + extra > FUSED {
                continue;
            }
            for v in 0..1usize << extra {
                let diff = match sym {
                    0 => 0,
                    16 => 32768,
                    _ => extend(v as i32, sym),
                };
                let shift = FUSED - len - extra;
                let at = ((code << extra) | v) << shift;
                for e in &mut fused[at..at + (1 << shift)] {
                    *e = (diff << 8) | (len + extra) as i32;
                }
            }
        }
        Ok(Huffman { fast, max_code, offset, symbols: symbols.to_vec(), fused })
    }
}

/// Entropy-coded bits, MSB first, with 0xFF00 stuffing removed; zeros after a marker or the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    /// Bytes of zeros fed past the end of the data: a few are normal, many mean a damaged stream.
    overrun: usize,
}

impl Bits<'_> {
    #[inline(always)]
    fn refill(&mut self) {
        // Fast path: the next 8 bytes hold no 0xFF (no stuffing, no marker), so as many whole
        // bytes as fit go in at once.
        if let Some(chunk) = self.data.get(self.pos..).and_then(|rest| rest.first_chunk::<8>()) {
            let w = u64::from_be_bytes(*chunk);
            let inverted = !w; // a 0xFF byte is a zero byte here
            if inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080 == 0 {
                let take = (64 - self.n) / 8;
                if take > 0 {
                    self.acc |= (w >> (64 - 8 * take)) << (64 - self.n - 8 * take);
                    self.n += 8 * take;
                    self.pos += take as usize;
                }
                return;
            }
        }
        while self.n <= 56 {
            let mut b = 0u8;
            match self.data.get(self.pos) {
                Some(&0xFF) => {
                    if self.data.get(self.pos + 1) == Some(&0) {
                        b = 0xFF;
                        self.pos += 2;
                    } else {
                        self.overrun += 1; // a marker: the scan's data ended
                    }
                }
                Some(&v) => {
                    b = v;
                    self.pos += 1;
                }
                None => self.overrun += 1,
            }
            self.acc |= (b as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        (self.acc >> (64 - k)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    #[inline(always)]
    fn symbol(&mut self, h: &Huffman) -> Res<u8> {
        if self.n < 32 {
            self.refill();
        }
        let (len, sym) = h.fast[self.peek(LOOKUP) as usize];
        if len != 0 {
            self.consume(len as u32);
            return Ok(sym);
        }
        for len in LOOKUP + 1..=16 {
            let code = self.peek(len) as i32;
            if code <= h.max_code[len as usize] {
                self.consume(len);
                return h.symbols.get((code + h.offset[len as usize]) as usize).copied().map_or_else(|| corrupt("bad Huffman code"), Ok);
            }
        }
        corrupt("bad Huffman code")
    }

    /// The difference coded by magnitude category `s` (Table H.2).
    #[inline(always)]
    fn difference(&mut self, s: u8) -> Res<i32> {
        match s {
            0 => Ok(0),
            1..=15 => {
                if self.n < 32 {
                    self.refill();
                }
                let v = self.peek(s as u32) as i32;
                self.consume(s as u32);
                Ok(extend(v, s))
            }
            16 => Ok(32768),
            _ => corrupt("difference category above 16"),
        }
    }
}

/// Decode a lossless JPEG stream of `rows` x `cols` single-component samples into `out`.
pub fn decode(data: &[u8], rows: usize, cols: usize, out: &mut [u16]) -> Res<()> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return corrupt("no JPEG start-of-image marker");
    }
    let mut pos = 2;
    let mut tables: [Option<Huffman>; 4] = Default::default();
    let mut precision = 0u8;
    let mut frame_seen = false;
    loop {
        // Next marker (fill bytes 0xFF may repeat).
        while pos < data.len() && data[pos] != 0xFF {
            pos += 1;
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else { return corrupt("no scan before the end of the stream") };
        pos += 1;
        if matches!(marker, 0xD0..=0xD9 | 0x01) {
            if marker == 0xD9 {
                return corrupt("end of image before a scan");
            }
            continue;
        }
        let Some(len) = data.get(pos..pos + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
            return corrupt("truncated segment");
        };
        let Some(seg) = data.get(pos + 2..pos + len) else { return corrupt("truncated segment") };
        pos += len;
        match marker {
            0xC3 => {
                if seg.len() < 6 {
                    return corrupt("short SOF3");
                }
                precision = seg[0];
                let (y, x, nf) = (u16::from_be_bytes([seg[1], seg[2]]) as usize, u16::from_be_bytes([seg[3], seg[4]]) as usize, seg[5]);
                if nf != 1 {
                    return Err(Skip::Unsupported("several components"));
                }
                if y != rows || x != cols {
                    return corrupt(format!("JPEG frame {x}x{y} differs from Rows/Columns {cols}x{rows}"));
                }
                if !(2..=16).contains(&precision) {
                    return corrupt(format!("precision {precision}"));
                }
                frame_seen = true;
            }
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => return Err(Skip::Unsupported("not a lossless (SOF3) JPEG")),
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return corrupt("short DHT");
                    }
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    let counts: [u8; 16] = s[1..17].try_into().unwrap_or([0; 16]);
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    let Some(symbols) = s.get(17..17 + n) else { return corrupt("short DHT") };
                    if class == 0 && id < 4 {
                        tables[id] = Some(Huffman::new(&counts, symbols)?);
                    }
                    s = &s[17 + n..];
                }
            }
            0xDD => {
                if seg.len() >= 2 && u16::from_be_bytes([seg[0], seg[1]]) != 0 {
                    return Err(Skip::Unsupported("restart intervals"));
                }
            }
            0xDA => {
                if !frame_seen {
                    return corrupt("scan before the frame header");
                }
                if seg.is_empty() || seg[0] != 1 || seg.len() < 6 {
                    return Err(Skip::Unsupported("several components in a scan"));
                }
                let table = (seg[2] >> 4) as usize;
                let (predictor, point_transform) = (seg[3], seg[5] & 15);
                if point_transform != 0 {
                    return Err(Skip::Unsupported("point transform"));
                }
                if !(1..=7).contains(&predictor) {
                    return Err(Skip::Unsupported("predictor outside 1-7"));
                }
                let Some(h) = tables.get(table).and_then(|t| t.as_ref()) else { return corrupt("scan uses an undefined Huffman table") };
                return scan(&data[pos..], h, precision, predictor, rows, cols, out);
            }
            _ => {} // APPn, COM, DQT...: nothing needed
        }
    }
}

/// Table H.1: the prediction from the samples left (a), above (b) and above-left (c).
#[inline(always)]
fn predict<const P: u8>(ra: i32, rb: i32, rc: i32) -> i32 {
    match P {
        1 => ra,
        2 => rb,
        3 => rc,
        4 => ra + rb - rc,
        5 => ra + ((rb - rc) >> 1),
        6 => rb + ((ra - rc) >> 1),
        _ => (ra + rb) >> 1,
    }
}

/// [`predict`] with the predictor known only at run time (the encoder).
fn predict_any(predictor: u8, ra: i32, rb: i32, rc: i32) -> i32 {
    match predictor {
        1 => predict::<1>(ra, rb, rc),
        2 => predict::<2>(ra, rb, rc),
        3 => predict::<3>(ra, rb, rc),
        4 => predict::<4>(ra, rb, rc),
        5 => predict::<5>(ra, rb, rc),
        6 => predict::<6>(ra, rb, rc),
        _ => predict::<7>(ra, rb, rc),
    }
}

fn scan(data: &[u8], h: &Huffman, precision: u8, predictor: u8, rows: usize, cols: usize, out: &mut [u16]) -> Res<()> {
    // One loop per predictor, so the choice is made once per image instead of per sample.
    let f = match predictor {
        1 => scan_with::<1>,
        2 => scan_with::<2>,
        3 => scan_with::<3>,
        4 => scan_with::<4>,
        5 => scan_with::<5>,
        6 => scan_with::<6>,
        _ => scan_with::<7>,
    };
    f(data, h, precision, rows, cols, out)
}

fn scan_with<const P: u8>(data: &[u8], h: &Huffman, precision: u8, rows: usize, cols: usize, out: &mut [u16]) -> Res<()> {
    if out.len() != rows * cols {
        return corrupt("output size");
    }
    let mut bits = Bits { data, pos: 0, acc: 0, n: 0, overrun: 0 };
    // Inlined into the loops: as a call, the Result came back through memory for every sample.
    #[inline(always)]
    fn next(bits: &mut Bits, h: &Huffman) -> Res<i32> {
        if bits.n < 32 {
            bits.refill();
        }
        let e = h.fused[bits.peek(FUSED) as usize];
        if e != 0 {
            bits.consume((e & 0xFF) as u32);
            return Ok(e >> 8);
        }
        let s = bits.symbol(h)?;
        bits.difference(s)
    }
    let put = |pred: i32, diff: i32| ((pred + diff) & 0xFFFF) as u16;
    // First row: the default value, then the sample to the left (H.1.2.1).
    let first = 1i32 << (precision - 1);
    let mut left = put(first, next(&mut bits, h)?);
    out[0] = left;
    for x in 1..cols {
        left = put(left as i32, next(&mut bits, h)?);
        out[x] = left;
    }
    for y in 1..rows {
        let (above, row) = out[(y - 1) * cols..(y + 1) * cols].split_at_mut(cols);
        // First column: the sample above.
        let mut ra = put(above[0] as i32, next(&mut bits, h)?) as i32;
        row[0] = ra as u16;
        for x in 1..cols {
            ra = put(predict::<P>(ra, above[x] as i32, above[x - 1] as i32), next(&mut bits, h)?) as i32;
            row[x] = ra as u16;
        }
    }
    // Past the data, zeros are fed; more than a few bytes of them means it ended early.
    if bits.overrun > 16 {
        return corrupt("the scan's data ends early");
    }
    Ok(())
}

/// A plain lossless JPEG (SOF3) encoder for fixtures: ct-phantom's `--syntax jpeg-lossless` and
/// the decoder's round-trip tests. One fixed Huffman table in which category k has a (k+2)-bit
/// code (capped at 16), so every category 0..=16 exists; not tuned for size.
pub fn encode(img: &[u16], rows: usize, cols: usize, precision: u8, predictor: u8) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let seg = |out: &mut Vec<u8>, m: u8, body: &[u8]| {
        out.extend([0xFF, m]);
        out.extend(((body.len() + 2) as u16).to_be_bytes());
        out.extend(body);
    };
    seg(&mut out, 0xE0, b"JFIF\0test");
    let mut sof = vec![precision];
    sof.extend((rows as u16).to_be_bytes());
    sof.extend((cols as u16).to_be_bytes());
    sof.extend([1, 1, 0x11, 0]);
    seg(&mut out, 0xC3, &sof);
    // Code lengths: 17 symbols with lengths 2..=18 do not fit 16 bits; use lengths
    // 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,16,16 (a valid prefix code).
    let lens: Vec<usize> = (0..17).map(|k| (k + 2).min(16)).collect();
    let mut counts = [0u8; 16];
    for &l in &lens {
        counts[l - 1] += 1;
    }
    let mut dht = vec![0x00];
    dht.extend(counts);
    dht.extend(0u8..17);
    seg(&mut out, 0xC4, &dht);
    seg(&mut out, 0xDA, &[1, 1, 0x00, predictor, 0, 0]);
    // Canonical codes in symbol order (symbols are listed by increasing length).
    let mut codes = vec![(0u32, 0usize); 17];
    let mut code = 0u32;
    let mut len = 1usize;
    for (k, &l) in lens.iter().enumerate() {
        while len < l {
            code <<= 1;
            len += 1;
        }
        codes[k] = (code, l);
        code += 1;
    }
    // Bit writer: (accumulator, bits in it, bytes out), 0xFF stuffed with 0x00.
    fn push(w: &mut (u64, u32, Vec<u8>), v: u32, k: u32) {
        w.0 = (w.0 << k) | v as u64;
        w.1 += k;
        while w.1 >= 8 {
            let b = (w.0 >> (w.1 - 8)) as u8;
            w.2.push(b);
            if b == 0xFF {
                w.2.push(0);
            }
            w.1 -= 8;
        }
    }
    let mut w = (0u64, 0u32, Vec::new());
    let at = |y: usize, x: usize| img[y * cols + x] as i32;
    for y in 0..rows {
        for x in 0..cols {
            let p = if y == 0 && x == 0 {
                1 << (precision - 1)
            } else if y == 0 {
                at(y, x - 1)
            } else if x == 0 {
                at(y - 1, x)
            } else {
                predict_any(predictor, at(y, x - 1), at(y - 1, x), at(y - 1, x - 1))
            };
            // Difference modulo 2^16, as a signed value in -32767..=32768.
            let mut d = (at(y, x) - p).rem_euclid(65536);
            if d > 32768 {
                d -= 65536;
            }
            let s = if d == 0 { 0 } else { 32 - d.unsigned_abs().leading_zeros() } as usize;
            let (c, l) = codes[s];
            push(&mut w, c, l as u32);
            if (1..16).contains(&s) {
                let v = if d < 0 { d + (1 << s) - 1 } else { d } as u32;
                push(&mut w, v, s as u32);
            }
        }
    }
    if w.1 > 0 {
        let k = 8 - w.1;
        push(&mut w, (1 << k) - 1, k); // pad with ones
    }
    out.extend(w.2);
    out.extend([0xFF, 0xD9]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_every_predictor(rows in 1usize..9, cols in 1usize..9, precision in prop::sample::select(vec![8u8, 12, 16]), predictor in 1u8..8, seed in any::<u64>()) {
            let mut s = seed | 1;
            let img: Vec<u16> = (0..rows * cols).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % (1u64 << precision)) as u16 }).collect();
            let stream = encode(&img, rows, cols, precision, predictor);
            let mut out = vec![0u16; rows * cols];
            decode(&stream, rows, cols, &mut out).unwrap();
            prop_assert_eq!(out, img);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn damaged_streams_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let (rows, cols) = (6, 7);
            let img: Vec<u16> = (0..rows * cols).map(|i| (i * 37 % 4096) as u16).collect();
            let mut stream = encode(&img, rows, cols, 12, 1);
            for (at, v) in flips {
                let i = at % stream.len();
                stream[i] = v;
            }
            stream.truncate(cut % (stream.len() + 1));
            let mut out = vec![0u16; rows * cols];
            let _ = decode(&stream, rows, cols, &mut out);
        }
    }

    #[test]
    fn smooth_ct_like_rows_and_refusals() {
        let (rows, cols) = (16, 20);
        let img: Vec<u16> = (0..rows * cols).map(|i| (1000 + (i % cols) * 3 + (i / cols) * 7) as u16).collect();
        let stream = encode(&img, rows, cols, 16, 1);
        let mut out = vec![0u16; rows * cols];
        decode(&stream, rows, cols, &mut out).unwrap();
        assert_eq!(out, img);
        // Wrong size, truncated data, not a JPEG, a baseline JPEG: refused, never a panic.
        assert!(matches!(decode(&stream, rows + 1, cols, &mut vec![0; (rows + 1) * cols]), Err(Skip::Corrupt(_))));
        assert!(matches!(decode(&stream[..stream.len() / 3], rows, cols, &mut out), Err(Skip::Corrupt(_))));
        assert!(matches!(decode(b"DICM", rows, cols, &mut out), Err(Skip::Corrupt(_))));
        let mut baseline = stream.clone();
        let sof = baseline.windows(2).position(|w| w == [0xFF, 0xC3]).unwrap();
        baseline[sof + 1] = 0xC0;
        assert_eq!(decode(&baseline, rows, cols, &mut out), Err(Skip::Unsupported("not a lossless (SOF3) JPEG")));
    }
}
