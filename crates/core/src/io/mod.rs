//! Exchange formats (NIfTI-1 `.nii`/`.nii.gz`, NPY + JSON sidecar) over files and pipes.
//!
//! Formats are recognised from magic bytes, never from the name alone. Every file output is
//! written to a temporary file in the target's folder and renamed into place, so a failure never
//! leaves a half-written file that looks finished.

pub mod atomic;
pub mod gzip;
pub mod limits;
pub mod nifti;
pub mod npy;
pub mod sidecar;

pub use atomic::{inflight, is_special_file, persist, stale, write_file_atomic, write_temp};
use atomic::{open_waitless, write_in_place};
pub use limits::{check_claim, max_bytes};
use sidecar::Checksum;
pub use sidecar::{DataFile, parse_sidecar, sidecar_data_file, sidecar_json, sidecar_json_with, sidecar_path};

use crate::error::{Error, Result};
use crate::volume::{Header, Volume};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Where a volume comes from: a file, or standard input (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    Path(PathBuf),
}

impl Source {
    pub fn parse(s: &str) -> Source {
        if s == "-" { Source::Stdin } else { Source::Path(PathBuf::from(s)) }
    }
    /// The name used in messages.
    pub fn name(&self) -> PathBuf {
        match self {
            Source::Stdin => PathBuf::from("<stdin>"),
            Source::Path(p) => p.clone(),
        }
    }
}

/// Where a volume goes: a file, or standard output (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Path(PathBuf),
}

impl Sink {
    pub fn parse(s: &str) -> Sink {
        if s == "-" { Sink::Stdout } else { Sink::Path(PathBuf::from(s)) }
    }
    pub fn name(&self) -> PathBuf {
        match self {
            Sink::Stdout => PathBuf::from("<stdout>"),
            Sink::Path(p) => p.clone(),
        }
    }
}

/// Volume file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Uncompressed NIfTI-1 single file (the default on pipes).
    Nifti,
    /// Gzip-compressed NIfTI-1.
    NiftiGz,
    /// NumPy `.npy`, `[z, y, x]` C order; geometry in a `.json` sidecar.
    Npy,
}

impl Format {
    /// The format a file name asks for, from its extension.
    pub fn from_name(p: &Path) -> Option<Format> {
        let s = p.to_string_lossy().to_ascii_lowercase();
        if s.ends_with(".nii.gz") {
            Some(Format::NiftiGz)
        } else if s.ends_with(".nii") {
            Some(Format::Nifti)
        } else if s.ends_with(".npy") {
            Some(Format::Npy)
        } else {
            None
        }
    }
    /// The name users know it by (and pass to --format).
    pub fn name(self) -> &'static str {
        match self {
            Format::Nifti => "nii",
            Format::NiftiGz => "nii.gz",
            Format::Npy => "npy",
        }
    }
    /// The file name ending that asks for it.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Nifti => ".nii",
            Format::NiftiGz => ".nii.gz",
            Format::Npy => ".npy",
        }
    }
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "nii" => Some(Format::Nifti),
            "nii.gz" | "niigz" => Some(Format::NiftiGz),
            "npy" => Some(Format::Npy),
            _ => None,
        }
    }
}

/// Options for reading.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Spacing (x, y, z) mm to assume for an NPY without sidecar.
    pub npy_spacing: Option<[f64; 3]>,
}

/// A volume read from somewhere, with what the reader had to assume.
#[derive(Debug)]
pub struct Loaded {
    pub volume: Volume,
    pub format: Format,
    pub warnings: Vec<String>,
    /// The file said where its voxels are (a NIfTI sform/qform, an NPY sidecar); false when
    /// the geometry was assumed (an NPY alone, a NIfTI with neither form).
    pub geometry_known: bool,
}

/// The most a deflate stream can inflate: 258 bytes from a 2-bit code, about 1032:1.
const MAX_INFLATE: u64 = 1032;

