//! Image folders: decode (PNG, JPEG via the `image` crate), resize, crop, normalise, lay out.
//!
//! A [`Preprocess`] spec is a preset with optional overrides, `PRESET{key=value ...}`:
//!
//! | preset | colour | resize | normalise | layout |
//! | --- | --- | --- | --- | --- |
//! | `imagenet` | RGB | shorter side to `round(crop * 256 / 224)`, centre crop to the input size (skipped when the image already has it) | `(x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)` | NCHW |
//! | `ppocr` | BGR | to the input height (48 where unknown) keeping the aspect ratio, right-padded with 0 to the input width, or where unknown to at least 320 | `(x / 255 - 0.5) / 0.5` | NCHW |
//! | `ppocr-cls` | BGR | as `ppocr`, width capped and padded to 192 where unknown | as `ppocr` | NCHW |
//! | `ppocr-det` | BGR | longer side at most 960, both sides rounded to multiples of 32 (or the input size where it is fixed) | ImageNet mean/std, applied in BGR order | NCHW |
//!
//! `ppocr` is PaddleOCR's recognition preprocessing (`resize_norm_img` in
//! `tools/infer/predict_rec.py`, `rec_image_shape` 3,48,320: cv2 images are BGR,
//! `(x / 255 - 0.5) / 0.5`, padded after normalising, so the padding is 0; the padded width is
//! `48 * max(320 / 48, w / h)` for one image), `ppocr-cls` its direction classifier's
//! (`predict_cls.py`, `cls_image_shape` 3,48,192, resized width capped at 192); `ppocr-det` is its detection preprocessing
//! (`DetResizeForTest` with `limit_type=max`, `limit_side_len=960`, then `NormalizeImage`
//! with the ImageNet mean/std on the BGR array, as PaddleOCR does). The `imagenet` preset is
//! torchvision's `Resize(256) + CenterCrop(224) + Normalize`. Resizing is bilinear
//! (`FilterType::Triangle`): close to, not bit-equal with, cv2's or PIL's (calibration
//! statistics do not need bit-equal pixels).
//!
//! Keys: `resize=none|input|keep-ratio|S|HxW` (S: shorter side), `crop=none|center`,
//! `max-side=N multiple=M` (limit-side resizing), `height=H width=W` (keep-ratio target
//! where the input's size is unknown), `scale=F`, `mean=a,b,c`, `std=a,b,c`,
//! `order=rgb|bgr`, `layout=nchw|nhwc`. Inputs of 1 channel get the image's luma; u8
//! inputs get raw pixels (no normalisation).

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use qopt_ir::{DType, Dim, Tensor};

