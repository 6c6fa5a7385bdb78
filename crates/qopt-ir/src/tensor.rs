//! Tensors: n-dimensional arrays of one of the [`DType`]s, on ndarray.
//!
//! Constants in the graph hold `Arc<Tensor>` so passes can copy ops cheaply.
//! Byte-level helpers (little-endian raw bytes, content hash) serve the ONNX
//! importer/exporter and the `.qir` blob section, which must both be exact.

use crate::dtype::DType;
use half::f16;
use ndarray::{ArrayD, IxDyn};
use std::fmt;

#[derive(Clone, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F16(ArrayD<f16>),
    F64(ArrayD<f64>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
}

/// Apply `$body` to the array inside any tensor variant, binding it to `$a`.
#[macro_export]
macro_rules! dispatch_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::Tensor::F32($a) => $body,
            $crate::Tensor::F16($a) => $body,
            $crate::Tensor::F64($a) => $body,
            $crate::Tensor::I8($a) => $body,
            $crate::Tensor::U8($a) => $body,
            $crate::Tensor::I32($a) => $body,
            $crate::Tensor::I64($a) => $body,
            $crate::Tensor::Bool($a) => $body,
        }
    };
}

/// Rust element types that a [`Tensor`] can hold.
pub trait Element: Copy + Send + Sync + PartialEq + fmt::Debug + 'static {
    const DTYPE: DType;
    fn wrap(a: ArrayD<Self>) -> Tensor;
    fn view(t: &Tensor) -> Option<&ArrayD<Self>>;
    fn view_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>>;
    fn into_array(t: Tensor) -> Result<ArrayD<Self>, Tensor>;
    /// Lossy conversion to f64 (for statistics and casts).
    fn to_f64(self) -> f64;
    /// Conversion from f64 with the saturation/truncation rules of ONNX Cast.
    fn from_f64(v: f64) -> Self;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(b: &[u8]) -> Self;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn view(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn view_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn into_array(t: Tensor) -> Result<ArrayD<Self>, Tensor> {
                match t {
                    Tensor::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
            fn to_f64(self) -> f64 {
                ($to)(self)
            }
            fn from_f64(v: f64) -> Self {
                ($from)(v)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("element width"))
            }
        }
    };
}

impl_element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
impl_element!(f64, F64, |x: f64| x, |v: f64| v);
impl_element!(i8, I8, |x: i8| x as f64, |v: f64| v as i8);
impl_element!(u8, U8, |x: u8| x as f64, |v: f64| v as u8);
impl_element!(i32, I32, |x: i32| x as f64, |v: f64| v as i32);
impl_element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
impl_element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(a: ArrayD<Self>) -> Tensor {
        Tensor::Bool(a)
    }
    fn view(t: &Tensor) -> Option<&ArrayD<Self>> {
        match t {
            Tensor::Bool(a) => Some(a),
            _ => None,
        }
    }
    fn view_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>> {
        match t {
            Tensor::Bool(a) => Some(a),
            _ => None,
        }
    }
    fn into_array(t: Tensor) -> Result<ArrayD<Self>, Tensor> {
        match t {
            Tensor::Bool(a) => Ok(a),
            other => Err(other),
        }
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}

/// Summary statistics of a tensor, as the text format prints them for large constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
}

impl Tensor {
    pub fn from_array<T: Element>(a: ArrayD<T>) -> Tensor {
        T::wrap(a)
    }

