//! What the runtime knows about a model file: read from its `metadata_props` (written by
//! `facerecon-export`) and checked against its input shapes, rather than guessed.

use std::collections::BTreeMap;

use facerecon_contract::names;
/// The metadata keys and the one mask convention a model may declare (docs/ARCHITECTURE.md, "ONNX
/// metadata_props keys"), defined in `facerecon-contract`.
pub use facerecon_contract::{keys, MASK_CONVENTION};

/// A validated description of a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Side of the square network input (`S` in `[N,3,S,S]`).
    pub image_size: u32,
    /// Colour channels of the `image` input (always 3 once validated).
    pub channels: u32,
    /// The batch size baked into the graph, if it is not symbolic.
    pub fixed_batch: Option<usize>,
    /// `facerecon.name`.
    pub name: Option<String>,
    /// `facerecon.mask_channel`.
    pub mask_channel: Option<bool>,
    /// `facerecon.producer_version`.
    pub producer_version: Option<String>,
    /// `facerecon.opset`.
    pub opset: Option<String>,
    /// `facerecon.config` (YAML text).
    pub config: Option<String>,
    /// `facerecon.metrics`, parsed.
    pub metrics: Option<serde_json::Value>,
    /// Every `metadata_props` entry, including the ones above.
    pub metadata: BTreeMap<String, String>,
}

impl ModelInfo {
    /// Build and check the description from the metadata and the declared shapes of the `image` and
    /// `mask` inputs (`-1` for symbolic dimensions). The error is a message for
    /// [`crate::RuntimeError::InvalidModel`].
    pub fn from_parts(
        metadata: BTreeMap<String, String>,
        image_shape: &[i64],
        mask_shape: &[i64],
    ) -> Result<Self, String> {
        if image_shape.len() != 4 {
            return Err(format!(
                "input `image` has rank {} (shape {image_shape:?}), expected [N,3,S,S]",
                image_shape.len()
            ));
        }
        if mask_shape.len() != 4 {
            return Err(format!(
                "input `mask` has rank {} (shape {mask_shape:?}), expected [N,1,S,S]",
                mask_shape.len()
            ));
        }
        let parse_u32 = |key: &str| -> Result<Option<u32>, String> {
            metadata
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("metadata {key} = {v:?} is not a positive integer"))
                })
                .transpose()
        };
        // A dimension beyond u32 would wrap in the casts below (2^32 + 32 read as 32).
        for (name, shape) in [(names::IMAGE, image_shape), (names::MASK, mask_shape)] {
            if let Some(d) = shape
                .iter()
                .find(|&&d| d > i64::from(MAX_IMAGE_SIZE.max(MAX_FIXED_BATCH as u32)))
            {
                return Err(format!(
                    "input `{name}` shape {shape:?} has a dimension of {d}; the largest accepted is {} (image side) / {MAX_FIXED_BATCH} (batch)",
                    MAX_IMAGE_SIZE
                ));
            }
        }
        let static_dim = |d: i64| (d > 0).then_some(d as u32);

        // Size: metadata first; the input shape must agree with it wherever it is static.
        let shape_size = match (static_dim(image_shape[2]), static_dim(image_shape[3])) {
            (Some(h), Some(w)) if h != w => {
                return Err(format!("input `image` is {h}x{w}; the model must take square images"))
            }
            (h, w) => h.or(w),
        };
        let image_size = match (parse_u32(keys::IMAGE_SIZE)?, shape_size) {
            (Some(m), Some(s)) if m != s => {
                return Err(format!(
                    "metadata {} = {m} disagrees with the input shape {image_shape:?}",
                    keys::IMAGE_SIZE
                ))
            }
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(format!(
                    "no {} metadata and the input shape {image_shape:?} has no static size",
                    keys::IMAGE_SIZE
                ))
            }
        };
        if image_size == 0 {
            return Err("image size is 0".into());
        }
        if image_size > MAX_IMAGE_SIZE {
            return Err(format!(
                "image size {image_size} is larger than the {MAX_IMAGE_SIZE} accepted"
            ));
        }
        for (i, d) in mask_shape[2..].iter().enumerate() {
            if let Some(d) = static_dim(*d) {
                if d != image_size {
                    return Err(format!(
                        "input `mask` shape {mask_shape:?} does not match the image size {image_size} (axis {})",
                        i + 2
                    ));
                }
            }
        }
        if static_dim(mask_shape[1]).is_some_and(|c| c != 1) {
            return Err(format!("input `mask` shape {mask_shape:?} must have 1 channel"));
        }

        let channels = parse_u32(keys::CHANNELS)?.or(static_dim(image_shape[1])).unwrap_or(3);
        if channels != 3 || static_dim(image_shape[1]).is_some_and(|c| c != 3) {
            return Err(format!(
                "input `image` must have 3 (RGB) channels; got {channels} (shape {image_shape:?})"
            ));
        }
        if let Some(conv) = metadata.get(keys::MASK_CONVENTION) {
            if conv != MASK_CONVENTION {
                return Err(format!(
                    "metadata {} = {conv:?}; only {MASK_CONVENTION:?} is supported",
                    keys::MASK_CONVENTION
                ));
            }
        }
        let fixed_batch = match (static_dim(image_shape[0]), static_dim(mask_shape[0])) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "inputs `image` and `mask` have different batch sizes ({a} vs {b})"
                ))
            }
            (a, b) => a.or(b).map(|n| n as usize),
        };
        if let Some(n) = fixed_batch.filter(|&n| n > MAX_FIXED_BATCH) {
            return Err(format!(
                "fixed batch size {n} is larger than the {MAX_FIXED_BATCH} accepted"
            ));
        }
        let metrics = match metadata.get(keys::METRICS) {
            Some(text) => {
                Some(serde_json::from_str(text).map_err(|e| format!("metadata {} is not JSON: {e}", keys::METRICS))?)
            }
            None => None,
        };
        let mask_channel = match metadata.get(keys::MASK_CHANNEL).map(|s| s.trim()) {
            None => None,
            Some("true") | Some("1") => Some(true),
            Some("false") | Some("0") => Some(false),
            Some(other) => return Err(format!("metadata {} = {other:?} is not a boolean", keys::MASK_CHANNEL)),
        };
        let get = |key: &str| metadata.get(key).cloned();
        Ok(ModelInfo {
            image_size,
            channels,
            fixed_batch,
            name: get(keys::NAME),
            mask_channel,
            producer_version: get(keys::PRODUCER_VERSION),
            opset: get(keys::OPSET),
            config: get(keys::CONFIG),
            metrics,
            metadata,
        })
    }
}

