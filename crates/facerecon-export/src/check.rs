//! Structural checks of an exported model: the file decodes, and its inputs, outputs, initializers
//! and node graph are what the spec says.

use crate::lower::BATCH;
use crate::proto::value_dims;
use crate::ExportError;
use candle_onnx::onnx::{tensor_proto::DataType, ModelProto};
use facerecon_contract::names::{IMAGE, INPAINTED, MASK, RECONSTRUCTION};
use facerecon_model::ModelSpec;
use prost::Message;
use std::collections::HashSet;
use std::path::Path;

/// Read and decode an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto, ExportError> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
        path: path.into(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|source| ExportError::Decode {
        path: path.into(),
        source,
    })
}

/// Check `model` (read from `path`, named in errors) against `spec`: graph inputs `image`/`mask` and
/// outputs `reconstruction`/`inpainted` with a symbolic batch and the spec's shapes; every parameter
/// of the spec as a float32 initializer of the right shape and size; named nodes, topologically
/// ordered, reading only defined tensors.
pub fn check_model(model: &ModelProto, spec: &ModelSpec, path: &Path) -> Result<(), ExportError> {
    let bad = |msg: String| ExportError::Invalid { path: path.into(), msg };
    let g = model.graph.as_ref().ok_or_else(|| bad("no graph".into()))?;
    let (c, s) = (spec.channels as i64, spec.image_size as i64);
    let want_io = |vals: &[candle_onnx::onnx::ValueInfoProto], names: &[(&str, i64)], what: &str| {
        let got: Vec<&str> = vals.iter().map(|v| v.name.as_str()).collect();
        let want: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        if got != want {
            return Err(bad(format!("{what} are {got:?}, expected {want:?}")));
        }
        for (v, (n, ch)) in vals.iter().zip(names) {
            let dims = value_dims(v);
            if dims != Some((DataType::Float as i32, vec![None, Some(*ch), Some(s), Some(s)])) {
                return Err(bad(format!(
                    "{what} '{n}' is {dims:?}, expected float32 [{BATCH}, {ch}, {s}, {s}]"
                )));
            }
        }
        Ok(())
    };
    want_io(&g.input, &[(IMAGE, c), (MASK, 1)], "inputs")?;
    want_io(&g.output, &[(RECONSTRUCTION, c), (INPAINTED, c)], "outputs")?;

    for (name, shape) in spec.parameters()? {
        let t = g
            .initializer
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(format!("initializer '{name}' is missing")))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let numel: usize = shape.iter().product();
        if t.dims != dims || t.data_type != DataType::Float as i32 || t.raw_data.len() != 4 * numel {
            return Err(bad(format!(
                "initializer '{name}': dims {:?}, type {}, {} bytes; expected float32 {dims:?} ({} bytes)",
                t.dims,
                t.data_type,
                t.raw_data.len(),
                4 * numel
            )));
        }
    }

    check_finite(model).map_err(bad)?;

    let mut defined: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    let mut node_names = HashSet::new();
    for n in &g.node {
        if n.name.is_empty() || !node_names.insert(n.name.as_str()) {
            return Err(bad(format!(
                "node name '{}' ({}) is empty or repeated",
                n.name, n.op_type
            )));
        }
        if let Some(i) = n.input.iter().find(|i| !i.is_empty() && !defined.contains(i.as_str())) {
            return Err(bad(format!("node '{}' reads '{i}' before it is defined", n.name)));
        }
        defined.extend(n.output.iter().map(String::as_str));
    }
    for o in [RECONSTRUCTION, INPAINTED] {
        if !defined.contains(o) {
            return Err(bad(format!("no node writes output '{o}'")));
        }
    }
    Ok(())
}

