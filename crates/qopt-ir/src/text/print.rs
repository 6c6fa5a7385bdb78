//! The `.qir` printer (grammar in the [module docs](super)).
//!
//! Output depends only on the graph's contents and node order, never on hash-map order:
//! the same graph always prints the same bytes, and a printed graph parsed back prints
//! identically (the parser creates nodes in print order, which `topo_order` reproduces).

use super::num::{fmt_f16, fmt_f32, fmt_f64, fmt_stat};
use super::{INLINE_MAX, RAW_INLINE_MAX, is_plain_name, quote, raw_hash};
use crate::annot::{Annotations, QParams};
use crate::attr::Attr;
use crate::dim::is_plain_ident;
use crate::graph::{Graph, NodeId, TypeInfo, ValueId, ValueInfo};
use crate::observer::{Histogram, ObserverState};
use crate::op::Op;
use crate::tensor::Tensor;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::collections::HashSet;
use std::fmt::Write;

/// How to print a graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Append a `blobs { .. }` section with the exact bytes of every constant that prints as
    /// a hash, so the text parses back into the same graph. `false` (the default, and what
    /// `Display` does) is dump mode for snapshots and `--print-after`.
    pub blobs: bool,
}

/// Print a graph in the `.qir` text format.
pub fn print(g: &Graph, opts: &PrintOptions) -> String {
    let mut p = Printer {
        g,
        keep_blobs: opts.blobs,
        blobs: Vec::new(),
        seen: HashSet::new(),
    };
    p.graph()
}

impl std::fmt::Display for Graph {
    /// Dump mode: [`print`] with default options (large constants as stats and hash only).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&print(self, &PrintOptions::default()))
    }
}

struct Printer<'g> {
    g: &'g Graph,
    keep_blobs: bool,
    /// Blob bytes by hash, in order of first reference.
    blobs: Vec<(u64, Vec<u8>)>,
    seen: HashSet<u64>,
}

/// `%name`, or `%"name"` when it has characters outside `[A-Za-z0-9_.]`.
pub(super) fn value_ref(name: &str) -> String {
    if is_plain_name(name) {
        format!("%{name}")
    } else {
        format!("%{}", quote(name))
    }
}

/// A bare identifier when it lexes as one (no leading digit, not a number word like `nan`),
/// else a quoted string.
fn ident(s: &str) -> String {
    if is_plain_ident(s)
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(s, "nan" | "inf")
    {
        s.to_string()
    } else {
        quote(s)
    }
}

pub(super) fn fmt_type(t: &TypeInfo) -> String {
    let dtype = t.dtype.map_or("?", |d| d.name());
    match &t.shape {
        None if t.dtype.is_none() => "?".to_string(),
        None => format!("{dtype}[*]"),
        Some(s) => format!("{dtype}{s}"),
    }
}

fn tensor_type(t: &Tensor) -> String {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", t.dtype(), dims.join(","))
}

/// Every element of a tensor in its exact spelling, row-major.
fn elements(t: &Tensor) -> Vec<String> {
    match t {
        Tensor::F32(a) => a.iter().map(|&x| fmt_f32(x)).collect(),
        Tensor::F16(a) => a.iter().map(|&x| fmt_f16(x)).collect(),
        Tensor::F64(a) => a.iter().map(|&x| fmt_f64(x)).collect(),
        Tensor::I8(a) => a.iter().map(|x| x.to_string()).collect(),
        Tensor::U8(a) => a.iter().map(|x| x.to_string()).collect(),
        Tensor::I32(a) => a.iter().map(|x| x.to_string()).collect(),
        Tensor::I64(a) => a.iter().map(|x| x.to_string()).collect(),
        Tensor::Bool(a) => a.iter().map(|x| x.to_string()).collect(),
    }
}

