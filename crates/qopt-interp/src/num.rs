//! Arithmetic over the element types the ops compute in.
//!
//! ONNX leaves integer overflow and division by zero undefined; the interpreter must not panic
//! on them, so integer arithmetic wraps and `x / 0` (and `x % 0`) is 0. Float arithmetic is
//! IEEE: NaN and Inf propagate.

use qopt_ir::Element;

/// A numeric element type (every tensor type but bool and f16).
pub trait Num: Element + PartialOrd + Default {
    const IS_FLOAT: bool;
    fn zero() -> Self;
    fn one() -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// ONNX `Mod` with `fmod = 0` (the sign of the divisor) for integers, C `fmod` for floats.
    fn rem(self, o: Self, fmod: bool) -> Self;
    fn pow(self, e: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    fn sign(self) -> Self;
    fn lowest() -> Self;
    fn highest() -> Self;
    fn is_nan(self) -> bool;
    /// Max and min that propagate NaN (numpy's `maximum`/`minimum`, which ONNX Max/Min follow).
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            if self.is_nan() { self } else { o }
        } else if o > self {
            o
        } else {
            self
        }
    }
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            if self.is_nan() { self } else { o }
        } else if o < self {
            o
        } else {
            self
        }
    }
}

macro_rules! float_num {
    ($t:ty) => {
        impl Num for $t {
            const IS_FLOAT: bool = true;
            fn zero() -> Self {
                0.0
            }
            fn one() -> Self {
                1.0
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn rem(self, o: Self, fmod: bool) -> Self {
                let r = self % o;
                // numpy's `mod` (fmod = 0) takes the divisor's sign.
                if !fmod && r != 0.0 && ((r < 0.0) != (o < 0.0)) {
                    r + o
                } else {
                    r
                }
            }
            fn pow(self, e: Self) -> Self {
                self.powf(e)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else {
                    self
                }
            }
            fn lowest() -> Self {
                <$t>::NEG_INFINITY
            }
            fn highest() -> Self {
                <$t>::INFINITY
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
float_num!(f32);
float_num!(f64);

macro_rules! int_num {
    ($t:ty) => {
        impl Num for $t {
            const IS_FLOAT: bool = false;
            fn zero() -> Self {
                0
            }
            fn one() -> Self {
                1
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                self.checked_div(o).unwrap_or(0)
            }
            fn rem(self, o: Self, fmod: bool) -> Self {
                let r = self.checked_rem(o).unwrap_or(0);
                #[allow(unused_comparisons)]
                let diff_sign = (r < 0) != (o < 0);
                if !fmod && r != 0 && diff_sign {
                    r.wrapping_add(o)
                } else {
                    r
                }
            }
            fn pow(self, e: Self) -> Self {
                #[allow(unused_comparisons)]
                if e < 0 {
                    // Integer base to a negative power truncates toward zero like numpy's float
                    // result cast back: only |base| == 1 survives.
                    return (self as f64).powf(e as f64) as $t;
                }
                let mut r: $t = 1;
                let mut b = self;
                let mut e = e as u64;
                while e > 0 {
                    if e & 1 == 1 {
                        r = r.wrapping_mul(b);
                    }
                    b = b.wrapping_mul(b);
                    e >>= 1;
                }
                r
            }
            #[allow(unused_comparisons)]
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            #[allow(unused_comparisons)]
            fn abs(self) -> Self {
                if self < 0 {
                    (0 as $t).wrapping_sub(self)
                } else {
                    self
                }
            }
            #[allow(unused_comparisons)]
            fn sign(self) -> Self {
                if self > 0 {
                    1
                } else if self < 0 {
                    (0 as $t).wrapping_sub(1)
                } else {
                    0
                }
            }
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn highest() -> Self {
                <$t>::MAX
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}
int_num!(i8);
int_num!(u8);
int_num!(i32);
int_num!(i64);

/// Float element types, for the transcendental ops.
pub trait Float: Num + Copy {
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    fn map_f64(self, f: impl Fn(f64) -> f64) -> Self;
}

impl Float for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn map_f64(self, f: impl Fn(f64) -> f64) -> Self {
        f(self as f64) as f32
    }
}

impl Float for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn map_f64(self, f: impl Fn(f64) -> f64) -> Self {
        f(self)
    }
}

/// Run `$body` with `$T` bound to the element type of a numeric tensor dtype; other dtypes
/// (`bool`, `f16`) take the `else` arm.
macro_rules! with_num_type {
    ($dt:expr, $T:ident => $body:expr, else => $other:expr) => {
        match $dt {
            qopt_ir::DType::F32 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = f32;
                $body
            }
            qopt_ir::DType::F64 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = f64;
                $body
            }
            qopt_ir::DType::I8 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i8;
                $body
            }
            qopt_ir::DType::U8 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = u8;
                $body
            }
            qopt_ir::DType::I32 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i32;
                $body
            }
            qopt_ir::DType::I64 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i64;
                $body
            }
            _ => $other,
        }
    };
}
pub(crate) use with_num_type;

/// Like [`with_num_type`] for every dtype (data-movement ops that never do arithmetic).
macro_rules! with_any_type {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            qopt_ir::DType::F32 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = f32;
                $body
            }
            qopt_ir::DType::F64 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = f64;
                $body
            }
            qopt_ir::DType::F16 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = half::f16;
                $body
            }
            qopt_ir::DType::I8 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i8;
                $body
            }
            qopt_ir::DType::U8 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = u8;
                $body
            }
            qopt_ir::DType::I32 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i32;
                $body
            }
            qopt_ir::DType::I64 => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = i64;
                $body
            }
            qopt_ir::DType::Bool => {
                #[allow(unused_imports)]
                use qopt_ir::Element as _;
                type $T = bool;
                $body
            }
        }
    };
}
pub(crate) use with_any_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_edge_cases_do_not_panic() {
        assert_eq!(7i64.div(0), 0);
        assert_eq!(i64::MIN.div(-1), 0);
        assert_eq!(i32::MAX.add(1), i32::MIN);
        assert_eq!(Num::abs(i8::MIN), i8::MIN);
        assert_eq!(Num::pow(2i64, 10), 1024);
        assert_eq!(Num::pow(2i64, -1), 0);
        // numpy: np.mod(-7, 3) == 2, np.fmod(-7, 3) == -1
        assert_eq!((-7i64).rem(3, false), 2);
        assert_eq!((-7i64).rem(3, true), -1);
        assert_eq!((-7.0f32).rem(3.0, false), 2.0);
    }

    #[test]
    fn max_min_propagate_nan() {
        assert!(1.0f32.max_nan(f32::NAN).is_nan());
        assert!(f32::NAN.min_nan(1.0).is_nan());
        assert_eq!(1.0f32.max_nan(2.0), 2.0);
    }
}
