//! pigz-style parallel gzip: the payload is cut into blocks that are deflated independently
//! (each ends on a byte boundary with a sync flush), concatenated into ONE gzip member with one
//! CRC, so every gzip reader (including ones that stop after the first member) reads it.

use flate2::{Compress, Compression, FlushCompress};
use rayon::prelude::*;
use std::io::{self, Write};

const BLOCK: usize = 1 << 20;

/// gzip `parts` (concatenated) into `w` at `level` (0-9), compressing blocks in parallel.
pub fn write_parallel(w: &mut dyn Write, parts: &[&[u8]], level: u32) -> io::Result<()> {
    let blocks: Vec<&[u8]> = parts.iter().flat_map(|p| p.chunks(BLOCK)).filter(|b| !b.is_empty()).collect();
    let n = blocks.len();
    let compressed: Vec<io::Result<(Vec<u8>, u32, usize)>> = blocks
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let mut c = Compress::new(Compression::new(level.min(9)), false);
            let mut out = Vec::with_capacity(b.len() / 2 + 1024);
            let flush = if i + 1 == n { FlushCompress::Finish } else { FlushCompress::Sync };
            loop {
                if out.capacity() - out.len() < 64 * 1024 {
                    out.reserve(out.capacity().max(64 * 1024));
                }
                let consumed = c.total_in() as usize;
                let status = c.compress_vec(&b[consumed..], &mut out, flush).map_err(io::Error::other)?;
                let all_in = c.total_in() as usize == b.len();
                let finished = match flush {
                    FlushCompress::Finish => status == flate2::Status::StreamEnd,
                    // As with zlib: a sync flush is complete when output space was left over.
                    _ => all_in && out.len() < out.capacity(),
                };
                if finished {
                    break;
                }
            }
            let mut h = crc32fast::Hasher::new();
            h.update(b);
            Ok((out, h.finalize(), b.len()))
        })
        .collect();
    // gzip header: magic, deflate, no flags, no mtime, no extra flags, OS = unknown.
    w.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
    let mut crc = crc32fast::Hasher::new();
    let mut total: u64 = 0;
    if n == 0 {
        // An empty deflate stream: one final empty fixed block.
        w.write_all(&[3, 0])?;
    }
    for r in compressed {
        let (bytes, block_crc, len) = r?;
        w.write_all(&bytes)?;
        crc.combine(&crc32fast::Hasher::new_with_initial_len(block_crc, len as u64));
        total += len as u64;
    }
    w.write_all(&crc.finalize().to_le_bytes())?;
    w.write_all(&((total & 0xffff_ffff) as u32).to_le_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn single_member_round_trip_over_many_blocks() {
        let data: Vec<u8> = (0..(3 * BLOCK + 12345)).map(|i| ((i * 7) % 251) as u8 ^ (i / 1000) as u8).collect();
        for level in [0, 1, 6] {
            let mut out = Vec::new();
            write_parallel(&mut out, &[&data[..100], &data[100..]], level).unwrap();
            // GzDecoder (not Multi) reads only the first member: the whole payload must be in it.
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "level {level}");
        }
    }

    #[test]
    fn empty_payload_is_valid_gzip() {
        let mut out = Vec::new();
        write_parallel(&mut out, &[], 1).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }
}