impl Printer<'_> {
    fn blob(&mut self, hash: u64, bytes: impl FnOnce() -> Vec<u8>) {
        if self.keep_blobs && self.seen.insert(hash) {
            self.blobs.push((hash, bytes()));
        }
    }

    fn graph(&mut self) -> String {
        let g = self.g;
        let mut out = String::new();
        let inputs: Vec<String> = g
            .input_nodes()
            .iter()
            .filter(|&&n| g.contains(n))
            .map(|&n| {
                let node = g.node(n);
                match node.outputs.first() {
                    Some(v) => format!(
                        "{}: {}{}",
                        value_ref(&v.name),
                        self.entry(v),
                        self.trailer(n, Some(&v.name))
                    ),
                    None => format!("%\"\": ?{}", self.trailer(n, Some(""))),
                }
            })
            .collect();
        let outputs: Vec<String> = g.outputs().iter().map(|&v| self.use_ref(v)).collect();
        let _ = writeln!(
            out,
            "graph {}({}) -> ({}) {{",
            ident(&g.name),
            inputs.join(", "),
            outputs.join(", ")
        );
        self.meta(&mut out);

        let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
        for n in const_order(g, &order) {
            let line = self.const_stmt(n);
            let _ = writeln!(out, "  {line}");
        }
        for &n in &order {
            if !matches!(g.node(n).op, Op::Input | Op::Const(_)) {
                let line = self.op_stmt(n);
                let _ = writeln!(out, "  {line}");
            }
        }
        out.push_str("}\n");

        if self.keep_blobs && !self.blobs.is_empty() {
            out.push_str("blobs {\n");
            for (h, bytes) in &self.blobs {
                let _ = writeln!(out, "  {h:016x} = \"{}\"", BASE64.encode(bytes));
            }
            out.push_str("}\n");
        }
        out
    }

    fn meta(&mut self, out: &mut String) {
        let m = &self.g.meta;
        if !m.opset_imports.is_empty() {
            let v: Vec<String> = m
                .opset_imports
                .iter()
                .map(|(d, v)| format!("{}: {v}", quote(d)))
                .collect();
            let _ = writeln!(out, "  opset {{{}}}", v.join(", "));
        }
        let mut fields = Vec::new();
        if m.ir_version != 0 {
            fields.push(format!("ir_version={}", m.ir_version));
        }
        for (k, v) in [
            ("producer_name", &m.producer_name),
            ("producer_version", &m.producer_version),
            ("domain", &m.domain),
        ] {
            if !v.is_empty() {
                fields.push(format!("{k}={}", quote(v)));
            }
        }
        if m.model_version != 0 {
            fields.push(format!("model_version={}", m.model_version));
        }
        for (k, v) in [("doc", &m.doc_string), ("graph_doc", &m.graph_doc_string)] {
            if !v.is_empty() {
                fields.push(format!("{k}={}", quote(v)));
            }
        }
        if !fields.is_empty() {
            let _ = writeln!(out, "  meta {{{}}}", fields.join(" "));
        }
        if !m.metadata_props.is_empty() {
            let v: Vec<String> = m
                .metadata_props
                .iter()
                .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
                .collect();
            let _ = writeln!(out, "  props {{{}}}", v.join(" "));
        }
    }

    /// A reference to a value, robust to dangling ids in a broken graph.
    fn use_ref(&self, v: ValueId) -> String {
        match self.g.try_node(v.node).and_then(|n| n.outputs.get(v.slot)) {
            Some(info) => value_ref(&info.name),
            None => value_ref(&format!("<missing {}:{}>", v.node.index(), v.slot)),
        }
    }

    /// ` loc("name")`, ` loc("name") doc("...")`, or nothing. For inputs and constants
    /// (`value_name` given) the node name is printed only when it differs from the value's.
    fn trailer(&self, n: NodeId, value_name: Option<&str>) -> String {
        let node = self.g.node(n);
        let name_differs = match value_name {
            Some(v) => node.name != v,
            None => !node.name.is_empty(),
        };
        let mut s = String::new();
        if name_differs || !node.doc.is_empty() {
            let _ = write!(s, " loc({})", quote(&node.name));
        }
        if !node.doc.is_empty() {
            let _ = write!(s, " doc({})", quote(&node.doc));
        }
        s
    }

    /// `TYPE @annotations doc("...")` for one value.
    fn entry(&mut self, v: &ValueInfo) -> String {
        let mut s = fmt_type(&v.ty);
        self.annotations(&mut s, &v.ann);
        if !v.doc.is_empty() {
            let _ = write!(s, " doc({})", quote(&v.doc));
        }
        s
    }

    fn annotations(&mut self, s: &mut String, a: &Annotations) {
        if let Some(r) = a.range {
            let _ = write!(s, " @range=[{}, {}]", fmt_f32(r.min), fmt_f32(r.max));
        }
        if let Some(q) = &a.qparams {
            let q = self.qparams(q);
            let _ = write!(s, " @q={q}");
        }
        for (k, v) in &a.notes {
            let key = if super::RESERVED_NOTES.contains(&k.as_str()) {
                quote(k)
            } else {
                ident(k)
            };
            let v = self.attr(v);
            let _ = write!(s, " @{key}={v}");
        }
    }

    fn qparams(&mut self, q: &QParams) -> String {
        let mut parts = Vec::new();
        if let Some(axis) = q.axis {
            parts.push(format!("axis={axis}"));
        }
        let single = q.axis.is_none() && q.scale.len() == 1 && q.zero_point.len() == 1;
        if single {
            parts.push(format!("s={}", fmt_f32(q.scale[0])));
            parts.push(format!("zp={}", q.zero_point[0]));
        } else {
            let s = self.list(Tensor::from_vec(&[q.scale.len()], q.scale.clone()));
            let zp = self.list(Tensor::from_vec(
                &[q.zero_point.len()],
                q.zero_point.clone(),
            ));
            parts.push(format!("s={s}"));
            parts.push(format!("zp={zp}"));
        }
        format!("{}({})", q.dtype, parts.join(", "))
    }

    /// A 1-D list: inline `[a, b]` when short, else a tensor literal (splat or hash).
    fn list(&mut self, t: Tensor) -> String {
        if t.len() <= INLINE_MAX {
            format!("[{}]", elements(&t).join(", "))
        } else {
            self.tensor_lit(&t)
        }
    }

    /// `TYPE PAYLOAD`, as after `const`.
    fn tensor_lit(&mut self, t: &Tensor) -> String {
        format!("{} {}", tensor_type(t), self.payload(t))
    }

    fn payload(&mut self, t: &Tensor) -> String {
        if t.len() <= INLINE_MAX {
            let e = elements(t);
            return if t.rank() == 0 {
                e.into_iter().next().unwrap_or_default()
            } else {
                format!("[{}]", e.join(", "))
            };
        }
        let bytes = t.to_le_bytes();
        let w = t.dtype().size();
        if bytes.chunks_exact(w).all(|c| c == &bytes[..w]) {
            let first = Tensor::from_le_bytes(t.dtype(), &[], &bytes[..w]).expect("one element");
            return format!("splat({})", elements(&first)[0]);
        }
        let st = t.stats();
        let hash = t.content_hash();
        self.blob(hash, || bytes);
        format!(
            "{{min={} max={} mean={} std={}}} #{hash:016x}",
            fmt_stat(st.min),
            fmt_stat(st.max),
            fmt_stat(st.mean),
            fmt_stat(st.std)
        )
    }

    fn attr(&mut self, a: &Attr) -> String {
        fn list(items: Vec<String>) -> String {
            format!("[{}]", items.join(","))
        }
        match a {
            Attr::Int(v) => v.to_string(),
            Attr::Float(v) => fmt_f32(*v),
            Attr::String(s) => quote(s),
            Attr::Ints(v) => list(v.iter().map(|x| x.to_string()).collect()),
            // An empty list is `[]` (ints); empty floats and strings say their kind.
            Attr::Floats(v) if v.is_empty() => "floats[]".into(),
            Attr::Strings(v) if v.is_empty() => "strings[]".into(),
            Attr::Floats(v) => list(v.iter().map(|&x| fmt_f32(x)).collect()),
            Attr::Strings(v) => list(v.iter().map(|s| quote(s)).collect()),
            Attr::Tensor(t) => format!("tensor<{}>", self.tensor_lit(t)),
            Attr::Raw(b) if b.len() <= RAW_INLINE_MAX => format!("raw<{}>", BASE64.encode(b)),
            Attr::Raw(b) => {
                let h = raw_hash(b);
                self.blob(h, || b.clone());
                format!("raw<#{h:016x}>")
            }
        }
    }

    fn const_stmt(&mut self, n: NodeId) -> String {
        let node = self.g.node(n);
        let Op::Const(t) = &node.op else {
            unreachable!("const_order yields constants")
        };
        let Some(v) = node.outputs.first() else {
            return format!("() = const {}", self.tensor_lit(t));
        };
        let mut s = format!("{} = const {}", value_ref(&v.name), self.tensor_lit(t));
        self.annotations(&mut s, &v.ann);
        if !v.doc.is_empty() {
            let _ = write!(s, " doc({})", quote(&v.doc));
        }
        s.push_str(&self.trailer(n, Some(&v.name)));
        s
    }

    fn op_stmt(&mut self, n: NodeId) -> String {
        let g = self.g;
        let node = g.node(n);
        let outs: Vec<String> = node.outputs.iter().map(|v| value_ref(&v.name)).collect();
        let lhs = if outs.is_empty() {
            "()".to_string()
        } else {
            outs.join(", ")
        };
        let args: Vec<String> = g
            .inputs(n)
            .into_iter()
            .map(|v| v.map_or("_".to_string(), |v| self.use_ref(v)))
            .collect();
        let mut s = format!("{lhs} = {}({})", op_name(&node.op), args.join(", "));
        match &node.op {
            Op::Observer(st) => {
                let body = self.observer(st);
                let _ = write!(s, " {{{body}}}");
            }
            op => {
                let attrs: Vec<String> = op
                    .attrs()
                    .iter()
                    .map(|(k, a)| format!("{}={}", ident(k), self.attr(a)))
                    .collect();
                if !attrs.is_empty() {
                    let _ = write!(s, " {{{}}}", attrs.join(" "));
                }
            }
        }
        let typed = node
            .outputs
            .iter()
            .any(|v| v.ty != TypeInfo::unknown() || !v.ann.is_empty() || !v.doc.is_empty());
        if typed {
            let entries: Vec<String> = node.outputs.iter().map(|v| self.entry(v)).collect();
            let _ = write!(s, " : {}", entries.join(", "));
        }
        s.push_str(&self.trailer(n, None));
        s
    }

    fn observer(&mut self, st: &ObserverState) -> String {
        let mut f = vec![format!("bins={}", st.bins)];
        if let Some(e) = st.ema {
            f.push(format!("ema={}", fmt_f32(e)));
        }
        f.push(format!("samples={}", st.samples));
        if let Some((lo, hi)) = st.min_max {
            f.push(format!("min_max=[{}, {}]", fmt_f32(lo), fmt_f32(hi)));
        }
        if st.nonfinite != 0 {
            f.push(format!("nonfinite={}", st.nonfinite));
        }
        if st.zeros != 0 {
            f.push(format!("zeros={}", st.zeros));
        }
        if let Some(e) = &st.ema_sums {
            // The exact sums print as their 64-bit limbs so that they round-trip bit for bit.
            let limbs = |x: &crate::observer::ExactSum| {
                let v: Vec<String> = x.limbs.iter().map(|l| l.to_string()).collect();
                format!("[{}]", v.join(", "))
            };
            f.push(format!(
                "ema_sums=ema(samples={}, min_sum={}, max_sum={})",
                e.samples,
                limbs(&e.min_sum),
                limbs(&e.max_sum)
            ));
        }
        for (k, h) in [("abs_hist", &st.abs_hist), ("hist", &st.hist)] {
            if let Some(h) = h {
                let h = self.histogram(h);
                f.push(format!("{k}={h}"));
            }
        }
        f.join(" ")
    }

    fn histogram(&mut self, h: &Histogram) -> String {
        let counts = if h.counts.len() <= INLINE_MAX {
            let c: Vec<String> = h.counts.iter().map(|c| c.to_string()).collect();
            format!("[{}]", c.join(", "))
        } else {
            // Counts travel as the bits of an i64 tensor (no u64 dtype); they never reach 2^63.
            let bits: Vec<i64> = h.counts.iter().map(|&c| c as i64).collect();
            self.tensor_lit(&Tensor::from_vec(&[bits.len()], bits))
        };
        format!(
            "hist(lo={}, hi={}, counts={counts})",
            fmt_f32(h.lo),
            fmt_f32(h.hi)
        )
    }
}

