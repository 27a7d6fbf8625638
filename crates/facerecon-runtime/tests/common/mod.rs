//! Hand-encoded ONNX files for the hostile-model tests: a protobuf writer small enough to read, so the
//! tests can build any malformed model (wrong shapes, dtypes, NaN weights, external data) without a
//! protobuf library or Python. `Spec::default()` encodes the graph of tests/data/identity.onnx.
#![allow(dead_code)]

use std::path::PathBuf;

use facerecon_runtime::contract::{
    keys,
    names::{IMAGE, INPAINTED, MASK, RECONSTRUCTION},
};
use facerecon_runtime::RuntimeOptions;

#[allow(unused_imports)] // each test binary uses some of them
pub use facerecon_testutil::{fuzz_cases, runtime_data as fixture};

pub fn options() -> RuntimeOptions {
    RuntimeOptions {
        ort_library: Some(facerecon_testutil::ort_library().into()),
        threads: Some(1),
        batch_size: 4,
        ..Default::default()
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn f_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

pub fn f_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// ONNX data types.
pub const FLOAT: u64 = 1;
pub const DOUBLE: u64 = 11;
pub const FLOAT16: u64 = 10;

/// A TensorProto.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub dtype: u64,
    /// `raw_data`.
    pub raw: Vec<u8>,
    /// Data in `float_data` instead of `raw_data`.
    pub float_data: Option<Vec<f32>>,
    /// `data_location = EXTERNAL` with a path in `external_data`.
    pub external: bool,
}

impl Tensor {
    pub fn f32(name: &str, dims: &[i64], values: &[f32]) -> Self {
        Tensor {
            name: name.into(),
            dims: dims.to_vec(),
            dtype: FLOAT,
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            float_data: None,
            external: false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in &self.dims {
            f_varint(&mut t, 1, d as u64);
        }
        f_varint(&mut t, 2, self.dtype);
        if let Some(values) = &self.float_data {
            let packed: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            f_bytes(&mut t, 4, &packed);
        }
        f_bytes(&mut t, 8, self.name.as_bytes());
        if self.external {
            let mut entry = Vec::new();
            f_bytes(&mut entry, 1, b"location");
            f_bytes(&mut entry, 2, b"/etc/passwd");
            f_bytes(&mut t, 13, &entry);
            f_varint(&mut t, 14, 1);
        } else if self.float_data.is_none() {
            f_bytes(&mut t, 9, &self.raw);
        }
        t
    }
}

/// A graph input/output: name, element type, dims (`None` = symbolic "batch").
#[derive(Clone, Debug)]
pub struct Io {
    pub name: String,
    pub dtype: u64,
    pub dims: Vec<Option<i64>>,
}

impl Io {
    pub fn new(name: &str, dims: &[Option<i64>]) -> Self {
        Io {
            name: name.into(),
            dtype: FLOAT,
            dims: dims.to_vec(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in &self.dims {
            let mut dim = Vec::new();
            match d {
                Some(n) => f_varint(&mut dim, 1, *n as u64),
                None => f_bytes(&mut dim, 2, b"batch"),
            }
            f_bytes(&mut shape, 1, &dim);
        }
        let mut tensor_type = Vec::new();
        f_varint(&mut tensor_type, 1, self.dtype);
        f_bytes(&mut tensor_type, 2, &shape);
        let mut ty = Vec::new();
        f_bytes(&mut ty, 1, &tensor_type);
        let mut v = Vec::new();
        f_bytes(&mut v, 1, self.name.as_bytes());
        f_bytes(&mut v, 2, &ty);
        v
    }
}

/// A node: op, inputs, outputs, and an optional tensor attribute `value` (for `Constant`).
#[derive(Clone, Debug)]
pub struct Node {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub value: Option<Tensor>,
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        op: op.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        value: None,
    }
}

impl Node {
    fn encode(&self, index: usize) -> Vec<u8> {
        let mut n = Vec::new();
        for i in &self.inputs {
            f_bytes(&mut n, 1, i.as_bytes());
        }
        for o in &self.outputs {
            f_bytes(&mut n, 2, o.as_bytes());
        }
        f_bytes(&mut n, 3, format!("n{index}").as_bytes());
        f_bytes(&mut n, 4, self.op.as_bytes());
        if let Some(t) = &self.value {
            let mut a = Vec::new();
            f_bytes(&mut a, 1, b"value");
            f_bytes(&mut a, 5, &t.encode());
            f_varint(&mut a, 20, 4); // AttributeType TENSOR
            f_bytes(&mut n, 5, &a);
        }
        n
    }
}

/// A whole model.
#[derive(Clone, Debug)]
pub struct Spec {
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub initializers: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub metadata: Vec<(String, String)>,
    pub opset: u64,
}

impl Default for Spec {
    /// identity.onnx: reconstruction = half * image + bias; inpainted = mask*rec + (1-mask)*image.
    fn default() -> Self {
        Spec::identity(0.5, [0.1, 0.3, 0.5])
    }
}

impl Spec {
    pub fn identity(half: f32, bias: [f32; 3]) -> Self {
        let s = Some(32);
        Spec {
            inputs: vec![
                Io::new(IMAGE, &[None, Some(3), s, s]),
                Io::new(MASK, &[None, Some(1), s, s]),
            ],
            outputs: vec![
                Io::new(RECONSTRUCTION, &[None, Some(3), s, s]),
                Io::new(INPAINTED, &[None, Some(3), s, s]),
            ],
            initializers: vec![
                Tensor::f32("half", &[], &[half]),
                Tensor::f32("bias", &[1, 3, 1, 1], &bias),
                Tensor::f32("one", &[], &[1.0]),
            ],
            nodes: vec![
                node("Mul", &[IMAGE, "half"], &["scaled"]),
                node("Add", &["scaled", "bias"], &[RECONSTRUCTION]),
                node("Mul", &[MASK, RECONSTRUCTION], &["filled"]),
                node("Sub", &["one", MASK], &["known"]),
                node("Mul", &["known", IMAGE], &["kept"]),
                node("Add", &["filled", "kept"], &[INPAINTED]),
            ],
            metadata: vec![(keys::IMAGE_SIZE.into(), "32".into())],
            opset: 17,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut g = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            f_bytes(&mut g, 1, &n.encode(i));
        }
        f_bytes(&mut g, 2, b"hostile");
        for t in &self.initializers {
            f_bytes(&mut g, 5, &t.encode());
        }
        for i in &self.inputs {
            f_bytes(&mut g, 11, &i.encode());
        }
        for o in &self.outputs {
            f_bytes(&mut g, 12, &o.encode());
        }
        let mut m = Vec::new();
        f_varint(&mut m, 1, 8); // ir_version
        f_bytes(&mut m, 2, b"tests/common");
        f_bytes(&mut m, 7, &g);
        let mut opset = Vec::new();
        f_bytes(&mut opset, 1, b"");
        f_varint(&mut opset, 2, self.opset);
        f_bytes(&mut m, 8, &opset);
        for (k, v) in &self.metadata {
            let mut e = Vec::new();
            f_bytes(&mut e, 1, k.as_bytes());
            f_bytes(&mut e, 2, v.as_bytes());
            f_bytes(&mut m, 14, &e);
        }
        m
    }

    /// Write to `dir/name` and return the path.
    pub fn write(&self, dir: &std::path::Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.encode()).unwrap();
        path
    }
}
