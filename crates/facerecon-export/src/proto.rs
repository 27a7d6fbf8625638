//! Small constructors for the ONNX protobuf messages (`candle_onnx::onnx`, proto3 via prost).

use candle_onnx::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A node; `name` must be unique in the graph (every node is named, for readable ORT errors).
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An integer attribute (`stride`, `axis`, ...).
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// An integer-list attribute (`pads`, `kernel_shape`, ...).
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float attribute (LeakyRelu's `alpha`).
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// A string attribute (Resize's `mode`, ...).
pub fn attr_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A float32 initializer, little-endian `raw_data`.
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 initializer, little-endian `raw_data`.
pub fn tensor_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// One dimension of a value's shape: fixed or symbolic.
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named size chosen at run time (the batch).
    Symbolic(&'static str),
}

/// A float32 graph input/output with the given shape.
pub fn value_f32(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| candle_onnx::onnx::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Symbolic(s) => dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The shape of a float32 graph value as written by [`value_f32`]: `Some(d)` fixed, `None` symbolic.
pub fn value_dims(v: &ValueInfoProto) -> Option<(i32, Vec<Option<i64>>)> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => {
            let dims = t
                .shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(dimension::Value::DimValue(n)) => Some(n),
                    _ => None,
                })
                .collect();
            Some((t.elem_type, dims))
        }
        _ => None,
    }
}
