//! Writing a model file, with external data when the tensors do not fit in one protobuf.
//!
//! A protobuf message is limited to 2 GiB, so larger models keep their tensors in a separate
//! file (onnx `docs/ExternalData.md`): each large initializer gets `data_location = EXTERNAL`
//! and `location`/`offset`/`length` entries pointing into `<file>.data` next to the model.
//! Offsets are aligned to 4096 bytes so runtimes can map tensors page by page, and, as
//! `onnx.external_data_helper` does by default, tensors under 1 KiB stay inline.
//!
//! Both files are written atomically (`qopt_ir::fsutil::write_atomic`): the data file first,
//! then the model, so a failed run never leaves a model pointing at a half-written data file.

use super::{ExportOptions, MAX_PROTO_BYTES, encode_model, export};
use crate::error::ExportError;
use onnx_protobuf::StringStringEntryProto;
use onnx_protobuf::tensor_proto::DataLocation;
use qopt_ir::Graph;
use qopt_ir::fsutil::write_atomic;
use std::path::Path;

/// Tensors smaller than this stay inline.
const EXTERNAL_MIN_BYTES: usize = 1024;
const ALIGN: u64 = 4096;

/// Export a graph to `path` with the default options.
pub fn save(g: &Graph, path: impl AsRef<Path>) -> Result<(), ExportError> {
    save_with(g, path, ExportOptions::default())
}

/// Export a graph to `path`; tensors go to `<file>.data` when they total more than
/// `opts.external_data_threshold` bytes or the model would not fit in one protobuf.
pub fn save_with(
    g: &Graph,
    path: impl AsRef<Path>,
    opts: ExportOptions,
) -> Result<(), ExportError> {
    let path = path.as_ref();
    let io = |p: &Path| {
        let file = p.display().to_string();
        move |source| ExportError::Io { file, source }
    };
    let mut model = export(g, opts)?;
    let too_large = {
        use onnx_protobuf::Message;
        model.compute_size() > MAX_PROTO_BYTES
    };
    let graph = model.graph.as_mut().expect("export always writes a graph");
    let tensor_bytes: u64 = graph
        .initializer
        .iter()
        .map(|t| t.raw_data.len() as u64)
        .sum();
    if tensor_bytes > opts.external_data_threshold || too_large {
        let file_name = path.file_name().ok_or_else(|| {
            ExportError::Graph(format!("output path {} has no file name", path.display()))
        })?;
        let data_name = format!("{}.data", file_name.to_string_lossy());
        let data_path = path.with_file_name(&data_name);
        let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut offset: u64 = 0;
        for t in graph.initializer.iter_mut() {
            if t.raw_data.len() < EXTERNAL_MIN_BYTES {
                continue;
            }
            let pad = (ALIGN - offset % ALIGN) % ALIGN;
            offset += pad;
            let bytes = std::mem::take(&mut t.raw_data);
            let entry = |k: &str, v: String| StringStringEntryProto {
                key: k.into(),
                value: v,
                ..Default::default()
            };
            t.data_location = DataLocation::EXTERNAL.into();
            t.external_data = vec![
                entry("location", data_name.clone()),
                entry("offset", offset.to_string()),
                entry("length", bytes.len().to_string()),
            ];
            offset += bytes.len() as u64;
            chunks.push((pad, bytes));
        }
        write_atomic(&data_path, |w| {
            for (pad, bytes) in &chunks {
                w.write_all(&vec![0u8; *pad as usize])?;
                w.write_all(bytes)?;
            }
            Ok(())
        })
        .map_err(io(&data_path))?;
    }
    let bytes = encode_model(&model)?;
    write_atomic(path, |w| w.write_all(&bytes)).map_err(io(path))
}
