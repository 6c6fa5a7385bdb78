//! Operator attributes.
//!
//! [`Attr`] is the untyped form shared by the ONNX importer/exporter and the
//! text format. Each operator struct (see [`crate::op`]) stores typed fields;
//! [`AttrValue`] converts between the two so that one op table drives import,
//! export, printing and parsing.

use crate::dtype::DType;
use crate::tensor::Tensor;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    String(String),
    Strings(Vec<String>),
    Tensor(Arc<Tensor>),
    /// An attribute qopt carries without interpreting (a sub-graph, a sparse tensor, a type):
    /// the serialized ONNX `AttributeProto`, exported unchanged.
    Raw(Vec<u8>),
}

impl Attr {
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Int(_) => "int",
            Attr::Float(_) => "float",
            Attr::Ints(_) => "ints",
            Attr::Floats(_) => "floats",
            Attr::String(_) => "string",
            Attr::Strings(_) => "strings",
            Attr::Tensor(_) => "tensor",
            Attr::Raw(_) => "raw",
        }
    }
}

/// A Rust type that an operator field can have.
pub trait AttrValue: Sized {
    fn to_attr(&self) -> Attr;
    fn from_attr(a: &Attr) -> Result<Self, String>;
}

fn wrong(expected: &str, got: &Attr) -> String {
    format!("expected {expected}, got {}", got.kind())
}

impl AttrValue for i64 {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self)
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Int(v) => Ok(*v),
            _ => Err(wrong("int", a)),
        }
    }
}

impl AttrValue for bool {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self as i64)
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Int(0) => Ok(false),
            Attr::Int(1) => Ok(true),
            Attr::Int(v) => Err(format!("expected 0 or 1, got {v}")),
            _ => Err(wrong("int", a)),
        }
    }
}

impl AttrValue for f32 {
    fn to_attr(&self) -> Attr {
        Attr::Float(*self)
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Float(v) => Ok(*v),
            // Some exporters write integral floats as ints; the text format may too.
            Attr::Int(v) => Ok(*v as f32),
            _ => Err(wrong("float", a)),
        }
    }
}

impl AttrValue for Vec<i64> {
    fn to_attr(&self) -> Attr {
        Attr::Ints(self.clone())
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Ints(v) => Ok(v.clone()),
            _ => Err(wrong("ints", a)),
        }
    }
}

impl AttrValue for Vec<f32> {
    fn to_attr(&self) -> Attr {
        Attr::Floats(self.clone())
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Floats(v) => Ok(v.clone()),
            Attr::Ints(v) => Ok(v.iter().map(|&x| x as f32).collect()),
            _ => Err(wrong("floats", a)),
        }
    }
}

impl AttrValue for String {
    fn to_attr(&self) -> Attr {
        Attr::String(self.clone())
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::String(v) => Ok(v.clone()),
            _ => Err(wrong("string", a)),
        }
    }
}

impl AttrValue for Vec<String> {
    fn to_attr(&self) -> Attr {
        Attr::Strings(self.clone())
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Strings(v) => Ok(v.clone()),
            _ => Err(wrong("strings", a)),
        }
    }
}

impl AttrValue for Arc<Tensor> {
    fn to_attr(&self) -> Attr {
        Attr::Tensor(self.clone())
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Tensor(t) => Ok(t.clone()),
            _ => Err(wrong("tensor", a)),
        }
    }
}

impl AttrValue for DType {
    fn to_attr(&self) -> Attr {
        Attr::Int(self.onnx_code() as i64)
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        match a {
            Attr::Int(code) => DType::from_onnx_code(*code as i32).ok_or_else(|| {
                format!(
                    "data type {} ({}) is not supported",
                    code,
                    crate::dtype::onnx_type_name(*code as i32)
                )
            }),
            _ => Err(wrong("int (data type)", a)),
        }
    }
}