/// Largest model input side accepted: far above any facerecon model (128-512), low enough that one
/// prepared image (`3*S*S` floats) cannot be a multi-gigabyte allocation decided by a hostile file.
pub const MAX_IMAGE_SIZE: u32 = 4096;
/// Largest fixed batch dimension accepted (a fixed-batch model's partial batches are padded to it).
pub const MAX_FIXED_BATCH: usize = 1024;
/// Largest model file read: protobuf messages are limited to 2 GiB, so nothing larger is ONNX.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Load-time checks on the raw bytes of a model file, made before ONNX Runtime parses them: the bytes
/// are a well-formed protobuf (a garbage or truncated file is named here, not deep inside ORT), the
/// model has a graph, and every tensor it embeds (initializers, sparse initializers, `Constant`
/// values, tensors in subgraphs and functions) has dims that agree with its data, keeps its data in
/// the file (no `external_data`: a model must not make the runtime read other files), and holds only
/// finite values if it is floating point — a NaN or infinite weight makes every output NaN, which
/// would otherwise come back as black holes with a success status.
///
/// A hand-written wire-format walk rather than a protobuf library: it never allocates in proportion
/// to a length the file claims (only slices of `bytes`), recursion is bounded, and it is total (every
/// malformed input is an `Err`, never a panic). The error is a message for
/// [`crate::RuntimeError::InvalidModel`].
pub fn scan_onnx(bytes: &[u8]) -> Result<(), String> {
    let mut seen_graph = false;
    let mut r = wire::Reader::new(bytes, 0);
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (7, wire::Value::Bytes(g, at)) => {
                seen_graph = true;
                scan::graph(g, at, 0)?
            }
            // training_info: its graphs hold tensors too.
            (20, wire::Value::Bytes(t, at)) => {
                let mut t = wire::Reader::new(t, at);
                while let Some((f, v)) = t.next()? {
                    if let (1 | 2, wire::Value::Bytes(g, at)) = (f, v) {
                        scan::graph(g, at, 1)?;
                    }
                }
            }
            (25, wire::Value::Bytes(f, at)) => scan::function(f, at, 0)?,
            (7 | 20 | 25, v) => return Err(wire::mismatch("ModelProto", field, &v)),
            _ => {}
        }
    }
    if !seen_graph {
        return Err("no graph: not an ONNX model".into());
    }
    Ok(())
}

