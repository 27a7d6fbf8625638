//! The decoded-sample cache (`facerecon-train --decoded-cache DIR`): the training images decoded and
//! fitted to the model's square once, stored as raw RGB bytes in one file, read back per draw instead of
//! decoding the JPEG/PNG again.
//!
//! Why: on a two-core machine the data thread's decoding and resizing (about 6 % of a unet step's CPU
//! time on the 200x200 UTKFace JPEGs, measured with `perf`) shares the cores with the training step's
//! GEMMs. Masks and flips are still drawn per draw, so training is bit-identical with and without it.
//!
//! * One file per (training file list, model size): `DIR/decoded-<size>px-<hash>.bin`, where the hash
//!   covers every file's path, size in bytes and modification time. A changed, added or removed file
//!   gives another name, i.e. a rebuild; a file that does not match its header is rebuilt too. Old files
//!   are never deleted (they are the caches of other subsets or sizes).
//! * Built at the start of a run, decoded in parallel, written to a temporary file in `DIR` and renamed:
//!   an interrupted build leaves no file that could be taken for a cache.
//! * Unreadable files are recorded with their reason and reported when drawn, as without the cache.
//!
//! Layout (little endian): `MAGIC`, hash u64, size u32, count u64; the images, `size * size * 3` bytes
//! each, in file order (unreadable files have none); the index: per file a status byte (1 = image,
//! 0 = unreadable) and, for unreadable ones, the reason (u32 length + UTF-8); the index's offset, u64.

use super::load_fitted;
use facerecon_contract::fnv1a64;
use image::RgbImage;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"facerecon-dec-1\n";

/// Bytes before the first image: `MAGIC`, hash, size, count.
const HEADER: usize = 16 + 8 + 4 + 8;

/// Files decoded per parallel round while building (bounds the memory a build holds).
const BUILD_CHUNK: usize = 512;

/// A decoded-sample cache opened for reading (see the module documentation).
#[derive(Debug)]
pub struct DecodedCache {
    file: File,
    path: PathBuf,
    size: u32,
    /// Per file: the image's byte offset in `file`, or why the file is unreadable.
    entries: Vec<Result<u64, String>>,
}

/// The cache file's hash over the list: paths, sizes and modification times (nanoseconds; 0 where the
/// file cannot be stat'ed, which then fails to decode and is recorded as unreadable).
fn list_hash(files: &[PathBuf], size: u32) -> u64 {
    let mut s = format!("{}\n{size}\n", String::from_utf8_lossy(MAGIC).trim_end());
    for f in files {
        let (len, mtime) = match std::fs::metadata(f) {
            Ok(m) => (
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
            ),
            Err(_) => (u64::MAX, 0),
        };
        s.push_str(&format!("{}\0{len}\0{mtime}\n", f.display()));
    }
    fnv1a64(s.as_bytes())
}

fn image_bytes(size: u32) -> u64 {
    size as u64 * size as u64 * 3
}

impl DecodedCache {
    /// The cache of `files` at `size` in `dir`: opened when a valid one exists, else built (decoding
    /// every file once, in parallel) and then opened. Errors name the cache file (unwritable directory,
    /// full disk).
    pub fn open_or_build(dir: &Path, files: &[PathBuf], size: u32) -> Result<DecodedCache, String> {
        let hash = list_hash(files, size);
        let path = dir.join(format!("decoded-{size}px-{hash:016x}.bin"));
        match Self::open(&path, hash, files.len(), size) {
            Ok(c) => return Ok(c),
            Err(e) if path.exists() => eprintln!("decoded cache: rebuilding {} ({e})", path.display()),
            Err(_) => eprintln!(
                "decoded cache: decoding {} images once into {}",
                files.len(),
                path.display()
            ),
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Self::build(&path, hash, files, size).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::open(&path, hash, files.len(), size).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn build(path: &Path, hash: u64, files: &[PathBuf], size: u32) -> std::io::Result<()> {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = (|| {
            let mut w = BufWriter::new(File::create(&tmp)?);
            w.write_all(MAGIC)?;
            w.write_all(&hash.to_le_bytes())?;
            w.write_all(&size.to_le_bytes())?;
            w.write_all(&(files.len() as u64).to_le_bytes())?;
            let mut index = Vec::with_capacity(files.len());
            let mut index_start = HEADER as u64;
            for chunk in files.chunks(BUILD_CHUNK) {
                let decoded: Vec<Result<RgbImage, String>> = chunk.par_iter().map(|f| load_fitted(f, size)).collect();
                for d in decoded {
                    match d {
                        Ok(img) => {
                            w.write_all(img.as_raw())?;
                            index.push(1);
                            index_start += image_bytes(size);
                        }
                        Err(reason) => {
                            index.push(0);
                            index.extend_from_slice(&(reason.len() as u32).to_le_bytes());
                            index.extend_from_slice(reason.as_bytes());
                        }
                    }
                }
            }
            w.write_all(&index)?;
            w.write_all(&index_start.to_le_bytes())?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn open(path: &Path, hash: u64, count: usize, size: u32) -> Result<DecodedCache, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < (HEADER + 8) as u64 {
            return Err("truncated".into());
        }
        let mut head = [0u8; HEADER];
        read_at(&file, &mut head, 0).map_err(|e| e.to_string())?;
        let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
        if &head[..16] != MAGIC
            || u64_at(16) != hash
            || u32::from_le_bytes(head[24..28].try_into().expect("4 bytes")) != size
            || u64_at(28) != count as u64
        {
            return Err("header does not match the files".into());
        }
        let mut footer = [0u8; 8];
        read_at(&file, &mut footer, len - 8).map_err(|e| e.to_string())?;
        let index_start = u64::from_le_bytes(footer);
        if index_start < HEADER as u64 || index_start > len - 8 {
            return Err("corrupt footer".into());
        }
        let mut index = vec![0u8; (len - 8 - index_start) as usize];
        read_at(&file, &mut index, index_start).map_err(|e| e.to_string())?;
        let mut rest = &index[..];
        let mut offset = HEADER as u64;
        let mut entries = Vec::with_capacity(count);
        let corrupt = || "corrupt index".to_string();
        for _ in 0..count {
            let (&status, tail) = rest.split_first().ok_or_else(corrupt)?;
            rest = tail;
            match status {
                1 => {
                    entries.push(Ok(offset));
                    offset += image_bytes(size);
                }
                0 => {
                    let n = rest.get(..4).ok_or_else(corrupt)?;
                    let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
                    let reason = rest.get(4..4 + n).ok_or_else(corrupt)?;
                    entries.push(Err(String::from_utf8_lossy(reason).into_owned()));
                    rest = &rest[4 + n..];
                }
                _ => return Err(corrupt()),
            }
        }
        if !rest.is_empty() || offset != index_start {
            return Err(corrupt());
        }
        Ok(DecodedCache {
            file,
            path: path.to_path_buf(),
            size,
            entries,
        })
    }

    /// File `i`'s fitted image (what [`load_fitted`] returns for it), or why it is unreadable.
    pub fn read(&self, i: usize) -> Result<RgbImage, String> {
        let at = self.entries[i].clone()?;
        let mut buf = vec![0u8; image_bytes(self.size) as usize];
        read_at(&self.file, &mut buf, at).map_err(|e| format!("decoded cache {}: {e}", self.path.display()))?;
        RgbImage::from_raw(self.size, self.size, buf).ok_or_else(|| "decoded cache: bad image size".to_string())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}