/// Read a NIfTI or NPY volume from a file or stdin.
pub fn read_volume(src: &Source, opts: &ReadOptions) -> Result<Loaded> {
    let name = src.name();
    match src {
        Source::Stdin => {
            let stdin = io::stdin();
            widen_pipe(&stdin);
            read_from(BufReader::with_capacity(1 << 20, stdin.lock()), &name, None, opts)
        }
        Source::Path(p) => {
            let f = open_input(p)?;
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::bad_input("is a folder, not a volume file")
                    .with_path(p)
                    .with_hint("pass a .nii, .nii.gz or .npy file; DICOM folders go to dcm-stack (or hu-convert)"));
            }
            let len = f.metadata().ok().map(|m| m.len());
            // NPY files are checksummed as they are read, to be checked against their sidecar.
            // (Only regular files can be looked into and rewound; a pipe is read as it comes.)
            let regular = f.metadata().is_ok_and(|m| m.is_file());
            let mut magic = [0u8; 6];
            let is_npy = regular && (&f).read_exact(&mut magic).is_ok() && &magic == b"\x93NUMPY";
            let mut f = f;
            if regular {
                io::Seek::rewind(&mut f).map_err(|e| Error::io("cannot read", p, e))?;
            }
            if !is_npy {
                return if regular {
                    read_from(SplitReader(BufReader::with_capacity(1 << 20, f)), p, len, opts)
                } else {
                    read_from(BufReader::with_capacity(1 << 20, f), p, len, opts)
                };
            }
            let mut counted = Checksum::new(f);
            let mut loaded = read_from(BufReader::with_capacity(1 << 20, &mut counted), p, len, opts)?;
            // Whatever the array left unread (nothing, in a well-formed file) still counts.
            io::copy(&mut counted, &mut io::sink()).map_err(|e| Error::io("cannot read", p, e))?;
            npy::apply_sidecar(&mut loaded, p, opts, Some(&counted.data_file(String::new())))?;
            Ok(loaded)
        }
    }
}

/// Read a NIfTI (plain or gzip) or NPY volume held in memory (no sidecar: NPY geometry is
/// assumed). `name` is only for messages. The fuzz targets and in-memory callers use it.
pub fn read_volume_bytes(bytes: &[u8], name: &Path, opts: &ReadOptions) -> Result<Loaded> {
    read_from(io::Cursor::new(bytes), name, Some(bytes.len() as u64), opts)
}

/// Open an input file. A named pipe is opened without waiting for a writer (`open` would block
/// forever if none comes); reading it then blocks as usual, or ends at once with "empty input".
fn open_input(p: &Path) -> Result<File> {
    open_waitless(p, std::fs::OpenOptions::new().read(true)).map_err(|e| Error::io("cannot open", p, e))
}

fn read_from<R: BufRead>(mut r: R, name: &Path, file_len: Option<u64>, opts: &ReadOptions) -> Result<Loaded> {
    let head = r.fill_buf().map_err(|e| Error::io("cannot read", name, e))?.to_vec();
    if head.is_empty() {
        return Err(Error::bad_input("empty input: no volume to read")
            .with_path(name)
            .with_hint("the previous command in the pipe produced nothing; check its error message"));
    }
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        let gz = BufReader::with_capacity(1 << 20, flate2::bufread::MultiGzDecoder::new(r));
        // Deflate inflates at most 1032:1: a header claiming more than that of the compressed
        // file is refused before inflating anything (a gzip bomb, or a truncated file).
        let mut loaded = read_plain(gz, name, file_len.map(|l| l.saturating_mul(MAX_INFLATE)), opts, true)?;
        if loaded.format == Format::Nifti {
            loaded.format = Format::NiftiGz;
        }
        return Ok(loaded);
    }
    read_plain(r, name, file_len, opts, false)
}

fn read_plain<R: BufRead>(mut r: R, name: &Path, file_len: Option<u64>, opts: &ReadOptions, gz: bool) -> Result<Loaded> {
    let head = r.fill_buf().map_err(|e| gz_err(name, e, gz))?;
    if head.starts_with(b"\x93NUMPY") {
        return npy::read(r, name, file_len, opts);
    }
    if head.len() >= 4 {
        let le = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let be = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if le == 348 || be == 348 {
            return nifti::read(r, name, file_len, gz);
        }
        if le == 540 || be == 540 {
            return Err(Error::unsupported("NIfTI-2 files are not supported")
                .with_path(name)
                .with_hint("convert to NIfTI-1, e.g. with nibabel: nib.save(nib.Nifti1Image(img.dataobj, img.affine), 'out.nii')"));
        }
    }
    let what = if head.len() >= 132 && &head[128..132] == b"DICM" {
        "this is a DICOM file, not a volume"
    } else {
        "not a NIfTI-1 or NPY volume (unknown magic bytes)"
    };
    Err(Error::bad_input(what)
        .with_path(name)
        .with_hint("ctprep tools exchange .nii, .nii.gz and .npy; turn a DICOM folder into a volume with `dcm-stack DIR -o vol.nii`"))
}