/// The protobuf wire format, enough to walk messages without a schema compiler.
mod wire {
    /// One field's value; `Bytes` carries its offset in the file for messages.
    pub enum Value<'a> {
        Varint(u64),
        Fixed64(u64),
        Fixed32(u32),
        Bytes(&'a [u8], usize),
    }

    pub struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
        /// Offset of `buf` in the file, for messages.
        base: usize,
    }

    impl<'a> Reader<'a> {
        pub fn new(buf: &'a [u8], base: usize) -> Self {
            Reader { buf, pos: 0, base }
        }

        fn at(&self) -> usize {
            self.base + self.pos
        }

        pub fn is_empty(&self) -> bool {
            self.pos == self.buf.len()
        }

        pub fn varint(&mut self) -> Result<u64, String> {
            let start = self.at();
            let mut v = 0u64;
            for i in 0..10 {
                let Some(&b) = self.buf.get(self.pos) else {
                    return Err(format!("truncated: the file ends inside a number at byte {start}"));
                };
                self.pos += 1;
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err(format!(
                "malformed protobuf: a number longer than 10 bytes at byte {start}"
            ))
        }

        fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], String> {
            let left = self.buf.len() - self.pos;
            if n > left as u64 {
                return Err(format!(
                    "truncated: {what} at byte {} claims {n} bytes, {left} are left",
                    self.at()
                ));
            }
            let s = &self.buf[self.pos..self.pos + n as usize];
            self.pos += n as usize;
            Ok(s)
        }

        /// The next (field number, value), `None` at the end of the message.
        pub fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
            if self.pos == self.buf.len() {
                return Ok(None);
            }
            let at = self.at();
            let key = self.varint()?;
            let field = key >> 3;
            if field == 0 || field > (1 << 29) - 1 {
                return Err(format!("malformed protobuf: field number {field} at byte {at}"));
            }
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => Value::Fixed64(u64::from_le_bytes(
                    self.take(8, "a 64-bit value")?.try_into().expect("8 bytes"),
                )),
                2 => {
                    let n = self.varint()?;
                    let start = self.at();
                    Value::Bytes(self.take(n, "a field")?, start)
                }
                5 => Value::Fixed32(u32::from_le_bytes(
                    self.take(4, "a 32-bit value")?.try_into().expect("4 bytes"),
                )),
                w => {
                    return Err(format!(
                        "malformed protobuf: wire type {w} (field {field}) at byte {at}"
                    ))
                }
            };
            Ok(Some((field, value)))
        }
    }

    /// A field of a known message with the wrong wire type.
    pub fn mismatch(message: &str, field: u64, v: &Value) -> String {
        let kind = match v {
            Value::Varint(_) => "a number",
            Value::Fixed64(_) => "a 64-bit value",
            Value::Fixed32(_) => "a 32-bit value",
            Value::Bytes(..) => "bytes",
        };
        format!("malformed ONNX: field {field} of {message} is {kind}")
    }
}

/// The ONNX messages that can hold tensors (field numbers of onnx.proto).
mod scan {
    use super::wire::{mismatch, Reader, Value};

    /// Graphs nest through node attributes (If/Loop bodies); facerecon graphs never do, so a few
    /// levels are plenty, and the bound keeps a hostile file from overflowing the stack.
    const MAX_DEPTH: usize = 8;

