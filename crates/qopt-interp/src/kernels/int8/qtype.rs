//! The two 8-bit quantized element types, u8 and i8, behind one sealed trait so every kernel is
//! written once and monomorphised for both (ONNX QuantizeLinear allows either for activations).

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
}

/// A quantized 8-bit element: `u8` or `i8`.
pub trait QInt:
    Copy + Default + PartialEq + Eq + std::fmt::Debug + Send + Sync + 'static + sealed::Sealed
{
    /// Whether the type is signed.
    const SIGNED: bool;
    /// Smallest value, as i32.
    const MIN: i32;
    /// Largest value, as i32.
    const MAX: i32;
    /// The shift that maps the type onto u8: 0 for u8, 128 for i8 (`x + 128` is the u8 operand
    /// `vpdpbusd` needs, see `gemm_avx512.rs`).
    const BIAS_TO_U8: i32;
    /// Name for messages ("u8", "i8").
    const NAME: &'static str;
    /// The value as i32.
    fn to_i32(self) -> i32;
    /// `v` clamped into the type's range.
    fn saturate(v: i32) -> Self;
    /// `v` if it lies in the type's range.
    fn checked(v: i32) -> Option<Self>;
}

impl QInt for u8 {
    const SIGNED: bool = false;
    const MIN: i32 = 0;
    const MAX: i32 = 255;
    const BIAS_TO_U8: i32 = 0;
    const NAME: &'static str = "u8";
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn saturate(v: i32) -> Self {
        v.clamp(0, 255) as u8
    }
    fn checked(v: i32) -> Option<Self> {
        u8::try_from(v).ok()
    }
}

impl QInt for i8 {
    const SIGNED: bool = true;
    const MIN: i32 = -128;
    const MAX: i32 = 127;
    const BIAS_TO_U8: i32 = 128;
    const NAME: &'static str = "i8";
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn saturate(v: i32) -> Self {
        v.clamp(-128, 127) as i8
    }
    fn checked(v: i32) -> Option<Self> {
        i8::try_from(v).ok()
    }
}