/// A number that can be read from raw bytes in either byte order.
pub(crate) trait Swap: bytemuck::Pod {
    fn swap(self) -> Self;
}
macro_rules! swap {
    ($($t:ty),*) => {$(impl Swap for $t { fn swap(self) -> Self { <$t>::from_ne_bytes({ let mut b = self.to_ne_bytes(); b.reverse(); b }) } })*};
}
swap!(u8, i16, u16, i32, f32, f64);

/// A regular file read through a buffer, whose large exact reads (a volume's voxels) are split
/// between the threads as positional reads into disjoint parts of the destination: copying out
/// of the page cache, and faulting in the new buffer's pages, then use every core.
struct SplitReader(BufReader<File>);

impl SplitReader {
    /// Reads from this size on are split; smaller ones do not repay the threads.
    const SPLIT_FROM: usize = 8 << 20;
    const PIECE: usize = 4 << 20;
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        #[cfg(unix)]
        if out.len() >= Self::SPLIT_FROM {
            use rayon::prelude::*;
            use std::os::unix::fs::FileExt;
            // What the buffer holds comes first (all of it: the buffer is smaller than `out`);
            // the file's own position is then where the rest starts.
            let held = self.0.buffer().len().min(out.len());
            out[..held].copy_from_slice(&self.0.buffer()[..held]);
            self.0.consume(held);
            let rest = &mut out[held..];
            let mut file = self.0.get_ref();
            let start = io::Seek::stream_position(&mut file)?;
            rest.par_chunks_mut(Self::PIECE)
                .enumerate()
                .try_for_each(|(i, piece)| file.read_exact_at(piece, start + (i * Self::PIECE) as u64))?;
            io::Seek::seek(&mut file, io::SeekFrom::Start(start + rest.len() as u64))?;
            return Ok(());
        }
        self.0.read_exact(out)
    }
}

impl BufRead for SplitReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

/// Read `n` elements straight into their typed buffer, then put them in the machine's byte
/// order (`be`: the stream is big-endian).
pub(crate) fn read_vec<T: Swap, R: Read>(r: &mut R, n: usize, be: bool, name: &Path, gz: bool) -> Result<Vec<T>> {
    let mut v = vec![T::zeroed(); n];
    r.read_exact(bytemuck::cast_slice_mut(&mut v)).map_err(|e| gz_err(name, e, gz))?;
    if be != cfg!(target_endian = "big") && std::mem::size_of::<T>() > 1 {
        for x in v.iter_mut() {
            *x = x.swap();
        }
    }
    Ok(v)
}

/// Read `n` elements stored as `S` bytes each, converting them as they come: the typed output
/// is the only large buffer (reading all the bytes first doubled the peak; found by fuzzing).
pub(crate) fn read_converted<T, const S: usize, R: Read>(
    r: &mut R,
    n: usize,
    name: &Path,
    gz: bool,
    convert: impl Fn([u8; S]) -> T,
) -> Result<Vec<T>> {
    const CHUNK: usize = 1 << 16;
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; CHUNK.min(n) * S];
    while out.len() < n {
        let bytes = &mut buf[..(n - out.len()).min(CHUNK) * S];
        r.read_exact(bytes).map_err(|e| gz_err(name, e, gz))?;
        out.extend(bytes.chunks_exact(S).map(|c| convert(c.try_into().expect("chunks of S bytes"))));
    }
    Ok(out)
}

pub(crate) fn gz_err(name: &Path, e: io::Error, gz: bool) -> Error {
    if gz && matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof) {
        Error::bad_input(format!("corrupt or truncated gzip data: {e}"))
            .with_path(name)
            .with_hint("the .gz file is damaged or was cut short: re-copy or re-create it")
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::bad_input("truncated: the data ends before the header says it should")
            .with_path(name)
            .with_hint("the file was cut short: re-copy or re-export it")
    } else {
        Error::io("cannot read", name, e)
    }
}