/// Every float32 and float16 initializer, the spec's weights and the graph's own constants alike,
/// must be finite. Run on the file as re-read after writing, for every precision (fp32, fp16, int8's
/// float scales and fp32 layers): a weight that overflowed float16 (> 65504) is infinite there.
pub fn check_finite(model: &ModelProto) -> Result<(), String> {
    let Some(g) = &model.graph else { return Ok(()) };
    for t in &g.initializer {
        let n = if t.data_type == DataType::Float as i32 {
            let values = t
                .raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            values
                .chain(t.float_data.iter().copied())
                .filter(|v| !v.is_finite())
                .count()
        } else if t.data_type == DataType::Float16 as i32 {
            // Raw little-endian halves, or (ONNX's convention) one half per int32_data element.
            let raw = t.raw_data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
            let packed = t.int32_data.iter().map(|&v| v as u16);
            // A half is NaN or infinite when all five exponent bits are set.
            raw.chain(packed).filter(|h| h & 0x7c00 == 0x7c00).count()
        } else {
            0
        };
        if n > 0 {
            return Err(format!(
                "initializer '{}' has {n} non-finite values (NaN or infinity)",
                t.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{export, write_model, Metadata};
    use candle_core::Device;

    fn tiny() -> (ModelSpec, ModelProto) {
        let spec = ModelSpec::from_yaml(
            "image_size: 8\nlayers:\n  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: sigmoid}\n",
        )
        .unwrap();
        let w = facerecon_model::random_weights(&spec, 1, 0.1, &Device::Cpu).unwrap();
        let m = export(&spec, &w, &Metadata::default()).unwrap();
        (spec, m)
    }

    #[test]
    fn written_model_reads_back_identically_and_checks() {
        let (spec, m) = tiny();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.onnx");
        write_model(&path, &m).unwrap();
        let back = read_model(&path).unwrap();
        assert_eq!(back, m);
        check_model(&back, &spec, &path).unwrap();
        // The weights are the raw little-endian f32 of the tensor.
        let init = back
            .graph
            .unwrap()
            .initializer
            .into_iter()
            .find(|t| t.name == "c.bias")
            .unwrap();
        assert_eq!(init.raw_data.len(), 12);
    }

    #[test]
    fn check_names_what_is_wrong() {
        let (spec, m) = tiny();
        let p = Path::new("m.onnx");
        let mut bad = m.clone();
        bad.graph.as_mut().unwrap().initializer.retain(|t| t.name != "c.weight");
        let e = check_model(&bad, &spec, p).unwrap_err().to_string();
        assert!(e.starts_with("m.onnx:") && e.contains("'c.weight' is missing"), "{e}");
        let mut bad = m.clone();
        bad.graph.as_mut().unwrap().input.reverse();
        let e = check_model(&bad, &spec, p).unwrap_err().to_string();
        assert!(e.contains("inputs are [\"mask\", \"image\"]"), "{e}");
        let mut bad = m.clone();
        bad.graph.as_mut().unwrap().node.reverse();
        let e = check_model(&bad, &spec, p).unwrap_err().to_string();
        assert!(e.contains("before it is defined"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.onnx");
        std::fs::write(&junk, b"\xff\xff\xff not protobuf").unwrap();
        let e = read_model(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.onnx") && e.contains("not a valid ONNX model"), "{e}");
    }

    #[test]
    fn non_finite_weights_are_refused_by_export_and_check() {
        let (spec, m) = tiny();
        let mut w = facerecon_model::random_weights(&spec, 1, 0.1, &Device::Cpu).unwrap();
        let nan = candle_core::Tensor::new(&[0.1f32, f32::NAN, f32::INFINITY], &Device::Cpu).unwrap();
        w.insert("c.bias".into(), nan);
        let e = export(&spec, &w, &Metadata::default()).unwrap_err().to_string();
        assert!(e.contains("weight 'c.bias': 2 of 3 values are not finite"), "{e}");
        // A written file with a NaN weight (however it got there) fails the check, naming the file.
        let mut bad_model = m.clone();
        let init = bad_model
            .graph
            .as_mut()
            .unwrap()
            .initializer
            .iter_mut()
            .find(|t| t.name == "c.weight")
            .unwrap();
        init.raw_data[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        let e = check_model(&bad_model, &spec, Path::new("m.onnx"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.onnx:") && e.contains("initializer 'c.weight' has 1 non-finite values"),
            "{e}"
        );
    }

    #[test]
    fn weights_must_match_the_spec() {
        let (spec, _) = tiny();
        let mut w = facerecon_model::random_weights(&spec, 1, 0.1, &Device::Cpu).unwrap();
        w.insert(
            "c.bias".into(),
            candle_core::Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let e = export(&spec, &w, &Metadata::default()).unwrap_err().to_string();
        assert!(e.contains("weight 'c.bias': has shape [4]"), "{e}");
        w.remove("c.bias");
        let e = export(&spec, &w, &Metadata::default()).unwrap_err().to_string();
        assert!(e.contains("weight 'c.bias': missing"), "{e}");
        let w = facerecon_model::random_weights(&spec, 1, 0.1, &Device::Cpu).unwrap();
        let e = crate::export_with_opset(&spec, &w, &Metadata::default(), 9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("opset 9 is not supported"), "{e}");
    }

    #[test]
    fn non_finite_float16_initializers_are_refused() {
        use super::{check_finite, DataType};
        let half = |bits: &[u16]| bits.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>();
        let model = |t: crate::onnx::TensorProto| crate::onnx::ModelProto {
            graph: Some(crate::onnx::GraphProto {
                initializer: vec![t],
                ..Default::default()
            }),
            ..Default::default()
        };
        let tensor = |raw: Vec<u8>| crate::onnx::TensorProto {
            name: "w".into(),
            data_type: DataType::Float16 as i32,
            dims: vec![3],
            raw_data: raw,
            ..Default::default()
        };
        // 1.0, -2.0, 65504 (the largest half) are finite; +inf (0x7c00) and a NaN (0x7e00) are not.
        assert!(check_finite(&model(tensor(half(&[0x3c00, 0xc000, 0x7bff])))).is_ok());
        let e = check_finite(&model(tensor(half(&[0x3c00, 0x7c00, 0x7e00])))).unwrap_err();
        assert!(e.contains("initializer 'w' has 2 non-finite values"), "{e}");
    }
}