/// `Option<T>` fields are absent from the model when `None`.
impl<T: AttrValue> AttrValue for Option<T> {
    fn to_attr(&self) -> Attr {
        self.as_ref()
            .expect("absent optional attributes are never written")
            .to_attr()
    }
    fn from_attr(a: &Attr) -> Result<Self, String> {
        T::from_attr(a).map(Some)
    }
}

/// Whether a field value must be written out. Absent options are never written;
/// other values are written when they differ from the default.
pub trait AttrPresence {
    fn is_absent(&self) -> bool {
        false
    }
}
impl<T> AttrPresence for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}
macro_rules! present {
    ($($t:ty),*) => { $(impl AttrPresence for $t {})* };
}
present!(
    i64,
    bool,
    f32,
    Vec<i64>,
    Vec<f32>,
    String,
    Vec<String>,
    Arc<Tensor>,
    DType
);

/// A string-valued attribute with a closed set of values, as a Rust enum.
#[macro_export]
macro_rules! attr_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl $crate::attr::AttrValue for $name {
            fn to_attr(&self) -> $crate::attr::Attr {
                $crate::attr::Attr::String(self.as_str().to_string())
            }
            fn from_attr(a: &$crate::attr::Attr) -> Result<Self, String> {
                match a {
                    $crate::attr::Attr::String(s) => $name::parse(s).ok_or_else(|| {
                        format!(
                            "unknown value {:?}; expected one of {}",
                            s,
                            [$($s),+].join(", ")
                        )
                    }),
                    _ => Err(format!("expected string, got {}", a.kind())),
                }
            }
        }

        impl $crate::attr::AttrPresence for $name {}
    };
}

attr_enum!(
    /// How Conv-like and pool ops pad when `pads` is not given.
    AutoPad { NotSet = "NOTSET", SameUpper = "SAME_UPPER", SameLower = "SAME_LOWER", Valid = "VALID" }
);
attr_enum!(ResizeMode { Nearest = "nearest", Linear = "linear", Cubic = "cubic", Bilinear = "bilinear" });
attr_enum!(CoordTransform {
    HalfPixel = "half_pixel",
    HalfPixelSymmetric = "half_pixel_symmetric",
    PytorchHalfPixel = "pytorch_half_pixel",
    AlignCorners = "align_corners",
    Asymmetric = "asymmetric",
    TfHalfPixelForNn = "tf_half_pixel_for_nn",
    TfCropAndResize = "tf_crop_and_resize",
});
attr_enum!(NearestMode {
    RoundPreferFloor = "round_prefer_floor",
    RoundPreferCeil = "round_prefer_ceil",
    Floor = "floor",
    Ceil = "ceil",
});
attr_enum!(KeepAspectRatio { Stretch = "stretch", NotLarger = "not_larger", NotSmaller = "not_smaller" });
attr_enum!(PadMode { Constant = "constant", Reflect = "reflect", Edge = "edge", Wrap = "wrap" });
attr_enum!(DepthToSpaceMode { Dcr = "DCR", Crd = "CRD" });
attr_enum!(GeluApprox { None = "none", Tanh = "tanh" });
attr_enum!(ScatterReduction { None = "none", Add = "add", Mul = "mul", Max = "max", Min = "min" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_attrs_convert() {
        assert_eq!(
            AutoPad::from_attr(&Attr::String("SAME_UPPER".into())),
            Ok(AutoPad::SameUpper)
        );
        let e = AutoPad::from_attr(&Attr::String("SAME".into())).unwrap_err();
        assert!(e.contains("SAME_UPPER"), "{e}");
        assert_eq!(ResizeMode::Linear.to_attr(), Attr::String("linear".into()));
    }

    #[test]
    fn scalar_attrs_convert() {
        assert_eq!(f32::from_attr(&Attr::Int(2)), Ok(2.0));
        assert!(i64::from_attr(&Attr::Float(2.0)).is_err());
        assert!(bool::from_attr(&Attr::Int(2)).is_err());
        assert_eq!(DType::from_attr(&Attr::Int(7)), Ok(DType::I64));
        assert!(
            DType::from_attr(&Attr::Int(8))
                .unwrap_err()
                .contains("STRING")
        );
    }
}