    pub fn graph(buf: &[u8], at: usize, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("subgraphs nested more than {MAX_DEPTH} deep (byte {at})"));
        }
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Bytes(n, at)) => node(n, at, depth)?,
                (5, Value::Bytes(t, at)) => tensor(t, at, "initializer")?,
                (15, Value::Bytes(s, at)) => sparse(s, at)?,
                (1 | 5 | 15, v) => return Err(mismatch("GraphProto", field, &v)),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn function(buf: &[u8], at: usize, depth: usize) -> Result<(), String> {
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (7, Value::Bytes(n, at)) => node(n, at, depth)?,
                (11, Value::Bytes(a, at)) => attribute(a, at, depth, "function")?,
                (7 | 11, v) => return Err(mismatch("FunctionProto", field, &v)),
                _ => {}
            }
        }
        Ok(())
    }

    fn node(buf: &[u8], at: usize, depth: usize) -> Result<(), String> {
        // The name first (it may come after the attributes), for the message.
        let mut name = String::new();
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            if let (3, Value::Bytes(n, _)) = (field, v) {
                name = String::from_utf8_lossy(n).into_owned();
            }
        }
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (5, Value::Bytes(a, at)) => attribute(a, at, depth, &format!("node `{name}`"))?,
                (5, v) => return Err(mismatch("NodeProto", field, &v)),
                _ => {}
            }
        }
        Ok(())
    }

    fn attribute(buf: &[u8], at: usize, depth: usize, owner: &str) -> Result<(), String> {
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (5 | 10, Value::Bytes(t, at)) => tensor(t, at, &format!("attribute of {owner}"))?,
                (6 | 11, Value::Bytes(g, at)) => graph(g, at, depth + 1)?,
                (22 | 23, Value::Bytes(s, at)) => sparse(s, at)?,
                (5 | 6 | 10 | 11 | 22 | 23, v) => return Err(mismatch("AttributeProto", field, &v)),
                _ => {}
            }
        }
        Ok(())
    }

    fn sparse(buf: &[u8], at: usize) -> Result<(), String> {
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1 | 2, Value::Bytes(t, at)) => tensor(t, at, "sparse initializer")?,
                (1 | 2, v) => return Err(mismatch("SparseTensorProto", field, &v)),
                _ => {}
            }
        }
        Ok(())
    }

    /// `repeated` scalar fields arrive packed (one `Bytes`) or one value per field: count both.
    #[derive(Default)]
    struct Repeated<'a> {
        count: u64,
        packed: Vec<&'a [u8]>,
        single32: Vec<u32>,
        single64: Vec<u64>,
    }

    // ONNX TensorProto.DataType values.
    const FLOAT: u64 = 1;
    const UINT8: u64 = 2;
    const INT8: u64 = 3;
    const UINT16: u64 = 4;
    const INT16: u64 = 5;
    const INT32: u64 = 6;
    const INT64: u64 = 7;
    const BOOL: u64 = 9;
    const FLOAT16: u64 = 10;
    const DOUBLE: u64 = 11;
    const UINT32: u64 = 12;
    const UINT64: u64 = 13;
    const BFLOAT16: u64 = 16;

    /// Elements a tensor may declare: no file below 2 GiB can hold more than 2^31 values.
    const MAX_ELEMENTS: u64 = 1 << 31;

    fn tensor(buf: &[u8], at: usize, kind: &str) -> Result<(), String> {
        let mut name = String::new();
        let mut dims: Vec<i64> = Vec::new();
        let mut dtype = 0u64;
        let mut raw: Option<&[u8]> = None;
        let mut external = false;
        let (mut floats, mut doubles, mut int32s, mut int64s) = (
            Repeated::default(),
            Repeated::default(),
            Repeated::default(),
            Repeated::default(),
        );
        let mut strings = 0u64;
        let mut r = Reader::new(buf, at);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Varint(d)) => dims.push(d as i64),
                (1, Value::Bytes(p, at)) => {
                    let mut p = Reader::new(p, at);
                    while !p.is_empty() {
                        dims.push(p.varint()? as i64);
                    }
                }
                (2, Value::Varint(t)) => dtype = t,
                (4, Value::Fixed32(x)) => floats.push32(x),
                (4, Value::Bytes(p, _)) => floats.pack(p, 4, field)?,
                (5, Value::Varint(x)) => int32s.push64(x),
                (5, Value::Bytes(p, at)) => int32s.pack_varints(p, at)?,
                (6, Value::Bytes(..)) => strings += 1,
                (7 | 11, Value::Varint(x)) => int64s.push64(x),
                (7 | 11, Value::Bytes(p, at)) => int64s.pack_varints(p, at)?,
                (8, Value::Bytes(n, _)) => name = String::from_utf8_lossy(n).into_owned(),
                (9, Value::Bytes(b, _)) => raw = Some(b),
                (10, Value::Fixed64(x)) => doubles.push64(x),
                (10, Value::Bytes(p, _)) => doubles.pack(p, 8, field)?,
                (13, Value::Bytes(..)) => external = true,
                (14, Value::Varint(loc)) => external |= loc != 0,
                (1 | 2 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 13 | 14, v) => {
                    return Err(mismatch("TensorProto", field, &v))
                }
                _ => {}
            }
        }
        let what = format!("{kind} `{name}`");
        if external {
            return Err(format!(
                "{what} keeps its data in an external file; a facerecon model embeds all its weights"
            ));
        }
        let mut numel = 1u64;
        for &d in &dims {
            if d < 0 {
                return Err(format!("{what} has a negative dimension (dims {dims:?})"));
            }
            numel = numel.saturating_mul(d as u64);
        }
        if numel > MAX_ELEMENTS {
            return Err(format!(
                "{what} declares dims {dims:?}, more values than a model file can hold"
            ));
        }
        // (bytes per element in raw_data, elements stored in the typed field for this type)
        let (elem, typed) = match dtype {
            FLOAT => (Some(4), floats.count),
            DOUBLE => (Some(8), doubles.count),
            FLOAT16 | BFLOAT16 | UINT16 | INT16 => (Some(2), int32s.count),
            UINT8 | INT8 | BOOL => (Some(1), int32s.count),
            INT32 => (Some(4), int32s.count),
            UINT32 => (Some(4), int64s.count),
            INT64 | UINT64 => (Some(8), int64s.count),
            _ => (None, 0),
        };
        if let Some(elem) = elem {
            let stored = match raw {
                Some(b) if !(b.len() as u64).is_multiple_of(elem) => {
                    return Err(format!(
                        "{what}: raw_data is {} bytes, not a whole number of {elem}-byte values",
                        b.len()
                    ))
                }
                Some(b) => b.len() as u64 / elem,
                None => typed,
            };
            if stored != numel {
                return Err(format!(
                    "{what} has dims {dims:?} ({numel} values) but holds {stored} values"
                ));
            }
        } else if dtype == 8 && raw.is_none() && strings != numel {
            return Err(format!(
                "{what} has dims {dims:?} ({numel} values) but holds {strings} strings"
            ));
        }
        let bad = match (dtype, raw) {
            (FLOAT, Some(b)) => count_bad(b.chunks_exact(4), |c| {
                !f32::from_le_bytes(c.try_into().expect("4 bytes")).is_finite()
            }),
            (FLOAT, None) => floats.count_bad32(|x| !f32::from_bits(x).is_finite()),
            (DOUBLE, Some(b)) => count_bad(b.chunks_exact(8), |c| {
                !f64::from_le_bytes(c.try_into().expect("8 bytes")).is_finite()
            }),
            (DOUBLE, None) => doubles.count_bad64(|x| !f64::from_bits(x).is_finite()),
            // Half floats: an all-ones exponent is infinity or NaN.
            (FLOAT16, Some(b)) => count_bad(b.chunks_exact(2), |c| {
                u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00
            }),
            (FLOAT16, None) => int32s.count_bad_varint(|x| x as u16 & 0x7c00 == 0x7c00)?,
            (BFLOAT16, Some(b)) => count_bad(b.chunks_exact(2), |c| {
                u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80
            }),
            (BFLOAT16, None) => int32s.count_bad_varint(|x| x as u16 & 0x7f80 == 0x7f80)?,
            _ => 0,
        };
        if bad > 0 {
            return Err(format!(
                "{what} has {bad} non-finite value{} (NaN or infinity) of {numel}: the weights are broken (a diverged or corrupted checkpoint?)",
                if bad == 1 { "" } else { "s" }
            ));
        }
        Ok(())
    }

    fn count_bad<'a>(chunks: impl Iterator<Item = &'a [u8]>, bad: impl Fn(&[u8]) -> bool) -> u64 {
        chunks.filter(|c| bad(c)).count() as u64
    }

    impl<'a> Repeated<'a> {
        fn push32(&mut self, x: u32) {
            self.count += 1;
            self.single32.push(x);
        }
        fn push64(&mut self, x: u64) {
            self.count += 1;
            self.single64.push(x);
        }
        /// A packed run of fixed-size values.
        fn pack(&mut self, p: &'a [u8], size: usize, field: u64) -> Result<(), String> {
            if !p.len().is_multiple_of(size) {
                return Err(format!(
                    "malformed ONNX: packed field {field} of TensorProto is {} bytes, not a multiple of {size}",
                    p.len()
                ));
            }
            self.count += (p.len() / size) as u64;
            self.packed.push(p);
            Ok(())
        }
        /// A packed run of varints (counted now, decoded again only for half floats).
        fn pack_varints(&mut self, p: &'a [u8], at: usize) -> Result<(), String> {
            let mut r = Reader::new(p, at);
            while !r.is_empty() {
                r.varint()?;
                self.count += 1;
            }
            self.packed.push(p);
            Ok(())
        }
        fn count_bad32(&self, bad: impl Fn(u32) -> bool) -> u64 {
            let packed = self.packed.iter().flat_map(|p| p.chunks_exact(4));
            let packed = packed.map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
            packed.chain(self.single32.iter().copied()).filter(|&x| bad(x)).count() as u64
        }
        fn count_bad64(&self, bad: impl Fn(u64) -> bool) -> u64 {
            let packed = self.packed.iter().flat_map(|p| p.chunks_exact(8));
            let packed = packed.map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
            packed.chain(self.single64.iter().copied()).filter(|&x| bad(x)).count() as u64
        }
        fn count_bad_varint(&self, bad: impl Fn(u64) -> bool) -> Result<u64, String> {
            let mut n = self.single64.iter().filter(|&&x| bad(x)).count() as u64;
            for p in &self.packed {
                let mut r = Reader::new(p, 0);
                while !r.is_empty() {
                    n += bad(r.varint()?) as u64;
                }
            }
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn metadata_wins_and_symbolic_dims_are_fine() {
        let m = meta(&[
            (keys::IMAGE_SIZE, "128"),
            (keys::NAME, "seed"),
            (keys::METRICS, r#"{"psnr_hole": 21.5}"#),
            (keys::MASK_CHANNEL, "true"),
        ]);
        let info = ModelInfo::from_parts(m, &[-1, 3, -1, -1], &[-1, 1, -1, -1]).unwrap();
        assert_eq!(info.image_size, 128);
        assert_eq!(info.fixed_batch, None);
        assert_eq!(info.name.as_deref(), Some("seed"));
        assert_eq!(info.mask_channel, Some(true));
        assert_eq!(info.metrics.unwrap()["psnr_hole"], 21.5);
    }

    #[test]
    fn falls_back_to_the_input_shape() {
        let info = ModelInfo::from_parts(BTreeMap::new(), &[2, 3, 64, 64], &[2, 1, 64, 64]).unwrap();
        assert_eq!(info.image_size, 64);
        assert_eq!(info.fixed_batch, Some(2));
    }

    #[test]
    fn rejects_inconsistent_models() {
        let sym = [-1, 3, -1, -1];
        type Case = (BTreeMap<String, String>, Vec<i64>, Vec<i64>, &'static str);
        let cases: Vec<Case> = vec![
            (BTreeMap::new(), sym.to_vec(), vec![-1, 1, -1, -1], "no static size"),
            (
                meta(&[(keys::IMAGE_SIZE, "64")]),
                vec![-1, 3, 32, 32],
                vec![-1, 1, 32, 32],
                "disagrees",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                vec![-1, 4, 32, 32],
                vec![-1, 1, 32, 32],
                "3 (RGB) channels",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32"), (keys::MASK_CONVENTION, "0=hole")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "only",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "abc")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "not a positive integer",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                vec![-1, 3, 32],
                vec![-1, 1, 32, 32],
                "rank 3",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                sym.to_vec(),
                vec![-1, 1, 16, 16],
                "does not match",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32"), (keys::METRICS, "{oops")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "not JSON",
            ),
        ];
        for (m, img, mask, want) in cases {
            let err = ModelInfo::from_parts(m, &img, &mask).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