/// Options for writing.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Format; `None` picks from the file name (`.nii`, `.nii.gz`, `.npy`), or NIfTI on stdout.
    pub format: Option<Format>,
    /// gzip level 0-9 for `.nii.gz`.
    pub gzip_level: u32,
    /// Also write `<name>.json` beside a file output (always for NPY).
    pub sidecar: bool,
    /// Store float32 data as float16 in NPY (NIfTI-1 has no float16).
    pub npy_f16: bool,
    /// Keep what identifies the patient (PatientID, UIDs, folder paths) in the header extension
    /// and sidecar; by default they are removed or hashed ([`Meta::anonymized`](crate::Meta::anonymized)).
    pub keep_phi: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { format: None, gzip_level: 1, sidecar: true, npy_f16: false, keep_phi: false }
    }
}

/// Resolve the output format for a sink.
pub fn output_format(sink: &Sink, opts: &WriteOptions) -> Result<Format> {
    let named = match sink {
        Sink::Path(p) if !is_special_file(p) => Format::from_name(p),
        _ => None,
    };
    if let Some(f) = opts.format {
        // A name and a format that disagree would put one format's bytes under another's name.
        if let (Some(n), Sink::Path(p)) = (named, sink) {
            if n != f {
                return Err(Error::usage(format!("the name says {}, --format says {}", n.name(), f.name()))
                    .with_path(p)
                    .with_hint(format!("drop --format, or name the file {}", f.extension())));
            }
        }
        return Ok(f);
    }
    match sink {
        Sink::Stdout => Ok(Format::Nifti),
        Sink::Path(p) => Format::from_name(p).ok_or_else(|| {
            Error::usage("cannot tell the output format from the name")
                .with_path(p)
                .with_hint("name it .nii, .nii.gz or .npy, or pass --format nii|nii.gz|npy")
        }),
    }
}

/// Write a volume (and its sidecar for file outputs), atomically.
pub fn write_volume(vol: &Volume, sink: &Sink, opts: &WriteOptions) -> Result<Format> {
    let format = output_format(sink, opts)?;
    check_f16(format, opts)?;
    let anon = (!opts.keep_phi).then(|| vol.meta.anonymized());
    let header = Header { meta: anon.as_ref().unwrap_or(&vol.meta), ..vol.header() };
    write_encoded(&header, sink, format, opts, |w| encode(vol, &header, format, opts, w))?;
    Ok(format)
}

fn check_f16(format: Format, opts: &WriteOptions) -> Result<()> {
    if opts.npy_f16 && format != Format::Npy {
        return Err(
            Error::usage("float16 output needs NPY (NIfTI-1 has no float16 type)").with_hint("name the output .npy or pass --format npy")
        );
    }
    Ok(())
}

