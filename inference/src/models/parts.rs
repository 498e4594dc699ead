//! GGUF models split into parts (llama.cpp's `gguf-split`: `NAME-00001-of-00003.gguf`,
//! ...), read as one file. The first part holds the model's metadata and says how many
//! parts there are (`split.count`); every part holds some of the tensors and its own
//! number (`split.no`, from 0). Given the first part's path, the others are found next to
//! it by name; a missing or mismatched part is an error naming it. An unsplit file is
//! the one-part case.

use crate::error::{InferenceError, Result};
use crate::weights::read_gguf_header;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// One part: its path, header and reader.
struct Part {
    path: PathBuf,
    content: Content,
    reader: BufReader<File>,
}

/// A run of bytes in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileExtent {
    pub path: PathBuf,
    pub start: u64,
    pub len: u64,
}

/// The parts of one model, with the part holding each tensor.
pub struct GgufParts {
    parts: Vec<Part>,
    index: HashMap<String, usize>,
}

/// A split key's value (llama.cpp writes u16; tolerate other unsigned widths).
fn split_key(content: &Content, key: &str, path: &Path) -> Result<Option<u64>> {
    let Some(v) = content.metadata.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::U8(n) => *n as u64,
        Value::U16(n) => *n as u64,
        Value::U32(n) => *n as u64,
        Value::U64(n) => *n,
        Value::I32(n) if *n >= 0 => *n as u64,
        other => {
            return Err(InferenceError::bad_file(
                path,
                format!("metadata key {key} has an unexpected value {other:?}"),
            ))
        }
    };
    Ok(Some(n))
}

/// The path of part `no` (from 0) of `count` whose first part is `first`.
pub fn part_path(first: &Path, no: usize, count: usize) -> Result<PathBuf> {
    let name = first
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let suffix = format!("-00001-of-{count:05}.gguf");
    let prefix = name.strip_suffix(&suffix).ok_or_else(|| {
        InferenceError::bad_file(
            first,
            format!("the file is part 1 of {count}, but its name does not end in {suffix}"),
        )
    })?;
    Ok(first.with_file_name(format!("{prefix}-{:05}-of-{count:05}.gguf", no + 1)))
}

impl GgufParts {
    /// Opens the model whose (first) file is `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let (content, reader) = read_gguf_header(path)?;
        let count = split_key(&content, "split.count", path)?.unwrap_or(1) as usize;
        if split_key(&content, "split.no", path)?.unwrap_or(0) != 0 {
            return Err(InferenceError::bad_file(
                path,
                "this is not the first part of a split model (load its -00001-of- file)",
            ));
        }
        let mut parts = vec![Part {
            path: path.to_path_buf(),
            content,
            reader,
        }];
        for no in 1..count {
            let part = part_path(path, no, count)?;
            let (content, reader) = read_gguf_header(&part)?;
            if split_key(&content, "split.no", &part)? != Some(no as u64) {
                return Err(InferenceError::bad_file(
                    &part,
                    format!("split.no is not {no}"),
                ));
            }
            parts.push(Part {
                path: part,
                content,
                reader,
            });
        }
        let mut index = HashMap::new();
        for (i, p) in parts.iter().enumerate() {
            for name in p.content.tensor_infos.keys() {
                if index.insert(name.clone(), i).is_some() {
                    return Err(InferenceError::bad_file(
                        &p.path,
                        format!("tensor {name} is in two parts"),
                    ));
                }
            }
        }
        Ok(Self { parts, index })
    }

    /// The model's metadata (the first part's).
    pub fn metadata(&self) -> &Content {
        &self.parts[0].content
    }

    /// The path of the model's first part (for errors).
    pub fn path(&self) -> &Path {
        &self.parts[0].path
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Every tensor name of every part.
    pub fn tensor_names(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// Where each transformer layer's tensor data lies: for layer `i` (tensors named
    /// `blk.i.*`), the byte extents in the parts' files, ordered by part and offset. This
    /// is what a node shows possession of (the chain commits to a chunk tree over each
    /// layer's bytes in this order). Layers at or beyond `num_layers` are ignored.
    pub fn layer_extents(&self, num_layers: usize) -> Result<Vec<Vec<FileExtent>>> {
        let mut layers: Vec<Vec<(usize, FileExtent)>> = vec![Vec::new(); num_layers];
        for (i, part) in self.parts.iter().enumerate() {
            for (name, info) in part.content.tensor_infos.iter() {
                let Some(layer) = name
                    .strip_prefix("blk.")
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|l| *l < num_layers)
                else {
                    continue;
                };
                // read_gguf_header checked every tensor's size and bounds.
                let elems: usize = info.shape.dims().iter().product();
                let len =
                    (elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size()) as u64;
                let start = part.content.tensor_data_offset + info.offset;
                layers[layer].push((
                    i,
                    FileExtent {
                        path: part.path.clone(),
                        start,
                        len,
                    },
                ));
            }
        }
        for (l, extents) in layers.iter_mut().enumerate() {
            if extents.is_empty() {
                return Err(InferenceError::bad_file(
                    self.path(),
                    format!("layer {l} has no tensors"),
                ));
            }
            extents.sort_by_key(|(part, e)| (*part, e.start));
        }
        Ok(layers
            .into_iter()
            .map(|l| l.into_iter().map(|(_, e)| e).collect())
            .collect())
    }

    /// Reads tensor `name` from its part.
    pub fn tensor(&mut self, name: &str) -> Result<QTensor> {
        let i = *self.index.get(name).ok_or_else(|| {
            InferenceError::bad_file(self.path(), format!("tensor {name} missing"))
        })?;
        let part = &mut self.parts[i];
        part.content
            .tensor(&mut part.reader, name, &Device::Cpu)
            .map_err(|e| InferenceError::bad_file(&part.path, format!("tensor {name}: {e}")))
    }
}