    /// A tensor of the given shape from a flat vector (row-major). Panics if the length is wrong;
    /// use [`Tensor::try_from_vec`] on untrusted input.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Tensor {
        Self::try_from_vec(shape, data).expect("tensor data length matches shape")
    }

    pub fn try_from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!(
                "shape {:?} needs {} elements, got {}",
                shape,
                n,
                data.len()
            ));
        }
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .map(T::wrap)
            .map_err(|e| e.to_string())
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        T::wrap(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::zeros(s)),
            DType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            DType::F64 => Tensor::F64(ArrayD::zeros(s)),
            DType::I8 => Tensor::I8(ArrayD::zeros(s)),
            DType::U8 => Tensor::U8(ArrayD::zeros(s)),
            DType::I32 => Tensor::I32(ArrayD::zeros(s)),
            DType::I64 => Tensor::I64(ArrayD::zeros(s)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F16(_) => DType::F16,
            Tensor::F64(_) => DType::F64,
            Tensor::I8(_) => DType::I8,
            Tensor::U8(_) => DType::U8,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        dispatch_tensor!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        dispatch_tensor!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    pub fn view<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::view(self)
    }

    pub fn view_mut<T: Element>(&mut self) -> Option<&mut ArrayD<T>> {
        T::view_mut(self)
    }

    pub fn into_array<T: Element>(self) -> Result<ArrayD<T>, Tensor> {
        T::into_array(self)
    }

    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        self.view()
    }

    /// Elements in row-major order converted to f64 (statistics, small-constant printing).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        dispatch_tensor!(self, a => a.iter().map(|x| x.to_f64()).collect())
    }

    /// Integer contents as i64 (shape tensors, axes); `None` for float tensors.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self {
            Tensor::I64(a) => Some(a.iter().copied().collect()),
            Tensor::I32(a) => Some(a.iter().map(|&x| x as i64).collect()),
            Tensor::I8(a) => Some(a.iter().map(|&x| x as i64).collect()),
            Tensor::U8(a) => Some(a.iter().map(|&x| x as i64).collect()),
            Tensor::Bool(a) => Some(a.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }

    /// The single element of a one-element tensor, as f64.
    pub fn scalar_f64(&self) -> Option<f64> {
        (self.len() == 1).then(|| self.to_f64_vec()[0])
    }

    /// Convert to another element type with ONNX `Cast` semantics for in-range values
    /// (float -> int truncates toward zero and saturates; f64 -> f32 rounds).
    pub fn cast(&self, to: DType) -> Tensor {
        if self.dtype() == to {
            return self.clone();
        }
        fn conv<T: Element>(t: &Tensor) -> Tensor {
            match t {
                // Direct paths keep full precision for the common integer casts.
                Tensor::I64(a) if T::DTYPE == DType::I32 => Tensor::I32(a.mapv(|x| x as i32)),
                Tensor::I32(a) if T::DTYPE == DType::I64 => Tensor::I64(a.mapv(|x| x as i64)),
                _ => dispatch_tensor!(t, a => T::wrap(a.mapv(|x| T::from_f64(x.to_f64())))),
            }
        }
        match to {
            DType::F32 => conv::<f32>(self),
            DType::F16 => conv::<f16>(self),
            DType::F64 => conv::<f64>(self),
            DType::I8 => conv::<i8>(self),
            DType::U8 => conv::<u8>(self),
            DType::I32 => conv::<i32>(self),
            DType::I64 => conv::<i64>(self),
            DType::Bool => conv::<bool>(self),
        }
    }

    /// Row-major little-endian bytes (the layout of ONNX `raw_data`).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size());
        match self {
            Tensor::F16(a) => a
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            _ => dispatch_tensor!(self, a => a.iter().for_each(|x| x.write_le(&mut out))),
        }
        out
    }

    /// Inverse of [`Tensor::to_le_bytes`]. Fails when the byte count does not match the shape.
    pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor, String> {
        let n: usize = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("shape {shape:?} overflows"))?;
        let need = n
            .checked_mul(dtype.size())
            .ok_or_else(|| format!("shape {shape:?} overflows"))?;
        if bytes.len() != need {
            return Err(format!(
                "{} tensor of shape {:?} needs {} bytes, got {}",
                dtype,
                shape,
                need,
                bytes.len()
            ));
        }
        fn read<T: Element>(shape: &[usize], bytes: &[u8]) -> Result<Tensor, String> {
            let w = std::mem::size_of::<T>();
            let v: Vec<T> = bytes.chunks_exact(w).map(T::read_le).collect();
            Tensor::try_from_vec(shape, v)
        }
        match dtype {
            DType::F32 => read::<f32>(shape, bytes),
            DType::F64 => read::<f64>(shape, bytes),
            DType::I8 => read::<i8>(shape, bytes),
            DType::U8 => read::<u8>(shape, bytes),
            DType::I32 => read::<i32>(shape, bytes),
            DType::I64 => read::<i64>(shape, bytes),
            DType::Bool => {
                let v: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
                Tensor::try_from_vec(shape, v)
            }
            DType::F16 => {
                let v: Vec<f16> = bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Tensor::try_from_vec(shape, v)
            }
        }
    }

    /// A 64-bit FNV-1a hash of dtype, shape and bytes: the stable content id printed for large
    /// constants and used as the blob key in `.qir` files.
    pub fn content_hash(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write(self.dtype().name().as_bytes());
        for &d in self.shape() {
            h.write(&(d as u64).to_le_bytes());
        }
        h.write(&self.to_le_bytes());
        h.finish()
    }

    /// Bitwise equality: same dtype, shape and bytes (NaNs with equal bits compare equal).
    pub fn bit_eq(&self, other: &Tensor) -> bool {
        self.dtype() == other.dtype()
            && self.shape() == other.shape()
            && self.to_le_bytes() == other.to_le_bytes()
    }

    /// Min, max, mean and standard deviation over finite and non-finite values alike
    /// (NaN propagates into the result, as a user inspecting a constant wants to see).
    pub fn stats(&self) -> Stats {
        let v = self.to_f64_vec();
        if v.is_empty() {
            return Stats {
                min: 0.0,
                max: 0.0,
                mean: 0.0,
                std: 0.0,
            };
        }
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for &x in &v {
            if x.is_nan() {
                min = f64::NAN;
                max = f64::NAN;
            } else if !min.is_nan() {
                min = min.min(x);
                max = max.max(x);
            }
            sum += x;
        }
        let mean = sum / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        Stats {
            min,
            max,
            mean,
            std: var.sqrt(),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({} {:?}", self.dtype(), self.shape())?;
        if self.len() <= 16 {
            write!(f, " {:?}", self.to_f64_vec())?;
        } else {
            write!(f, " #{:016x}", self.content_hash())?;
        }
        f.write_str(")")
    }
}

/// 64-bit FNV-1a: tiny, stable across platforms and releases, good enough to name blobs.
pub struct Fnv64(u64);

impl Fnv64 {
    pub fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_dtype() {
        let base = Tensor::from_vec(&[2, 3], vec![-1.5f32, 0.0, 2.25, 100.0, -7.0, 1.0]);
        for d in DType::ALL {
            let t = base.cast(d);
            let b = t.to_le_bytes();
            assert_eq!(b.len(), 6 * d.size());
            let back = Tensor::from_le_bytes(d, &[2, 3], &b).unwrap();
            assert!(back.bit_eq(&t), "{d}");
        }
        assert!(Tensor::from_le_bytes(DType::F32, &[2], &[0; 7]).is_err());
    }

    #[test]
    fn hash_depends_on_shape_and_type() {
        let a = Tensor::from_vec(&[4], vec![1f32, 2.0, 3.0, 4.0]);
        let b = Tensor::from_vec(&[2, 2], vec![1f32, 2.0, 3.0, 4.0]);
        assert_ne!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), a.cast(DType::F64).content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
    }

    #[test]
    fn cast_truncates_like_onnx() {
        let t = Tensor::from_vec(&[3], vec![-1.7f32, 2.9, 0.0]);
        assert_eq!(t.cast(DType::I64).to_i64_vec().unwrap(), vec![-1, 2, 0]);
        assert_eq!(t.cast(DType::Bool).to_i64_vec().unwrap(), vec![1, 1, 0]);
    }

    #[test]
    fn stats_of_small_tensor() {
        let t = Tensor::from_vec(&[4], vec![1f32, 2.0, 3.0, 4.0]);
        let s = t.stats();
        assert_eq!((s.min, s.max, s.mean), (1.0, 4.0, 2.5));
        assert!((s.std - 1.118033988749895).abs() < 1e-12);
    }
}