/// Send `encode`'s bytes to stdout, or to a file (with the header's sidecar where one belongs)
/// through temporaries renamed into place only when everything succeeded.
fn write_encoded(
    header: &Header,
    sink: &Sink,
    format: Format,
    opts: &WriteOptions,
    encode: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    match sink {
        Sink::Stdout => {
            let stdout = io::stdout();
            widen_pipe(&stdout);
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            encode(&mut w).map_err(|e| e.with_path("<stdout>"))?;
            w.flush().map_err(|e| Error::io("cannot write", Path::new("<stdout>"), e))?;
        }
        Sink::Path(p) if is_special_file(p) => write_in_place(p, encode)?,
        Sink::Path(p) => {
            let sidecar_path = sidecar_path(p);
            // Write both to temporaries first; rename only when both succeeded. The sidecar names
            // the volume file's size and CRC-32, so a reader can tell when the two renames were
            // split (an interrupt, or two writers) and the pair no longer belongs together.
            let mut sum = DataFile::default();
            let with_sidecar = opts.sidecar || format == Format::Npy;
            let data_tmp = write_temp(p, |w| {
                if !with_sidecar {
                    return encode(w);
                }
                let mut c = Checksum::new(w);
                encode(&mut c)?;
                sum = c.data_file(p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
                Ok(())
            })?;
            let side_tmp = match with_sidecar {
                true => {
                    let json = sidecar_json_with(header, Some(&sum));
                    Some(write_temp(&sidecar_path, |w| {
                        w.write_all(json.as_bytes()).map_err(|e| Error::io("cannot write", &sidecar_path, e))
                    })?)
                }
                false => None,
            };
            persist(data_tmp, p)?;
            if let Some(t) = side_tmp {
                persist(t, &sidecar_path)?;
            }
        }
    }
    Ok(())
}

fn encode(vol: &Volume, header: &Header, format: Format, opts: &WriteOptions, w: &mut dyn Write) -> Result<()> {
    match format {
        Format::Nifti => {
            nifti::write_header(header, w)?;
            w.write_all(&nifti::data_bytes(vol)).map_err(|e| Error::io("cannot write", Path::new(""), e))
        }
        Format::NiftiGz => {
            let mut buf = Vec::new();
            nifti::write_header(header, &mut buf)?;
            gzip::write_parallel(w, &[&buf, &nifti::data_bytes(vol)], opts.gzip_level)
                .map_err(|e| Error::io("cannot write", Path::new(""), e))
        }
        Format::Npy if opts.npy_f16 => npy::write_f16(vol, w),
        Format::Npy => npy::write(vol, w),
    }
}

/// Write a float32 volume that never exists whole in memory: `fill(z, planes)` fills planes
/// `z..` (`[z, y, x]` order, whole planes, a few megabytes at a time), in order. Uncompressed
/// NIfTI and NPY (float32, or float16 with `npy_f16`) stream; `.nii.gz` gathers the volume first.
pub fn write_f32_planes(
    header: &Header,
    sink: &Sink,
    opts: &WriteOptions,
    mut fill: impl FnMut(usize, &mut [f32]) -> Result<()>,
) -> Result<Format> {
    let format = output_format(sink, opts)?;
    check_f16(format, opts)?;
    let [nz, ny, nx] = header.shape;
    if format == Format::NiftiGz {
        let mut a = ndarray::Array3::<f32>::zeros((nz, ny, nx));
        fill(0, a.as_slice_mut().expect("standard layout"))?;
        let vol = Volume { data: crate::volume::VolumeData::F32(a), geometry: header.geometry.clone(), meta: header.meta.clone() };
        return write_volume(&vol, sink, opts);
    }
    let anon = (!opts.keep_phi).then(|| header.meta.anonymized());
    let header = Header { dtype: crate::volume::DType::F32, meta: anon.as_ref().unwrap_or(header.meta), ..*header };
    let plane = ny * nx;
    let per_slab = ((4 << 20) / (4 * plane.max(1))).clamp(1, nz.max(1));
    let io = |e| Error::io("cannot write", Path::new(""), e);
    write_encoded(&header, sink, format, opts, |w| {
        match format {
            Format::Npy => npy::write_header(w, if opts.npy_f16 { "<f2" } else { "<f4" }, header.shape).map_err(io)?,
            _ => nifti::write_header(&header, w)?,
        }
        let mut slab = vec![0f32; per_slab * plane];
        let mut f16 = Vec::new();
        for z in (0..nz).step_by(per_slab) {
            let planes = &mut slab[..(nz - z).min(per_slab) * plane];
            fill(z, planes)?;
            if opts.npy_f16 {
                f16.clear();
                f16.extend(planes.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()));
                w.write_all(&f16).map_err(io)?;
            } else {
                w.write_all(&f32_le_bytes(planes)).map_err(io)?;
            }
        }
        Ok(())
    })?;
    Ok(format)
}

/// Float32 values as little-endian bytes: the memory itself on little-endian machines.
fn f32_le_bytes(v: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Volumes are tens to hundreds of MB: when `fd` is a pipe, ask for the largest buffer an
/// unprivileged process may have (Linux: 1 MiB, against 64 KiB by default), so writer and reader
/// take turns 16 times less often. Best effort: nothing changes where it is refused.
#[cfg(target_os = "linux")]
fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a descriptor we hold; both calls fail harmlessly (EBADF) on non-pipes.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) } <= 0 {
        return;
    }
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").ok().and_then(|s| s.trim().parse::<libc::c_int>().ok());
    // SAFETY: as above.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, max.unwrap_or(1 << 20).min(1 << 20)) };
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe<T>(_fd: &T) {}

#[cfg(test)]
mod tests {
    use super::atomic::tests::names;
    use super::*;