use super::{InputSpec, SourceError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resize {
    /// Keep the image's size (it must match the input's known size).
    None,
    /// Exactly the input's height and width.
    Input,
    /// Shorter side to this many pixels (`0`: `round(crop * 256 / 224)`).
    Shorter(u32),
    /// Exactly this height and width.
    Exact(u32, u32),
    /// PaddleOCR rec/cls: input height (`height` where unknown), aspect kept, right-padded
    /// with 0 to the input width, or where unknown to `width` (`cap`: the resized width is at
    /// most `width`, as cls; else at least `width` is padded to, as rec's `max_wh_ratio`).
    KeepRatioPad { height: u32, width: u32, cap: bool },
    /// PaddleOCR det: longer side at most `max`, sides rounded to multiples of `multiple`.
    LimitSide { max: u32, multiple: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Image preprocessing (see the module comment for the presets).
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub resize: Resize,
    pub center_crop: bool,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub bgr: bool,
    pub layout: Layout,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocess {
    pub fn imagenet() -> Preprocess {
        Preprocess {
            resize: Resize::Shorter(0),
            center_crop: true,
            scale: 1.0 / 255.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            bgr: false,
            layout: Layout::Nchw,
        }
    }

    pub fn ppocr() -> Preprocess {
        Preprocess {
            resize: Resize::KeepRatioPad {
                height: 48,
                width: 320,
                cap: false,
            },
            center_crop: false,
            scale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            bgr: true,
            layout: Layout::Nchw,
        }
    }

    pub fn ppocr_cls() -> Preprocess {
        Preprocess {
            resize: Resize::KeepRatioPad {
                height: 48,
                width: 192,
                cap: true,
            },
            ..Preprocess::ppocr()
        }
    }

    pub fn ppocr_det() -> Preprocess {
        Preprocess {
            resize: Resize::LimitSide {
                max: 960,
                multiple: 32,
            },
            center_crop: false,
            scale: 1.0 / 255.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            bgr: true,
            layout: Layout::Nchw,
        }
    }

    /// Parse `PRESET`, `PRESET{key=value ...}` or `{key=value ...}` (from no preprocessing).
    pub fn parse(spec: &str) -> Result<Preprocess, SourceError> {
        let err = |reason: String| SourceError::Preprocess {
            spec: spec.into(),
            reason,
        };
        let s = spec.trim();
        let (name, opts) = match s.find('{') {
            Some(i) => (
                s[..i].trim(),
                s[i + 1..]
                    .strip_suffix('}')
                    .ok_or_else(|| err("unclosed '{'".into()))?,
            ),
            None => (s, ""),
        };
        let mut p = match name {
            "imagenet" => Preprocess::imagenet(),
            "ppocr" => Preprocess::ppocr(),
            "ppocr-cls" => Preprocess::ppocr_cls(),
            "ppocr-det" => Preprocess::ppocr_det(),
            "" | "none" => Preprocess {
                resize: Resize::None,
                center_crop: false,
                scale: 1.0,
                mean: [0.0; 3],
                std: [1.0; 3],
                bgr: false,
                layout: Layout::Nchw,
            },
            other => {
                return Err(err(format!(
                    "unknown preset '{other}' (imagenet, ppocr, ppocr-cls, ppocr-det, none)"
                )));
            }
        };
        let num = |k: &str, v: &str| {
            v.parse::<f32>()
                .map_err(|_| err(format!("{k}={v} is not a number")))
        };
        let triple = |k: &str, v: &str| -> Result<[f32; 3], SourceError> {
            let xs: Vec<f32> = v.split(',').map(|x| num(k, x)).collect::<Result<_, _>>()?;
            match xs.as_slice() {
                [a] => Ok([*a; 3]),
                [a, b, c] => Ok([*a, *b, *c]),
                _ => Err(err(format!("{k} needs 1 or 3 values"))),
            }
        };
        let mut max_side = None;
        let mut multiple = None;
        for tok in opts.split_whitespace() {
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| err(format!("'{tok}' is not key=value")))?;
            match k {
                "resize" => {
                    p.resize = match v {
                        "none" => Resize::None,
                        "input" => Resize::Input,
                        "keep-ratio" => Resize::KeepRatioPad {
                            height: 48,
                            width: 320,
                            cap: false,
                        },
                        _ => match v.split_once('x') {
                            Some((h, w)) => Resize::Exact(
                                h.parse().map_err(|_| err(format!("bad size {v}")))?,
                                w.parse().map_err(|_| err(format!("bad size {v}")))?,
                            ),
                            None => Resize::Shorter(
                                v.parse().map_err(|_| err(format!("bad size {v}")))?,
                            ),
                        },
                    }
                }
                "crop" => {
                    p.center_crop = match v {
                        "center" => true,
                        "none" => false,
                        _ => return Err(err(format!("crop={v} (center or none)"))),
                    }
                }
                "height" | "width" => {
                    let n: u32 = v.parse().map_err(|_| err(format!("bad {k} {v}")))?;
                    match &mut p.resize {
                        Resize::KeepRatioPad { height, width, .. } => {
                            *(if k == "height" { height } else { width }) = n.max(1)
                        }
                        _ => {
                            return Err(err(format!(
                                "{k}= applies to keep-ratio resizing (ppocr presets)"
                            )));
                        }
                    }
                }
                "max-side" => {
                    max_side = Some(v.parse().map_err(|_| err(format!("bad max-side {v}")))?)
                }
                "multiple" => {
                    multiple = Some(v.parse().map_err(|_| err(format!("bad multiple {v}")))?)
                }
                "scale" => p.scale = num(k, v)?,
                "mean" => p.mean = triple(k, v)?,
                "std" => {
                    p.std = triple(k, v)?;
                    if p.std.contains(&0.0) {
                        return Err(err("std must not be 0".into()));
                    }
                }
                "order" => {
                    p.bgr = match v {
                        "rgb" => false,
                        "bgr" => true,
                        _ => return Err(err(format!("order={v} (rgb or bgr)"))),
                    }
                }
                "layout" => {
                    p.layout = match v {
                        "nchw" => Layout::Nchw,
                        "nhwc" => Layout::Nhwc,
                        _ => return Err(err(format!("layout={v} (nchw or nhwc)"))),
                    }
                }
                _ => return Err(err(format!("unknown key '{k}'"))),
            }
        }
        if max_side.is_some() || multiple.is_some() {
            p.resize = Resize::LimitSide {
                max: max_side.unwrap_or(960),
                multiple: multiple.unwrap_or(32).max(1),
            };
        }
        Ok(p)
    }

    /// (channels, height, width) of the input, known or not.
    fn geometry(&self, input: &InputSpec) -> (Option<u64>, Option<u64>, Option<u64>) {
        let d = input.shape.dims();
        let k = |i: usize| d.get(i).and_then(Dim::known);
        match self.layout {
            Layout::Nchw => (k(1), k(2), k(3)),
            Layout::Nhwc => (k(3), k(1), k(2)),
        }
    }

    /// Check that images can feed this input at all (rank 4, 1 or 3 channels, f32 or u8).
    pub fn check_input(&self, input: &InputSpec) -> Result<(), SourceError> {
        let bad = |reason: String| {
            SourceError::Inputs(format!("input '{}' {}: {reason}", input.name, input.shape))
        };
        if input.shape.rank() != 4 {
            return Err(bad("images need a rank-4 input (NCHW or NHWC)".into()));
        }
        if !matches!(input.dtype, DType::F32 | DType::U8) {
            return Err(bad(format!(
                "images feed f32 or u8 inputs, not {}",
                input.dtype
            )));
        }
        match self.geometry(input).0 {
            Some(1) | Some(3) | None => Ok(()),
            Some(c) => Err(bad(format!(
                "{c} channels (images give 1 or 3; check layout=nchw|nhwc)"
            ))),
        }
    }

    /// Decode and preprocess one image for `input`.
    pub fn load(&self, path: &Path, input: &InputSpec) -> Result<Tensor, SourceError> {
        let img_err = |reason: String| SourceError::Image {
            path: path.to_path_buf(),
            reason,
        };
        let img: DynamicImage = image::ImageReader::open(path)
            .map_err(|e| img_err(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| img_err(e.to_string()))?
            .decode()
            .map_err(|e| img_err(e.to_string()))?;
        let (c, h, w) = self.geometry(input);
        let gray = c == Some(1);
        let mut rgb: RgbImage = img.to_rgb8();
        let (ih, iw) = (rgb.height() as u64, rgb.width() as u64);
        let already = h.is_none_or(|h| h == ih) && w.is_none_or(|w| w == iw);
        let mut pad_to: Option<u32> = None;
        match self.resize {
            Resize::None => {}
            Resize::Input => {
                if let (Some(h), Some(w)) = (h, w) {
                    rgb = imageops::resize(&rgb, w as u32, h as u32, FilterType::Triangle);
                }
            }
            Resize::Exact(rh, rw) => rgb = imageops::resize(&rgb, rw, rh, FilterType::Triangle),
            Resize::Shorter(s) => {
                if !(self.center_crop && already) {
                    let crop = h.unwrap_or(224).min(w.unwrap_or(224)) as f64;
                    let s = if s == 0 {
                        (crop * 256.0 / 224.0).round() as u32
                    } else {
                        s
                    };
                    let short = ih.min(iw) as f64;
                    let (nh, nw) = (
                        ((ih as f64 * s as f64 / short).round() as u32).max(1),
                        ((iw as f64 * s as f64 / short).round() as u32).max(1),
                    );
                    rgb = imageops::resize(&rgb, nw, nh, FilterType::Triangle);
                }
            }
            Resize::KeepRatioPad { height, width, cap } => {
                let th = h.map_or(height, |h| h as u32);
                let ratio = iw as f64 / ih as f64;
                let mut nw = ((th as f64 * ratio).ceil() as u32).max(1);
                let (tw, cap) = match w {
                    Some(w) => (w as u32, true),
                    None => (width, cap),
                };
                if cap {
                    nw = nw.min(tw);
                }
                pad_to = Some(tw.max(nw));
                rgb = imageops::resize(&rgb, nw, th, FilterType::Triangle);
            }
            Resize::LimitSide { max, multiple } => {
                let (th, tw) = match (h, w) {
                    (Some(h), Some(w)) => (h as u32, w as u32),
                    _ => {
                        let long = ih.max(iw) as f64;
                        let r = if long > max as f64 {
                            max as f64 / long
                        } else {
                            1.0
                        };
                        let round = |v: f64| {
                            (((v * r) / multiple as f64).round() as u32 * multiple).max(multiple)
                        };
                        (round(ih as f64), round(iw as f64))
                    }
                };
                rgb = imageops::resize(&rgb, tw, th, FilterType::Triangle);
            }
        }
        if self.center_crop
            && let (Some(ch), Some(cw)) = (h.or(w), w.or(h))
        {
            let (ch, cw) = (ch as u32, cw as u32);
            if rgb.height() >= ch && rgb.width() >= cw {
                let (y, x) = ((rgb.height() - ch) / 2, (rgb.width() - cw) / 2);
                rgb = imageops::crop_imm(&rgb, x, y, cw, ch).to_image();
            }
        }
        let (oh, iw_used) = (rgb.height() as usize, rgb.width() as usize);
        let ow = pad_to.map_or(iw_used, |p| p as usize);
        // Wrong size: a fixed input the pipeline did not reach.
        if h.is_some_and(|h| h as usize != oh) || w.is_some_and(|w| w as usize != ow) {
            return Err(img_err(format!(
                "preprocessed to {oh}x{ow}, but input '{}' needs {}x{} (set --preprocess resize=...)",
                input.name,
                h.map_or("?".into(), |v| v.to_string()),
                w.map_or("?".into(), |v| v.to_string())
            )));
        }
        let nc = if gray { 1 } else { 3 };
        let raw = input.dtype == DType::U8;
        // Channel values at (y, x) after colour order / luma.
        let pixel = |y: usize, x: usize| -> [f32; 3] {
            let p = rgb.get_pixel(x as u32, y as u32).0;
            let v = [p[0] as f32, p[1] as f32, p[2] as f32];
            if gray {
                // ITU-R BT.601 luma, as image's to_luma8.
                [0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2], 0.0, 0.0]
            } else if self.bgr {
                [v[2], v[1], v[0]]
            } else {
                v
            }
        };
        let shape = match self.layout {
            Layout::Nchw => vec![1, nc, oh, ow],
            Layout::Nhwc => vec![1, oh, ow, nc],
        };
        let mut data = vec![0f32; nc * oh * ow];
        for y in 0..oh {
            for x in 0..iw_used {
                let v = pixel(y, x);
                for (ch, &val) in v.iter().enumerate().take(nc) {
                    let out = if raw {
                        val
                    } else {
                        (val * self.scale - self.mean[ch]) / self.std[ch]
                    };
                    let idx = match self.layout {
                        Layout::Nchw => (ch * oh + y) * ow + x,
                        Layout::Nhwc => (y * ow + x) * nc + ch,
                    };
                    data[idx] = out;
                }
            }
        }
        let t = Tensor::from_vec(&shape, data);
        Ok(if raw { t.cast(DType::U8) } else { t })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tests::input;

    fn write_png(dir: &Path, name: &str, w: u32, h: u32) -> std::path::PathBuf {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 10) as u8, (y * 10) as u8, 200])
        });
        let p = dir.join(name);
        img.save(&p).unwrap();
        p
    }

    #[test]
    fn parse_presets_and_overrides() {
        assert_eq!(
            Preprocess::parse("imagenet").unwrap(),
            Preprocess::imagenet()
        );
        let p = Preprocess::parse("ppocr{layout=nhwc order=rgb}").unwrap();
        assert_eq!((p.layout, p.bgr, p.mean), (Layout::Nhwc, false, [0.5; 3]));
        let p = Preprocess::parse("{resize=32x48 mean=1,2,3 std=2 scale=1}").unwrap();
        assert_eq!(
            (p.resize, p.mean, p.std),
            (Resize::Exact(32, 48), [1.0, 2.0, 3.0], [2.0; 3])
        );
        assert!(Preprocess::parse("imagenet{std=0}").is_err());
        assert!(Preprocess::parse("coco").is_err());
        assert!(Preprocess::parse("imagenet{foo=1}").is_err());
    }

    #[test]
    fn normalisation_and_layout_by_hand() {
        // A 2x2 image with known pixels, no resizing: check values at known positions.
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "a.png", 2, 2);
        let inp = input(
            "x",
            &[Dim::Known(1), Dim::Known(3), Dim::Known(2), Dim::Known(2)],
        );
        let pre = Preprocess::parse("{scale=1 order=bgr}").unwrap();
        let t = pre.load(&p, &inp).unwrap();
        let a = t.as_f32().unwrap();
        // BGR: channel 0 is blue (200), channel 2 is red (x * 10).
        assert_eq!(a[[0, 0, 1, 1]], 200.0);
        assert_eq!(a[[0, 2, 1, 1]], 10.0);
        assert_eq!(a[[0, 1, 1, 0]], 10.0);
        let nhwc = input(
            "x",
            &[Dim::Known(1), Dim::Known(2), Dim::Known(2), Dim::Known(3)],
        );
        let t = Preprocess::parse("{layout=nhwc mean=100 std=2 scale=1}")
            .unwrap()
            .load(&p, &nhwc)
            .unwrap();
        assert_eq!(t.as_f32().unwrap()[[0, 1, 1, 2]], 50.0);
    }

    #[test]
    fn resizes_crops_pads_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "a.png", 40, 20);
        let inp = input(
            "x",
            &[
                Dim::Sym("N".into()),
                Dim::Known(3),
                Dim::Known(16),
                Dim::Known(16),
            ],
        );
        let t = Preprocess::imagenet().load(&p, &inp).unwrap();
        assert_eq!(t.shape(), &[1, 3, 16, 16]);
        // ppocr: height 8, width ceil(8 * 2) = 16 within a 24-wide input, padded with 0.
        let rec = input(
            "x",
            &[
                Dim::Sym("N".into()),
                Dim::Known(3),
                Dim::Known(8),
                Dim::Known(24),
            ],
        );
        let t = Preprocess::ppocr().load(&p, &rec).unwrap();
        assert_eq!(t.shape(), &[1, 3, 8, 24]);
        assert_eq!(t.as_f32().unwrap()[[0, 0, 4, 20]], 0.0);
        // Unknown height and width (as the PP-OCR rec/cls models): 48 high; rec pads to at
        // least 320, cls caps and pads to 192.
        let dynamic = input(
            "x",
            &[
                Dim::Sym("N".into()),
                Dim::Known(3),
                Dim::Unknown,
                Dim::Unknown,
            ],
        );
        assert_eq!(
            Preprocess::ppocr().load(&p, &dynamic).unwrap().shape(),
            &[1, 3, 48, 320]
        );
        assert_eq!(
            Preprocess::ppocr_cls().load(&p, &dynamic).unwrap().shape(),
            &[1, 3, 48, 192]
        );
        let wide = write_png(dir.path(), "wide.png", 200, 10);
        assert_eq!(
            Preprocess::ppocr().load(&wide, &dynamic).unwrap().shape(),
            &[1, 3, 48, 960]
        );
        assert_eq!(
            Preprocess::ppocr_cls()
                .load(&wide, &dynamic)
                .unwrap()
                .shape(),
            &[1, 3, 48, 192]
        );
        assert_eq!(
            Preprocess::parse("ppocr{height=32 width=100}")
                .unwrap()
                .load(&p, &dynamic)
                .unwrap()
                .shape(),
            &[1, 3, 32, 100]
        );
        // ppocr-det with dynamic size: 40x20 stays under 960, rounded to multiples of 32.
        let det = input(
            "x",
            &[
                Dim::Sym("N".into()),
                Dim::Known(3),
                Dim::Unknown,
                Dim::Unknown,
            ],
        );
        assert_eq!(
            Preprocess::ppocr_det().load(&p, &det).unwrap().shape(),
            &[1, 3, 32, 32]
        );
        // No resizing and the wrong size: an error naming the file.
        let e = Preprocess::parse("none")
            .unwrap()
            .load(&p, &inp)
            .unwrap_err();
        assert!(
            e.to_string().contains("a.png") && e.to_string().contains("16x16"),
            "{e}"
        );
        // Not an image.
        let bad = dir.path().join("b.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = Preprocess::imagenet().load(&bad, &inp).unwrap_err();
        assert!(e.to_string().contains("b.png"), "{e}");
    }
}
