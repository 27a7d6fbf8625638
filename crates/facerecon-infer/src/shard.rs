//! Fleet use: `--shard I/N` (which inputs this machine takes) and `--skip-existing` (resuming a
//! stopped or requeued run).
//!
//! A file belongs to shard `fmix64(fnv1a64(key)) mod N`, where `key` is the file's path relative to
//! the INPUT directory it was found under (its file name for a file given directly), components
//! joined by `/`, as raw bytes (no Unicode normalisation). The assignment therefore depends only on
//! that relative path: not on the mount point, the machine, the other files (adding a file moves no
//! other file), the order of the walk or the Rust version. FNV-1a (64-bit: offset basis
//! 0xcbf29ce484222325, prime 0x100000001b3) is fixed by its specification; its low bits are weak
//! (bit 0 is the parity of the bytes' bit 0), so MurmurHash3's 64-bit finaliser `fmix64` mixes the
//! result before the `mod N`. Both are spelled out in this workspace (FNV-1a in `facerecon-contract`,
//! shared with the checkpoint manifest and the trainer's split) instead of taken from a crate, so that
//! the assignment cannot change with a dependency update.

use std::{
    fmt,
    io::{Read, Seek, SeekFrom},
    path::{Component, Path},
    str::FromStr,
};

use serde::Serialize;

/// `--shard I/N`: this run takes the inputs whose shard number is `index`, of `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// 0-based, below `count`.
    pub index: u64,
    /// At least 1.
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((i, n)) = s.split_once('/') else {
            return Err(format!(
                "expected I/N (0-based shard index / number of shards), e.g. 0/4; got '{s}'"
            ));
        };
        // An unset job-array variable expands to nothing: say so rather than "invalid digit".
        let number = |what: &str, v: &str| -> Result<u64, String> {
            if v.trim().is_empty() {
                return Err(format!(
                    "the shard {what} is empty in '{s}' (is the job array's variable set?)"
                ));
            }
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("the shard {what} '{v}' in '{s}' is not a whole number >= 0"))
        };
        let (index, count) = (number("index", i)?, number("count", n)?);
        if count == 0 {
            return Err(format!("'{s}': the number of shards must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "'{s}': the shard index must be below the number of shards (0-based: 0/{count} .. {}/{count})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the file at `relative` (see the module docs) belongs to this shard.
    pub fn contains(&self, relative: &Path) -> bool {
        shard_of(relative, self.count) == self.index
    }
}

/// The shard (of `count`) of the file at `relative`.
pub fn shard_of(relative: &Path, count: u64) -> u64 {
    fmix64(fnv1a64(&key(relative))) % count
}

/// The bytes hashed for a relative path: its normal components joined by `/` (so `./a//b.jpg`,
/// `a/b.jpg` and, on Windows, `a\b.jpg` are the same key).
pub fn key(relative: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for c in relative.components() {
        if let Component::Normal(part) = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            #[cfg(unix)]
            out.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(part));
            #[cfg(not(unix))]
            out.extend_from_slice(part.to_string_lossy().as_bytes());
        }
    }
    out
}

/// 64-bit FNV-1a (the contract's, pinned by its tests and by this module's `assignment_is_pinned`).
pub use facerecon_contract::fnv1a64;

/// MurmurHash3's 64-bit finaliser (every input bit affects every output bit).
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether `path` is a regular file holding a whole PNG: the signature at the start and the IEND
/// chunk at the end. Outputs are renamed into place only once written, but without an fsync a
/// machine that crashes (the usual reason a job-array task is requeued) can leave the renamed name
/// with a truncated or empty file; that must not count as done.
pub fn is_complete_png(path: &Path) -> bool {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82];
    let check = || -> std::io::Result<bool> {
        let mut f = std::fs::File::open(path)?;
        if f.metadata()?.len() < (SIGNATURE.len() + IEND.len()) as u64 {
            return Ok(false);
        }
        let (mut head, mut tail) = ([0u8; 8], [0u8; 12]);
        f.read_exact(&mut head)?;
        f.seek(SeekFrom::End(-(IEND.len() as i64)))?;
        f.read_exact(&mut tail)?;
        Ok(head == SIGNATURE && tail == IEND)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn assignment_is_pinned() {
        // The shard of a path must never change between versions: requeued tasks of a running
        // job array (possibly on a newer binary) must take the very same files.
        // (Computed independently, in Python, from the definitions in the module docs.)
        let paths = ["a.jpg", "sub/b.png", "x/y/z.jpeg", "img_000001.jpg"];
        let hashes: Vec<u64> = paths.iter().map(|p| fmix64(fnv1a64(&key(Path::new(p))))).collect();
        assert_eq!(
            hashes,
            [
                0x57e45b66c4c401a7,
                0xcc692e7eb45ef03f,
                0x1f931f1886059b04,
                0xa4f2e6069e21b6a1
            ]
        );
        let of = |n: u64| -> Vec<u64> { paths.iter().map(|p| shard_of(Path::new(p), n)).collect() };
        assert_eq!(of(7), [0, 3, 0, 3]);
        assert_eq!(of(1000), [623, 583, 916, 81]);
        assert_eq!(of(1), [0, 0, 0, 0]);
    }

    #[test]
    fn key_ignores_path_spelling() {
        assert_eq!(key(Path::new("a/b.jpg")), b"a/b.jpg");
        assert_eq!(key(Path::new("./a//b.jpg")), b"a/b.jpg");
        assert_eq!(key(&PathBuf::from("a").join("b.jpg")), b"a/b.jpg");
    }

    #[test]
    fn shards_are_balanced_on_sequential_names() {
        // Numbered files (the usual dataset naming) spread evenly: every shard within 20% of the mean.
        for n in [2u64, 3, 7, 16] {
            let mut counts = vec![0usize; n as usize];
            for i in 0..7000 {
                counts[shard_of(Path::new(&format!("img_{i:06}.jpg")), n) as usize] += 1;
            }
            let mean = 7000.0 / n as f64;
            for c in &counts {
                assert!((*c as f64 - mean).abs() < 0.2 * mean, "n={n}: {counts:?}");
            }
        }
    }

    #[test]
    fn parse_accepts_i_of_n_and_explains_bad_values() {
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard { index: 0, count: 1 });
        assert_eq!("6/7".parse::<Shard>().unwrap(), Shard { index: 6, count: 7 });
        for (bad, says) in [
            ("3/3", "below the number of shards"),
            ("0/0", "at least 1"),
            ("1", "expected I/N"),
            ("/4", "index is empty"),
            ("1/", "count is empty"),
            ("-1/4", "not a whole number"),
            ("auto/4", "not a whole number"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn complete_png_needs_signature_and_iend() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        image::RgbImage::new(3, 2).save(&p).unwrap();
        assert!(is_complete_png(&p));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        assert!(!is_complete_png(&p));
        std::fs::write(&p, b"").unwrap();
        assert!(!is_complete_png(&p));
        assert!(!is_complete_png(&dir.path().join("missing.png")));
        assert!(!is_complete_png(dir.path()));
    }
}
