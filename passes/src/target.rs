//! Deployment targets (DESIGN.md §5). The rules each target imposes (which ops are
//! quantized, symmetry, per-channel axes, bias handling, placement) are data that
//! `observe`, `qdq` and the backends read.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    OnnxRuntime,
    TensorRt,
    TfLite,
    MindSpore,
}

impl Target {
    pub const NAMES: [&'static str; 4] = ["onnxruntime", "tensorrt", "tflite", "mindspore"];

    pub fn from_name(s: &str) -> Option<Target> {
        match s {
            "onnxruntime" | "ort" => Some(Target::OnnxRuntime),
            "tensorrt" | "trt" => Some(Target::TensorRt),
            "tflite" | "litert" => Some(Target::TfLite),
            "mindspore" => Some(Target::MindSpore),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::OnnxRuntime => "onnxruntime",
            Target::TensorRt => "tensorrt",
            Target::TfLite => "tflite",
            Target::MindSpore => "mindspore",
        }
    }
}
