//! `.npy` and `.npz` calibration data (NumPy's format, read with ndarray-npy).
//!
//! A single file's arrays are held in memory and sliced per sample; for sets larger than
//! memory use a folder of per-sample files. Element types f32, f64, i64, i32, u8, i8 and
//! bool are read; f64 data is cast to f32 for f32 inputs (see `conform`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis, IxDyn, OwnedRepr, Slice};
use ndarray_npy::{NpzReader, ReadNpyExt};
use qopt_ir::{Tensor, dispatch_tensor};

use super::{InputSpec, SourceError};

fn array_err(path: &Path, reason: impl ToString) -> SourceError {
    SourceError::Array {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Try each supported element type in turn (ndarray-npy reads one type per call).
macro_rules! read_any {
    ($read:expr, $path:expr) => {{
        let mut last = String::new();
        let mut out = None;
        macro_rules! attempt {
            ($t:ty) => {
                if out.is_none() {
                    match $read(std::marker::PhantomData::<$t>) {
                        Ok(a) => out = Some(Tensor::from_array::<$t>(a)),
                        Err(e) => last = e.to_string(),
                    }
                }
            };
        }
        attempt!(f32);
        attempt!(f64);
        attempt!(i64);
        attempt!(i32);
        attempt!(u8);
        attempt!(i8);
        attempt!(bool);
        out.ok_or_else(|| array_err($path, format!("unsupported or corrupt array ({last})")))
    }};
}

fn npy_from_bytes(bytes: &[u8], path: &Path) -> Result<Tensor, SourceError> {
    read_any!(
        |_p: std::marker::PhantomData<_>| ArrayD::read_npy(Cursor::new(bytes)),
        path
    )
}

/// Read one `.npy` file as a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, SourceError> {
    npy_from_bytes(&read_bytes(path)?, path)
}

fn npz_array(
    z: &mut NpzReader<Cursor<Vec<u8>>>,
    name: &str,
    path: &Path,
) -> Result<Tensor, SourceError> {
    read_any!(
        |_p: std::marker::PhantomData<_>| z.by_name::<OwnedRepr<_>, IxDyn>(name),
        path
    )
}

fn open_npz(path: &Path) -> Result<NpzReader<Cursor<Vec<u8>>>, SourceError> {
    NpzReader::new(Cursor::new(read_bytes(path)?)).map_err(|e| array_err(path, e))
}

/// Read the arrays named after the graph inputs from a `.npz` file, in input order.
pub fn read_npz_inputs(path: &Path, inputs: &[InputSpec]) -> Result<Vec<Tensor>, SourceError> {
    let mut z = open_npz(path)?;
    let names = z.names().map_err(|e| array_err(path, e))?;
    if inputs.len() == 1 && names.len() == 1 {
        // One array for one input: its name does not matter (np.savez's default arr_0).
        return Ok(vec![npz_array(&mut z, &names[0], path)?]);
    }
    inputs
        .iter()
        .map(|inp| {
            if !names.contains(&inp.name) {
                return Err(array_err(
                    path,
                    format!(
                        "no array named '{}' (arrays: {})",
                        inp.name,
                        names.join(", ")
                    ),
                ));
            }
            npz_array(&mut z, &inp.name, path)
        })
        .collect()
}

/// Give a per-sample array without its batch axis one (`[3, 224, 224]` for `[N, 3, 224, 224]`).
pub fn add_batch_axis(t: Tensor, input: &InputSpec) -> Tensor {
    if t.rank() + 1 == input.shape.rank() {
        dispatch_tensor!(t, a => Tensor::from_array(a.insert_axis(Axis(0))))
    } else {
        t
    }
}

/// How a stacked array splits into samples.
#[derive(Clone, Copy)]
enum Split {
    /// Same rank as the input: `a[i:i+1]`, batch 1.
    KeepAxis,
    /// One more rank than the input: `a[i]`.
    Index,
}

/// One `.npy`/`.npz` file holding every sample along the first axis.
pub struct Stacked {
    path: PathBuf,
    arrays: Vec<(Tensor, Split)>,
    len: usize,
}

impl Stacked {
    pub fn open(path: &Path, inputs: &[InputSpec]) -> Result<Stacked, SourceError> {
        let tensors = match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
        {
            Some(e) if e == "npy" => {
                if inputs.len() != 1 {
                    return Err(SourceError::Inputs(format!(
                        "{}: a .npy file feeds one input, but the model has {}; use a .npz with arrays named after the inputs",
                        path.display(),
                        inputs.len()
                    )));
                }
                vec![read_npy(path)?]
            }
            Some(e) if e == "npz" => read_npz_inputs(path, inputs)?,
            _ => return Err(array_err(path, "expected a .npy or .npz file")),
        };
        let mut arrays = Vec::new();
        let mut len: Option<usize> = None;
        for (t, inp) in tensors.into_iter().zip(inputs) {
            let rank = inp.shape.rank();
            let split = if t.rank() == rank + 1 {
                Split::Index
            } else if t.rank() == rank && rank > 0 {
                Split::KeepAxis
            } else {
                return Err(array_err(
                    path,
                    format!(
                        "array for input '{}' has shape {:?}; expected rank {} or {} (samples along the first axis) for input shape {}",
                        inp.name,
                        t.shape(),
                        rank,
                        rank + 1,
                        inp.shape
                    ),
                ));
            };
            let n = t.shape()[0];
            if let Some(l) = len
                && l != n
            {
                return Err(array_err(
                    path,
                    format!(
                        "arrays disagree on the number of samples ({l} vs {n} for '{}')",
                        inp.name
                    ),
                ));
            }
            len = Some(n);
            arrays.push((t, split));
        }
        Ok(Stacked {
            path: path.to_path_buf(),
            arrays,
            len: len.unwrap_or(0),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensors of sample `i`, one per input.
    pub fn sample(&self, i: usize) -> Vec<Tensor> {
        self.arrays
            .iter()
            .map(|(t, split)| match split {
                Split::Index => dispatch_tensor!(t, a => Tensor::from_array(a.index_axis(Axis(0), i).to_owned())),
                Split::KeepAxis => dispatch_tensor!(t, a => Tensor::from_array(
                    a.slice_axis(Axis(0), Slice::from(i..i + 1)).to_owned()
                )),
            })
            .collect()
    }
}