/// `Op`, `domain::Op`, with either part quoted when not an identifier. A custom op in the
/// default domain whose name is one of the graph-level forms (`const`, `Observer`) spells
/// its empty domain out (`""::const`) so it does not read as that form.
fn op_name(op: &Op) -> String {
    match op {
        Op::Observer(_) => "Observer".into(),
        Op::Custom(c)
            if c.domain.is_empty() && super::RESERVED_OPS.contains(&c.op_type.as_str()) =>
        {
            format!("\"\"::{}", ident(&c.op_type))
        }
        op if op.domain().is_empty() => ident(op.op_type()),
        op => format!("{}::{}", ident(op.domain()), ident(op.op_type())),
    }
}

/// Constants in order of first use by the ops in `order`, then unused ones by node index.
fn const_order(g: &Graph, order: &[NodeId]) -> Vec<NodeId> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &n in order {
        if g.node(n).op.is_source() {
            continue;
        }
        for v in g.inputs(n).into_iter().flatten() {
            if g.try_node(v.node).is_some_and(|p| p.op.is_const()) && seen.insert(v.node) {
                out.push(v.node);
            }
        }
    }
    for n in g.node_ids() {
        if g.node(n).op.is_const() && seen.insert(n) {
            out.push(n);
        }
    }
    out
}
