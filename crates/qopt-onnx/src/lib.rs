//! qopt-onnx