    #[test]
    fn streamed_planes_write_the_same_files_as_a_whole_volume() {
        use crate::volume::VolumeData;
        // 10 planes of 1 MiB: the 4 MiB slabs take 4, 4, then 2 planes.
        let a = ndarray::Array3::from_shape_fn((10, 512, 512), |(z, y, x)| (z * 7 + y * 3 + x) as f32 * 0.25 - 100.0);
        let vol = Volume { data: VolumeData::F32(a.clone()), geometry: Default::default(), meta: Default::default() };
        let dir = tempfile::tempdir().unwrap();
        for (name, f16) in [("v.nii", false), ("v.npy", false), ("h.npy", true), ("v.nii.gz", false)] {
            let opts = WriteOptions { npy_f16: f16, ..WriteOptions::default() };
            let (whole, streamed) = (dir.path().join(format!("whole_{name}")), dir.path().join(format!("streamed_{name}")));
            write_volume(&vol, &Sink::Path(whole.clone()), &opts).unwrap();
            let mut calls = Vec::new();
            write_f32_planes(&vol.header(), &Sink::Path(streamed.clone()), &opts, |z, planes| {
                calls.push((z, planes.len() / (512 * 512)));
                planes.copy_from_slice(&a.as_slice().unwrap()[z * 512 * 512..][..planes.len()]);
                Ok(())
            })
            .unwrap();
            assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&streamed).unwrap(), "{name}");
            // The same sidecar but for the file name it gives (same size, same CRC-32).
            let side = |p: &Path| {
                let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar_path(p)).unwrap()).unwrap();
                v["data_file"]["name"] = serde_json::Value::Null;
                v
            };
            assert_eq!(side(&whole), side(&streamed), "{name}");
            let expect = if name.ends_with(".gz") { vec![(0, 10)] } else { vec![(0, 4), (4, 4), (8, 2)] };
            assert_eq!(calls, expect, "{name}");
        }
        // A failing fill leaves nothing behind.
        let target = dir.path().join("failed.npy");
        let err = write_f32_planes(&vol.header(), &Sink::Path(target.clone()), &WriteOptions::default(), |z, _| {
            if z > 0 { Err(Error::bad_input("stop")) } else { Ok(()) }
        });
        assert!(err.is_err() && !target.exists() && !sidecar_path(&target).exists());
    }

    #[test]
    fn a_large_file_read_in_split_pieces_equals_the_same_bytes_read_in_order() {
        use crate::volume::VolumeData;
        // 12.3 MB of int16: the split read (from 8 MB) ends in a partial 4 MB piece, and its
        // first bytes come from what the buffer already holds.
        let a = ndarray::Array3::from_shape_fn((41, 500, 301), |(z, y, x)| ((z * 131 + y * 17 + x * 7) % 4001) as i16 - 2000);
        let vol = Volume { data: VolumeData::I16(a.clone()), geometry: Default::default(), meta: Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.nii");
        write_volume(&vol, &Sink::Path(path.clone()), &WriteOptions::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let split = read_volume(&Source::Path(path.clone()), &ReadOptions::default()).unwrap().volume;
        let in_order = read_volume_bytes(&bytes, &path, &ReadOptions::default()).unwrap().volume;
        match (&split.data, &in_order.data) {
            (VolumeData::I16(s), VolumeData::I16(o)) => assert!(s == o && *s == a),
            other => panic!("int16 expected, got {other:?}"),
        }
        assert_eq!(split.geometry, in_order.geometry);
        // A split read leaves the file where an ordered one would: the next read goes on from it.
        let open = || SplitReader(BufReader::with_capacity(1 << 20, File::open(&path).unwrap()));
        let mut r = open();
        let (mut head, mut middle, mut tail) = (vec![0u8; 1000], vec![0u8; 9 << 20], Vec::new());
        r.read_exact(&mut head).unwrap();
        r.read_exact(&mut middle).unwrap();
        r.read_to_end(&mut tail).unwrap();
        assert!(head == bytes[..1000] && middle == bytes[1000..][..9 << 20] && tail == bytes[1000 + (9 << 20)..]);
        // Asking past the end (the file shrank after its size was checked) is an error, as in order.
        let mut r = open();
        let mut too_much = vec![0u8; bytes.len() - 1000 + 1];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.read_exact(&mut too_much).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        write_file_atomic(null, |w| w.write_all(b"discarded")).unwrap();
        let vol = Volume {
            data: crate::volume::VolumeData::U8(ndarray::Array3::zeros((2, 3, 4))),
            geometry: Default::default(),
            meta: Default::default(),
        };
        write_volume(&vol, &Sink::Path(null.into()), &WriteOptions { format: Some(Format::Npy), ..Default::default() }).unwrap();
        assert!(std::fs::metadata(null).unwrap().file_type().is_char_device(), "/dev/null must stay a device");
        assert!(!Path::new("/dev/null.json").exists(), "no sidecar beside a device");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        write_file_atomic(&target, |w| w.write_all(b"old")).unwrap();
        let err = write_file_atomic(&target, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.txt"]);
    }
}
