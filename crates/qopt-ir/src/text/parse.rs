//! The `.qir` parser (grammar in the [module docs](super)).
//!
//! Recursive descent over the on-demand [`Lexer`], building the [`Graph`] directly: values
//! must be defined before they are used (the printer's topological order guarantees it),
//! so names resolve as they are read and every error points at its token.
//!
//! Blobs sit at the end of the file but constants that need them come first, so a file that
//! references blobs is read twice: the first pass checks the syntax, collects the blob
//! section and notes every reference (standing in empty tensors for the missing bytes);
//! the second pass builds the graph with the bytes at hand. A file without hashed
//! constants (every hand-written test) is read once.

use super::error::ParseError;
use super::lexer::{Lexer, Tok};
use super::num::Num;
use super::random::{MAX_GENERATED_ELEMENTS, default_bounds, random_tensor};
use super::raw_hash;
use crate::annot::{Annotations, QParams, Range};
use crate::attr::Attr;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::graph::{Graph, TypeInfo, ValueId, ValueInfo};
use crate::observer::{Histogram, ObserverState};
use crate::op::{AttrError, Op};
use crate::tensor::Tensor;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use half::f16;
use std::collections::HashMap;
use std::sync::Arc;

type Blobs = HashMap<u64, Vec<u8>>;
type PResult<T> = Result<T, ParseError>;

/// Parse a `.qir` graph. Leading `#` comment lines are allowed; nothing may follow the
/// graph but an optional `blobs { .. }` section and comments.
pub fn parse(src: &str) -> Result<Graph, ParseError> {
    let mut first = Parser::new(src, None);
    let g = first.file()?;
    let Some(&(hash, at)) = first.hash_refs.first() else {
        return Ok(g);
    };
    let Some(blobs) = first.found_blobs.take() else {
        return Err(ParseError::at(
            src,
            at,
            format!(
                "#{hash:016x} refers to a blob, but this file has no blobs section: dumps and \
                 snapshots leave the bytes of large constants out; write the graph with \
                 `-o x.qir` to keep them"
            ),
        ));
    };
    if let Some(&(hash, at)) = first.hash_refs.iter().find(|(h, _)| !blobs.contains_key(h)) {
        return Err(ParseError::at(
            src,
            at,
            format!("blob #{hash:016x} is not in the blobs section"),
        ));
    }
    Parser::new(src, Some(&blobs)).file()
}

/// An element of an inline tensor literal.
enum Lit {
    Num(Num),
    Bool(bool),
}

struct Parser<'a, 'b> {
    lx: Lexer<'a>,
    /// The blob section, in the second pass.
    blobs: Option<&'b Blobs>,
    /// Hash references met in the first pass, with their offsets.
    hash_refs: Vec<(u64, usize)>,
    /// The blob section read in the first pass.
    found_blobs: Option<Blobs>,
    g: Graph,
    /// Value names defined so far, with the offset of their definition.
    names: HashMap<String, (ValueId, usize)>,
}

impl<'a, 'b> Parser<'a, 'b> {
    fn new(src: &'a str, blobs: Option<&'b Blobs>) -> Self {
        Parser {
            lx: Lexer::new(src),
            blobs,
            hash_refs: Vec::new(),
            found_blobs: None,
            g: Graph::default(),
            names: HashMap::new(),
        }
    }

    // ---- token helpers ---------------------------------------------------------------------

    fn err<T>(&self, at: usize, msg: impl Into<String>) -> PResult<T> {
        Err(self.lx.error(at, msg))
    }

    fn peek(&mut self) -> PResult<&Tok> {
        Ok(self.lx.peek()?.1)
    }

    fn next(&mut self) -> PResult<(usize, Tok)> {
        self.lx.next()
    }

    fn at_punct(&mut self, c: char) -> PResult<bool> {
        Ok(*self.peek()? == Tok::Punct(c))
    }

    fn at_ident(&mut self, kw: &str) -> PResult<bool> {
        Ok(matches!(self.peek()?, Tok::Ident(s) if s == kw))
    }

    fn eat_punct(&mut self, c: char) -> PResult<bool> {
        let hit = self.at_punct(c)?;
        if hit {
            self.next()?;
        }
        Ok(hit)
    }

    fn eat_ident(&mut self, kw: &str) -> PResult<bool> {
        let hit = self.at_ident(kw)?;
        if hit {
            self.next()?;
        }
        Ok(hit)
    }

    fn expect_punct(&mut self, c: char, context: &str) -> PResult<usize> {
        let (at, t) = self.next()?;
        if t == Tok::Punct(c) {
            Ok(at)
        } else {
            self.err(
                at,
                format!("expected '{c}' {context}, found {}", t.describe()),
            )
        }
    }

    fn expect_ident(&mut self, kw: &str, context: &str) -> PResult<usize> {
        let (at, t) = self.next()?;
        match t {
            Tok::Ident(s) if s == kw => Ok(at),
            t => self.err(
                at,
                format!("expected '{kw}' {context}, found {}", t.describe()),
            ),
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match self.next()? {
            (_, Tok::Str(s)) => Ok(s),
            (at, t) => self.err(
                at,
                format!("expected {what} (a quoted string), found {}", t.describe()),
            ),
        }
    }

    /// An identifier or a quoted string.
    fn name(&mut self, what: &str) -> PResult<(usize, String)> {
        match self.next()? {
            (at, Tok::Ident(s) | Tok::Str(s)) => Ok((at, s)),
            (at, t) => self.err(at, format!("expected {what}, found {}", t.describe())),
        }
    }

    /// Items separated by commas up to the closing `close` (the opening one is consumed).
    fn comma_list(
        &mut self,
        close: char,
        what: &str,
        mut item: impl FnMut(&mut Self) -> PResult<()>,
    ) -> PResult<()> {
        if self.eat_punct(close)? {
            return Ok(());
        }
        loop {
            item(self)?;
            if self.eat_punct(',')? {
                continue;
            }
            self.expect_punct(close, &format!("or ',' after {what}"))?;
            return Ok(());
        }
    }

    // ---- numbers -------------------------------------------------------------------------------

    /// A numeric literal: `12`, `-0.5`, `1e-3`, `inf`, `-inf`, `nan`, `nan(0x7fc00001)`.
    fn num(&mut self) -> PResult<(usize, Num)> {
        let (at, t) = self.next()?;
        match t {
            Tok::Num(s) if s.starts_with("nan(") => {
                let bits = s
                    .strip_prefix("nan(0x")
                    .and_then(|x| x.strip_suffix(')'))
                    .and_then(|x| u64::from_str_radix(x, 16).ok());
                match bits {
                    Some(b) => Ok((at, Num::NanBits(b))),
                    None => self.err(at, "expected NaN bits in hex, like nan(0x7fc00001)"),
                }
            }
            Tok::Ident(s) if s == "inf" || s == "nan" => Ok((at, Num::Text(s))),
            Tok::Num(s) => Ok((at, Num::Text(s))),
            t => self.err(at, format!("expected a number, found {}", t.describe())),
        }
    }

    fn conv<T>(&self, at: usize, r: Result<T, String>) -> PResult<T> {
        r.map_err(|m| self.lx.error(at, m))
    }

    fn f32(&mut self) -> PResult<f32> {
        let (at, n) = self.num()?;
        self.conv(at, n.to_f32())
    }

    fn u64(&mut self) -> PResult<u64> {
        let (at, n) = self.num()?;
        self.conv(at, n.to_u64())
    }

    fn i64(&mut self) -> PResult<i64> {
        let (at, n) = self.num()?;
        self.conv(at, n.to_i64())
    }

    // ---- file and graph ------------------------------------------------------------------------

    fn file(&mut self) -> PResult<Graph> {
        self.expect_ident("graph", "at the start of the file")?;
        let (_, name) = self.name("a graph name")?;
        self.g.name = name;
        self.expect_punct('(', "before the graph inputs")?;
        self.comma_list(')', "a graph input", |p| p.input())?;
        let (at, t) = self.next()?;
        if t != Tok::Arrow {
            return self.err(
                at,
                format!(
                    "expected '->' and the graph outputs, found {}",
                    t.describe()
                ),
            );
        }
        self.expect_punct('(', "before the graph outputs")?;
        let mut outputs = Vec::new();
        self.comma_list(')', "a graph output", |p| {
            match p.next()? {
                (at, Tok::Value(v)) => outputs.push((at, v)),
                (at, t) => {
                    return p.err(
                        at,
                        format!("expected an output value like %y, found {}", t.describe()),
                    );
                }
            }
            Ok(())
        })?;
        self.expect_punct('{', "to open the graph body")?;
        loop {
            match self.lx.peek()? {
                (_, Tok::Punct('}')) => {
                    self.next()?;
                    break;
                }
                (at, Tok::Eof) => return self.err(at, "expected '}' to close the graph body"),
                _ => self.stmt()?,
            }
        }
        let mut outs = Vec::with_capacity(outputs.len());
        for (at, name) in outputs {
            match self.names.get(&name) {
                Some(&(v, _)) => outs.push(v),
                None => {
                    return self.err(
                        at,
                        format!("graph output %{name} is not defined in the body"),
                    );
                }
            }
        }
        self.g.set_outputs(outs);

        // The second pass has the blobs already and knows the rest of the file is well formed.
        if self.blobs.is_none() {
            if self.eat_ident("blobs")? {
                self.blob_section()?;
            }
            let (at, t) = self.next()?;
            if t != Tok::Eof {
                return self.err(
                    at,
                    format!(
                        "expected the end of the file after the graph, found {}",
                        t.describe()
                    ),
                );
            }
        }
        Ok(std::mem::take(&mut self.g))
    }

    fn define(&mut self, name: &str, v: ValueId, at: usize) -> PResult<()> {
        if let Some(&(_, prev)) = self.names.get(name) {
            let line = ParseError::at(self.lx.src, prev, "").line;
            return self.err(at, format!("%{name} is already defined (line {line})"));
        }
        self.names.insert(name.to_string(), (v, at));
        Ok(())
    }

    fn lookup(&mut self, name: &str, at: usize) -> PResult<ValueId> {
        match self.names.get(name) {
            Some(&(v, _)) => Ok(v),
            None => self.err(
                at,
                format!("unknown value %{name} (values are defined before they are used)"),
            ),
        }
    }

    /// `%x: TYPE @ann.. doc("..") loc("..") doc("..")` in the signature.
    fn input(&mut self) -> PResult<()> {
        let (at, name) = match self.next()? {
            (at, Tok::Value(v)) => (at, v),
            (at, t) => {
                return self.err(
                    at,
                    format!(
                        "expected a graph input like %x: f32[1,3], found {}",
                        t.describe()
                    ),
                );
            }
        };
        self.expect_punct(':', "and the input's type")?;
        let info = self.entry(&name)?;
        let (loc, doc) = self.trailer()?;
        let v = self.g.add_input(&name, info.ty.clone());
        *self.g.value_mut(v) = info;
        let node = self.g.node_mut(v.node);
        node.name = loc.unwrap_or_else(|| name.clone());
        node.doc = doc;
        self.define(&name, v, at)
    }

    fn stmt(&mut self) -> PResult<()> {
        let (at, t) = self.lx.peek()?;
        match t {
            Tok::Ident(k) if k == "opset" => {
                self.next()?;
                self.expect_punct('{', "after 'opset'")?;
                self.comma_list('}', "an opset import", |p| {
                    let domain = p.string("an operator domain (\"\" for ONNX)")?;
                    p.expect_punct(':', "between the domain and its version")?;
                    let v = p.i64()?;
                    p.g.meta.opset_imports.push((domain, v));
                    Ok(())
                })
            }
            Tok::Ident(k) if k == "meta" => {
                self.next()?;
                self.expect_punct('{', "after 'meta'")?;
                while !self.eat_punct('}')? {
                    let (kat, key) = self.name("a meta field")?;
                    self.expect_punct('=', "after the field name")?;
                    match key.as_str() {
                        "ir_version" => self.g.meta.ir_version = self.i64()?,
                        "model_version" => self.g.meta.model_version = self.i64()?,
                        "producer_name" => {
                            self.g.meta.producer_name = self.string("the producer name")?
                        }
                        "producer_version" => {
                            self.g.meta.producer_version = self.string("the producer version")?
                        }
                        "domain" => self.g.meta.domain = self.string("the model domain")?,
                        "doc" => self.g.meta.doc_string = self.string("the model doc string")?,
                        "graph_doc" => {
                            self.g.meta.graph_doc_string = self.string("the graph doc string")?
                        }
                        _ => {
                            return self.err(
                                kat,
                                format!(
                                    "unknown meta field '{key}' (known: ir_version producer_name \
                                     producer_version domain model_version doc graph_doc)"
                                ),
                            );
                        }
                    }
                }
                Ok(())
            }
            Tok::Ident(k) if k == "props" => {
                self.next()?;
                self.expect_punct('{', "after 'props'")?;
                while !self.eat_punct('}')? {
                    let k = self.string("a metadata key")?;
                    self.expect_punct('=', "after the metadata key")?;
                    let v = self.string("a metadata value")?;
                    self.g.meta.metadata_props.push((k, v));
                }
                Ok(())
            }
            Tok::Value(_) | Tok::Punct('(') => self.node_stmt(),
            t => {
                let msg = format!(
                    "expected a statement (%name = ..., opset, meta, props) or '}}', found {}",
                    t.describe()
                );
                self.err(at, msg)
            }
        }
    }

    fn node_stmt(&mut self) -> PResult<()> {
        let mut outs: Vec<(usize, String)> = Vec::new();
        if self.eat_punct('(')? {
            self.expect_punct(')', "(a node without outputs is written `() = Op(..)`)")?;
        } else {
            loop {
                match self.next()? {
                    (at, Tok::Value(v)) => outs.push((at, v)),
                    (at, t) => {
                        return self.err(
                            at,
                            format!("expected an output value like %y, found {}", t.describe()),
                        );
                    }
                }
                if !self.eat_punct(',')? {
                    break;
                }
            }
        }
        self.expect_punct('=', "after the output names")?;
        let op_at = self.lx.offset();
        if self.eat_ident("const")? {
            self.const_stmt(op_at, outs)
        } else {
            self.op_stmt(outs)
        }
    }

    fn const_stmt(&mut self, at: usize, outs: Vec<(usize, String)>) -> PResult<()> {
        let [(name_at, name)] = <[_; 1]>::try_from(outs).map_err(|o: Vec<_>| {
            self.lx.error(
                at,
                format!("a constant defines exactly one value, not {}", o.len()),
            )
        })?;
        let (_, t) = self.tensor_lit()?;
        let ann = self.annotations()?;
        let doc = self.value_doc()?;
        let (loc, ndoc) = self.trailer()?;
        let v = self.g.add_const(&name, t);
        let info = self.g.value_mut(v);
        info.ann = ann;
        info.doc = doc;
        let node = self.g.node_mut(v.node);
        node.name = loc.unwrap_or_else(|| name.clone());
        node.doc = ndoc;
        self.define(&name, v, name_at)
    }

    fn op_stmt(&mut self, outs: Vec<(usize, String)>) -> PResult<()> {
        let (op_at, first) = self.name("an operator name")?;
        let (domain, op_type) = if self.lx.peek()?.1 == &Tok::ColonColon {
            self.next()?;
            let (_, op) = self.name("an operator name after '::'")?;
            (Some(first), op)
        } else {
            (None, first)
        };
        self.expect_punct('(', &format!("before the inputs of {op_type}"))?;
        let mut inputs = Vec::new();
        self.comma_list(')', "an input", |p| {
            match p.next()? {
                (at, Tok::Value(v)) => {
                    let id = p.lookup(&v, at)?;
                    inputs.push(Some(id));
                }
                (_, Tok::Ident(s)) if s == "_" => inputs.push(None),
                (at, t) => {
                    return p.err(
                        at,
                        format!(
                            "expected an input value like %x (or _ for an absent one), found {}",
                            t.describe()
                        ),
                    );
                }
            }
            Ok(())
        })?;

        let op = if domain.is_none() && op_type == "Observer" {
            Op::Observer(Box::new(self.observer()?))
        } else {
            let mut attrs: Vec<(String, Attr)> = Vec::new();
            let mut keys: Vec<usize> = Vec::new();
            if self.eat_punct('{')? {
                while !self.eat_punct('}')? {
                    let (kat, k) = self.name("an attribute name")?;
                    if attrs.iter().any(|(n, _)| *n == k) {
                        return self.err(kat, format!("attribute '{k}' is given twice"));
                    }
                    self.expect_punct('=', "after the attribute name")?;
                    let a = self.attr_value()?;
                    attrs.push((k, a));
                    keys.push(kat);
                }
            }
            let domain = domain.as_deref().unwrap_or("");
            Op::from_parts(domain, &op_type, &attrs).map_err(|e| {
                let at = match &e {
                    AttrError::Unknown(k) | AttrError::Invalid { name: k, .. } => attrs
                        .iter()
                        .position(|(n, _)| n == k)
                        .map_or(op_at, |i| keys[i]),
                    AttrError::Missing(_) => op_at,
                };
                let qualified = match domain {
                    "" => op_type.clone(),
                    d => format!("{d}::{op_type}"),
                };
                self.lx.error(at, format!("{qualified}: {e}"))
            })?
        };

        let mut infos: Vec<ValueInfo> = outs
            .iter()
            .map(|(_, n)| ValueInfo::new(n.clone(), TypeInfo::unknown()))
            .collect();
        if self.at_punct(':')? {
            let colon = self.next()?.0;
            let mut typed = Vec::new();
            loop {
                let name = outs
                    .get(typed.len())
                    .map_or("", |o| o.1.as_str())
                    .to_string();
                typed.push(self.entry(&name)?);
                if !self.eat_punct(',')? {
                    break;
                }
            }
            if typed.len() != outs.len() {
                return self.err(
                    colon,
                    format!("{} outputs but {} types", outs.len(), typed.len()),
                );
            }
            infos = typed;
        }
        let (loc, doc) = self.trailer()?;
        if loc.is_none() && self.at_ident("doc")? {
            let at = self.lx.offset();
            return self.err(
                at,
                "a node's doc(..) follows its loc(..); a value's doc(..) follows its type",
            );
        }
        let id = self.g.add_node(loc.unwrap_or_default(), op, &inputs, infos);
        self.g.node_mut(id).doc = doc;
        for (slot, (at, name)) in outs.iter().enumerate() {
            self.define(name, ValueId::new(id, slot), *at)?;
        }
        Ok(())
    }

    /// ` loc("name") doc("..")`: the node's name, and its doc string after it.
    fn trailer(&mut self) -> PResult<(Option<String>, String)> {
        if !self.eat_ident("loc")? {
            return Ok((None, String::new()));
        }
        self.expect_punct('(', "after 'loc'")?;
        let loc = self.string("the node name")?;
        self.expect_punct(')', "after the node name")?;
        let doc = self.value_doc()?;
        Ok((Some(loc), doc))
    }

    /// An optional `doc("...")`.
    fn value_doc(&mut self) -> PResult<String> {
        if !self.eat_ident("doc")? {
            return Ok(String::new());
        }
        self.expect_punct('(', "after 'doc'")?;
        let d = self.string("the doc string")?;
        self.expect_punct(')', "after the doc string")?;
        Ok(d)
    }

    // ---- types and annotations ---------------------------------------------------------------------

    /// `TYPE @ann.. doc("..")` for the value `name`.
    fn entry(&mut self, name: &str) -> PResult<ValueInfo> {
        let ty = self.ty()?;
        let ann = self.annotations()?;
        let doc = self.value_doc()?;
        let mut v = ValueInfo::new(name, ty);
        v.ann = ann;
        v.doc = doc;
        Ok(v)
    }

    /// `f32[N,3,224,224]`, `f32[*]`, `?[2]`, `?`.
    fn ty(&mut self) -> PResult<TypeInfo> {
        let (at, t) = self.next()?;
        let dtype = match &t {
            Tok::Punct('?') => None,
            Tok::Ident(s) => match DType::from_name(s) {
                Some(d) => Some(d),
                None => {
                    return self.err(
                        at,
                        format!("unknown element type '{s}' (expected f32, f16, f64, i8, u8, i32, i64, bool or ?)"),
                    );
                }
            },
            t => {
                return self.err(
                    at,
                    format!("expected a type like f32[1,3], found {}", t.describe()),
                );
            }
        };
        if !self.at_punct('[')? {
            if dtype.is_none() {
                return Ok(TypeInfo::unknown());
            }
            let at = self.lx.offset();
            return self.err(
                at,
                "expected '[' and a shape: f32[1,3], f32[] for a scalar, f32[*] for unknown rank",
            );
        }
        self.next()?;
        if self.eat_punct('*')? {
            self.expect_punct(']', "after '*' (unknown rank)")?;
            return Ok(TypeInfo { dtype, shape: None });
        }
        let mut dims = Vec::new();
        self.comma_list(']', "a dimension", |p| {
            let d = match p.next()? {
                (_, Tok::Punct('?')) => Dim::Unknown,
                (_, Tok::Ident(s) | Tok::Str(s)) => Dim::Sym(s),
                (at, Tok::Num(n)) => match n.parse::<u64>() {
                    Ok(k) => Dim::Known(k),
                    Err(_) => {
                        return p.err(at, format!("bad dimension {n} (symbols that start with a digit are quoted: \"{n}\")"));
                    }
                },
                (at, t) => return p.err(at, format!("expected a dimension (a size, a symbol or ?), found {}", t.describe())),
            };
            dims.push(d);
            Ok(())
        })?;
        Ok(TypeInfo {
            dtype,
            shape: Some(Shape(dims)),
        })
    }

    fn annotations(&mut self) -> PResult<Annotations> {
        let mut ann = Annotations::default();
        while self.eat_punct('@')? {
            let (at, t) = self.next()?;
            match t {
                Tok::Ident(k) if k == "range" => {
                    if ann.range.is_some() {
                        return self.err(at, "@range is given twice");
                    }
                    self.expect_punct('=', "after @range")?;
                    self.expect_punct('[', "before the range's min")?;
                    let min = self.f32()?;
                    self.expect_punct(',', "between the range's min and max")?;
                    let max = self.f32()?;
                    self.expect_punct(']', "after the range's max")?;
                    ann.range = Some(Range { min, max });
                }
                Tok::Ident(k) if k == "q" => {
                    if ann.qparams.is_some() {
                        return self.err(at, "@q is given twice");
                    }
                    self.expect_punct('=', "after @q")?;
                    ann.qparams = Some(self.qparams()?);
                }
                Tok::Ident(k) | Tok::Str(k) => {
                    if ann.notes.contains_key(&k) {
                        return self.err(at, format!("annotation @{k} is given twice"));
                    }
                    self.expect_punct('=', "after the annotation name")?;
                    let v = self.attr_value()?;
                    ann.notes.insert(k, v);
                }
                t => {
                    return self.err(
                        at,
                        format!(
                            "expected an annotation name after '@', found {}",
                            t.describe()
                        ),
                    );
                }
            }
        }
        Ok(ann)
    }

    /// `i8(s=0.1, zp=0)` or `i8(axis=0, s=[..], zp=[..])`; `zp` defaults to zeros.
    fn qparams(&mut self) -> PResult<QParams> {
        let (at, t) = self.next()?;
        let dtype = match &t {
            Tok::Ident(s) => DType::from_name(s),
            _ => None,
        };
        let Some(dtype) = dtype else {
            return self.err(
                at,
                format!(
                    "expected the quantized type (i8, u8, i32), found {}",
                    t.describe()
                ),
            );
        };
        self.expect_punct('(', "after the quantized type")?;
        let (mut axis, mut scale, mut zp) = (None, None, None);
        self.comma_list(')', "a quantization parameter", |p| {
            let (kat, k) = p.name("axis, s or zp")?;
            p.expect_punct('=', &format!("after {k}"))?;
            match k.as_str() {
                "axis" => {
                    let (aat, n) = p.num()?;
                    let a = p.conv(aat, n.to_u64())?;
                    axis = Some(p.conv(
                        aat,
                        usize::try_from(a).map_err(|_| "axis too large".to_string()),
                    )?);
                }
                "s" => {
                    let t = p.list(DType::F32)?;
                    scale = Some(
                        t.as_f32()
                            .map(|a| a.iter().copied().collect::<Vec<f32>>())
                            .unwrap_or_default(),
                    );
                }
                "zp" => {
                    let t = p.list(DType::I32)?;
                    zp = Some(match t {
                        Tensor::I32(a) => a.iter().copied().collect(),
                        _ => vec![],
                    });
                }
                _ => {
                    return p.err(
                        kat,
                        format!("unknown quantization parameter '{k}' (expected axis, s, zp)"),
                    );
                }
            }
            Ok(())
        })?;
        let Some(scale) = scale else {
            return self.err(at, "quantization parameters need a scale: s=...");
        };
        let zero_point = zp.unwrap_or_else(|| vec![0; scale.len()]);
        Ok(QParams {
            dtype,
            scale,
            zero_point,
            axis,
        })
    }

    /// A 1-D list of `dtype`: a number, `[a, b, ..]`, or a tensor literal (`f32[64] ..`).
    fn list(&mut self, dtype: DType) -> PResult<Tensor> {
        let at = self.lx.offset();
        if self.eat_punct('[')? {
            let mut lits = Vec::new();
            self.comma_list(']', "a list element", |p| {
                lits.push(p.lit()?);
                Ok(())
            })?;
            return self.build(at, dtype, &[lits.len()], &lits);
        }
        if matches!(self.peek()?, Tok::Ident(s) if DType::from_name(s).is_some()) {
            let ((d, shape), t) = self.tensor_lit()?;
            if d != dtype || shape.len() != 1 {
                return self.err(at, format!("expected a 1-D {dtype} list"));
            }
            return Ok(t);
        }
        let l = self.lit()?;
        self.build(at, dtype, &[1], &[l])
    }

    // ---- attributes ----------------------------------------------------------------------------------

    fn attr_value(&mut self) -> PResult<Attr> {
        let (at, t) = self.lx.peek()?;
        match t {
            Tok::Str(_) => Ok(Attr::String(self.string("a string")?)),
            Tok::Num(_) => self.attr_number(),
            Tok::Ident(s) if s == "inf" || s == "nan" => self.attr_number(),
            Tok::Punct('[') => {
                self.next()?;
                self.attr_list(at, None)
            }
            Tok::Ident(k) if matches!(k.as_str(), "ints" | "floats" | "strings") => {
                let kind = k.clone();
                self.next()?;
                let open = self.expect_punct('[', &format!("after '{kind}'"))?;
                self.attr_list(open, Some(kind))
            }
            Tok::Ident(k) if k == "tensor" => {
                self.next()?;
                self.expect_punct('<', "after 'tensor'")?;
                let (_, t) = self.tensor_lit()?;
                self.expect_punct('>', "to close tensor<..>")?;
                Ok(Attr::Tensor(Arc::new(t)))
            }
            Tok::Ident(k) if k == "raw" => {
                self.next()?;
                self.expect_punct('<', "after 'raw'")?;
                self.raw()
            }
            t => {
                let msg = format!(
                    "expected an attribute value (a number, a string, a list, tensor<..> or raw<..>), found {}",
                    t.describe()
                );
                self.err(at, msg)
            }
        }
    }

    fn attr_number(&mut self) -> PResult<Attr> {
        let (at, n) = self.num()?;
        if n.is_float() {
            Ok(Attr::Float(self.conv(at, n.to_f32())?))
        } else {
            Ok(Attr::Int(self.conv(at, n.to_i64())?))
        }
    }

    /// The rest of a list attribute after `[`. Without a kind prefix, strings make `strings`,
    /// any float makes `floats`, and otherwise (including `[]`) it is `ints`.
    fn attr_list(&mut self, open: usize, kind: Option<String>) -> PResult<Attr> {
        let mut nums: Vec<(usize, Num)> = Vec::new();
        let mut strs: Vec<String> = Vec::new();
        self.comma_list(']', "a list element", |p| {
            if let Tok::Str(_) = p.peek()? {
                strs.push(p.string("a string")?);
            } else {
                nums.push(p.num()?);
            }
            Ok(())
        })?;
        let kind = match kind {
            Some(k) => k,
            None if !strs.is_empty() => "strings".into(),
            None if nums.iter().any(|(_, n)| n.is_float()) => "floats".into(),
            None => "ints".into(),
        };
        match kind.as_str() {
            "strings" if nums.is_empty() => Ok(Attr::Strings(strs)),
            "floats" if strs.is_empty() => nums
                .iter()
                .map(|(at, n)| self.conv(*at, n.to_f32()))
                .collect::<PResult<_>>()
                .map(Attr::Floats),
            "ints" if strs.is_empty() => nums
                .iter()
                .map(|(at, n)| self.conv(*at, n.to_i64()))
                .collect::<PResult<_>>()
                .map(Attr::Ints),
            _ => self.err(open, "a list holds numbers or strings, not both"),
        }
    }

    /// The rest of `raw<..>`: base64 bytes, or `#hash` of bytes in the blob section.
    fn raw(&mut self) -> PResult<Attr> {
        if let Some(h) = self.lx.hash() {
            let (at, hash) = h?;
            self.expect_punct('>', "to close raw<..>")?;
            let bytes = self.blob(hash, at)?.map(<[u8]>::to_vec).unwrap_or_default();
            if self.blobs.is_some() && raw_hash(&bytes) != hash {
                return self.err(at, format!("blob #{hash:016x} does not hash to its name"));
            }
            return Ok(Attr::Raw(bytes));
        }
        let (at, text) = self.lx.raw_until('>')?;
        match BASE64.decode(text) {
            Ok(b) => Ok(Attr::Raw(b)),
            Err(e) => self.err(at, format!("bad base64 in raw<..>: {e}")),
        }
    }

    // ---- tensors -------------------------------------------------------------------------------------

    /// One element of an inline list: a number, `true` or `false`.
    fn lit(&mut self) -> PResult<(usize, Lit)> {
        let (at, t) = self.lx.peek()?;
        match t {
            Tok::Ident(s) if s == "true" || s == "false" => {
                let b = s == "true";
                self.next()?;
                Ok((at, Lit::Bool(b)))
            }
            _ => {
                let (at, n) = self.num()?;
                Ok((at, Lit::Num(n)))
            }
        }
    }

    /// `TYPE PAYLOAD` as after `const`. Returns the declared type and the tensor (an empty
    /// stand-in for blob references in the first pass).
    fn tensor_lit(&mut self) -> PResult<((DType, Vec<usize>), Tensor)> {
        let at = self.lx.offset();
        let ty = self.ty()?;
        let dims = ty.shape.as_ref().and_then(|s| s.as_known());
        let (Some(dtype), Some(shape)) = (ty.dtype, dims) else {
            return self.err(
                at,
                "a tensor needs a known element type and shape, like f32[2,3]",
            );
        };
        let key = (dtype, shape.clone());
        if let Some(h) = self.lx.hash() {
            let (hat, hash) = h?;
            return Ok((key, self.hashed(hat, hash, dtype, &shape)?));
        }
        let (pat, t) = self.lx.peek()?;
        let t = match t {
            Tok::Punct('{') => {
                self.stats()?;
                match self.lx.hash() {
                    Some(h) => {
                        let (hat, hash) = h?;
                        self.hashed(hat, hash, dtype, &shape)?
                    }
                    None => {
                        let at = self.lx.offset();
                        return self
                            .err(at, "expected the content hash (#...) after the statistics");
                    }
                }
            }
            Tok::Ident(k) if k == "splat" => {
                self.next()?;
                self.expect_punct('(', "after 'splat'")?;
                let l = self.lit()?;
                self.expect_punct(')', "after the splat value")?;
                let one = self.build(pat, dtype, &[], &[l])?;
                let n = self.numel(pat, &shape)?;
                let bytes = one.to_le_bytes().repeat(n);
                self.conv(pat, Tensor::from_le_bytes(dtype, &shape, &bytes))?
            }
            Tok::Ident(k) if k == "random" => {
                self.next()?;
                self.random(pat, dtype, &shape)?
            }
            Tok::Punct('[') => {
                self.next()?;
                let mut lits = Vec::new();
                self.comma_list(']', "a tensor element", |p| {
                    lits.push(p.lit()?);
                    Ok(())
                })?;
                self.build(pat, dtype, &shape, &lits)?
            }
            _ => {
                let l = self.lit()?;
                self.build(pat, dtype, &shape, &[l])?
            }
        };
        Ok((key, t))
    }

    fn numel(&self, at: usize, shape: &[usize]) -> PResult<usize> {
        shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_GENERATED_ELEMENTS)
            .ok_or_else(|| {
                self.lx.error(
                    at,
                    format!("shape {shape:?} has more than {MAX_GENERATED_ELEMENTS} elements"),
                )
            })
    }

    /// `{min=.. max=.. mean=.. std=..}`: read and ignored (recomputed from the data).
    fn stats(&mut self) -> PResult<()> {
        self.expect_punct('{', "")?;
        while !self.eat_punct('}')? {
            self.name("a statistic name")?;
            self.expect_punct('=', "after the statistic name")?;
            self.num()?;
        }
        Ok(())
    }

    /// `random(seed=S, lo=A, hi=B)` after `random`.
    fn random(&mut self, at: usize, dtype: DType, shape: &[usize]) -> PResult<Tensor> {
        self.expect_punct('(', "after 'random'")?;
        let (mut seed, (mut lo, mut hi)) = (None, default_bounds(dtype));
        self.comma_list(')', "a random() parameter", |p| {
            let (kat, k) = p.name("seed, lo or hi")?;
            p.expect_punct('=', &format!("after {k}"))?;
            match k.as_str() {
                "seed" => seed = Some(p.u64()?),
                "lo" | "hi" => {
                    let (nat, n) = p.num()?;
                    let v = p.conv(nat, n.to_f64())?;
                    if k == "lo" { lo = v } else { hi = v }
                }
                _ => {
                    return p.err(
                        kat,
                        format!("unknown random() parameter '{k}' (expected seed, lo, hi)"),
                    );
                }
            }
            Ok(())
        })?;
        let Some(seed) = seed else {
            return self.err(at, "random(..) needs a seed: random(seed=1)");
        };
        self.conv(at, random_tensor(dtype, shape, seed, lo, hi))
    }

    /// A tensor from inline elements; a single element fills a one-element tensor of any rank.
    fn build(
        &self,
        at: usize,
        dtype: DType,
        shape: &[usize],
        lits: &[(usize, Lit)],
    ) -> PResult<Tensor> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(lits.len()) {
            let want = n.map_or("too many".to_string(), |n| n.to_string());
            return self.err(
                at,
                format!("{dtype}{shape:?} needs {want} elements, got {}", lits.len()),
            );
        }
        fn ints<T: TryFrom<i64>>(
            p: &Parser,
            lits: &[(usize, Lit)],
            dtype: DType,
        ) -> PResult<Vec<T>> {
            let (lo, hi) = dtype.int_range().expect("integer type");
            lits.iter()
                .map(|(at, l)| {
                    let v = match l {
                        Lit::Num(n) => p.conv(*at, n.to_int_in(lo, hi, dtype.name()))?,
                        Lit::Bool(_) => {
                            return p.err(*at, format!("expected an {dtype} number, found a bool"));
                        }
                    };
                    p.conv(*at, T::try_from(v).map_err(|_| "out of range".to_string()))
                })
                .collect()
        }
        fn floats<T>(
            p: &Parser,
            lits: &[(usize, Lit)],
            f: impl Fn(&Num) -> Result<T, String>,
        ) -> PResult<Vec<T>> {
            lits.iter()
                .map(|(at, l)| match l {
                    Lit::Num(n) => p.conv(*at, f(n)),
                    Lit::Bool(_) => p.err(*at, "expected a number, found a bool"),
                })
                .collect()
        }
        let t = match dtype {
            DType::F32 => Tensor::try_from_vec(shape, floats(self, lits, Num::to_f32)?),
            DType::F64 => Tensor::try_from_vec(shape, floats(self, lits, Num::to_f64)?),
            DType::F16 => Tensor::try_from_vec::<f16>(shape, floats(self, lits, Num::to_f16)?),
            DType::I8 => Tensor::try_from_vec::<i8>(shape, ints(self, lits, dtype)?),
            DType::U8 => Tensor::try_from_vec::<u8>(shape, ints(self, lits, dtype)?),
            DType::I32 => Tensor::try_from_vec::<i32>(shape, ints(self, lits, dtype)?),
            DType::I64 => Tensor::try_from_vec::<i64>(shape, ints(self, lits, dtype)?),
            DType::Bool => {
                let v = lits
                    .iter()
                    .map(|(at, l)| match l {
                        Lit::Bool(b) => Ok(*b),
                        Lit::Num(n) => match n.to_i64() {
                            Ok(0) => Ok(false),
                            Ok(1) => Ok(true),
                            _ => self.err(*at, "expected true or false"),
                        },
                    })
                    .collect::<PResult<Vec<bool>>>()?;
                Tensor::try_from_vec(shape, v)
            }
        };
        self.conv(at, t)
    }

    /// The bytes of blob `hash`, or `None` in the first pass (which notes the reference).
    fn blob(&mut self, hash: u64, at: usize) -> PResult<Option<&'b [u8]>> {
        match self.blobs {
            Some(b) => match b.get(&hash) {
                Some(bytes) => Ok(Some(bytes.as_slice())),
                None => self.err(at, format!("blob #{hash:016x} is not in the blobs section")),
            },
            None => {
                self.hash_refs.push((hash, at));
                Ok(None)
            }
        }
    }

    /// The tensor behind a content hash, checked against its declared type and the hash.
    fn hashed(&mut self, at: usize, hash: u64, dtype: DType, shape: &[usize]) -> PResult<Tensor> {
        let Some(bytes) = self.blob(hash, at)? else {
            return Ok(Tensor::zeros(dtype, &[0]));
        };
        let t = Tensor::from_le_bytes(dtype, shape, bytes).map_err(|e| {
            self.lx
                .error(at, format!("blob #{hash:016x} does not fit: {e}"))
        })?;
        if t.content_hash() != hash {
            return self.err(
                at,
                format!(
                    "blob #{hash:016x} does not match {dtype}{shape:?} (its content hash is #{:016x})",
                    t.content_hash()
                ),
            );
        }
        Ok(t)
    }

    /// `blobs { HASH = "base64" .. }` after `blobs`.
    fn blob_section(&mut self) -> PResult<()> {
        self.expect_punct('{', "after 'blobs'")?;
        let mut blobs = Blobs::new();
        while !self.eat_punct('}')? {
            let (at, t) = self.next()?;
            let hash = match &t {
                Tok::Num(s) | Tok::Ident(s)
                    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    u64::from_str_radix(s, 16).expect("16 hex digits")
                }
                t => {
                    return self.err(
                        at,
                        format!(
                            "expected a blob name (16 hex digits), found {}",
                            t.describe()
                        ),
                    );
                }
            };
            self.expect_punct('=', "after the blob name")?;
            let sat = self.lx.offset();
            let text = self.string("the blob's base64 bytes")?;
            let bytes = BASE64
                .decode(text.as_bytes())
                .map_err(|e| self.lx.error(sat, format!("bad base64 in blob: {e}")))?;
            if let Some(prev) = blobs.get(&hash)
                && *prev != bytes
            {
                return self.err(
                    at,
                    format!("blob {hash:016x} is given twice with different bytes"),
                );
            }
            blobs.insert(hash, bytes);
        }
        self.found_blobs = Some(blobs);
        Ok(())
    }

    // ---- observers ---------------------------------------------------------------------------------

    /// `{bins=2048 ema=0.01 samples=10 min_max=[a, b] nonfinite=0 abs_hist=hist(..) hist=hist(..)}`.
    fn observer(&mut self) -> PResult<ObserverState> {
        let mut st = ObserverState::default();
        if !self.eat_punct('{')? {
            return Ok(st);
        }
        while !self.eat_punct('}')? {
            let (kat, k) = self.name("an observer field")?;
            self.expect_punct('=', "after the observer field")?;
            match k.as_str() {
                "bins" => {
                    let (at, n) = self.num()?;
                    let b = self.conv(at, n.to_u64())?;
                    st.bins = self.conv(
                        at,
                        usize::try_from(b).map_err(|_| "too many bins".to_string()),
                    )?;
                }
                "ema" => st.ema = Some(self.f32()?),
                "samples" => st.samples = self.u64()?,
                "nonfinite" => st.nonfinite = self.u64()?,
                "zeros" => st.zeros = self.u64()?,
                "ema_sums" => st.ema_sums = Some(self.ema_sums()?),
                "min_max" => {
                    self.expect_punct('[', "before the observed min")?;
                    let lo = self.f32()?;
                    self.expect_punct(',', "between the observed min and max")?;
                    let hi = self.f32()?;
                    self.expect_punct(']', "after the observed max")?;
                    st.min_max = Some((lo, hi));
                }
                "abs_hist" => st.abs_hist = Some(self.histogram()?),
                "hist" => st.hist = Some(self.histogram()?),
                _ => {
                    return self.err(
                        kat,
                        format!("unknown observer field '{k}' (known: bins ema samples min_max nonfinite zeros ema_sums abs_hist hist)"),
                    );
                }
            }
        }
        Ok(st)
    }

    /// `ema(samples=N, min_sum=[6 limbs], max_sum=[6 limbs])`: exact sums for the moving average.
    fn ema_sums(&mut self) -> PResult<crate::observer::EmaSums> {
        self.expect_ident(
            "ema",
            "(moving-average sums: ema(samples=.., min_sum=[..], max_sum=[..]))",
        )?;
        self.expect_punct('(', "after 'ema'")?;
        let mut e = crate::observer::EmaSums::default();
        self.comma_list(')', "a moving-average field", |p| {
            let (kat, k) = p.name("samples, min_sum or max_sum")?;
            p.expect_punct('=', &format!("after {k}"))?;
            let sum = match k.as_str() {
                "samples" => {
                    e.samples = p.u64()?;
                    return Ok(());
                }
                "min_sum" => &mut e.min_sum,
                "max_sum" => &mut e.max_sum,
                _ => return p.err(kat, format!("unknown moving-average field '{k}'")),
            };
            let lat = p.lx.offset();
            p.expect_punct('[', "before the sum's limbs")?;
            let mut limbs = Vec::new();
            p.comma_list(']', "a limb", |p| {
                limbs.push(p.u64()?);
                Ok(())
            })?;
            if limbs.len() != 6 {
                return p.err(
                    lat,
                    format!("an exact sum has 6 limbs, got {}", limbs.len()),
                );
            }
            sum.limbs.copy_from_slice(&limbs);
            Ok(())
        })?;
        Ok(e)
    }

    /// `hist(lo=0.0, hi=6.5, counts=[..] or counts=i64[N] ..)`.
    fn histogram(&mut self) -> PResult<Histogram> {
        let at = self.expect_ident("hist", "(a histogram: hist(lo=.., hi=.., counts=..))")?;
        self.expect_punct('(', "after 'hist'")?;
        let (mut lo, mut hi, mut counts) = (None, None, None);
        self.comma_list(')', "a histogram field", |p| {
            let (kat, k) = p.name("lo, hi or counts")?;
            p.expect_punct('=', &format!("after {k}"))?;
            match k.as_str() {
                "lo" => lo = Some(p.f32()?),
                "hi" => hi = Some(p.f32()?),
                "counts" => {
                    let cat = p.lx.offset();
                    if p.eat_punct('[')? {
                        let mut v = Vec::new();
                        p.comma_list(']', "a count", |p| {
                            v.push(p.u64()?);
                            Ok(())
                        })?;
                        counts = Some(v);
                    } else {
                        let ((d, shape), t) = p.tensor_lit()?;
                        if d != DType::I64 || shape.len() != 1 {
                            return p.err(cat, "histogram counts are [..] or an i64[N] tensor");
                        }
                        // Counts travel as the bits of i64 (there is no u64 element type).
                        counts = Some(
                            t.to_i64_vec()
                                .unwrap_or_default()
                                .into_iter()
                                .map(|c| c as u64)
                                .collect(),
                        );
                    }
                }
                _ => {
                    return p.err(
                        kat,
                        format!("unknown histogram field '{k}' (expected lo, hi, counts)"),
                    );
                }
            }
            Ok(())
        })?;
        match (lo, hi, counts) {
            (Some(lo), Some(hi), Some(counts)) => Ok(Histogram { lo, hi, counts }),
            _ => self.err(at, "a histogram needs lo, hi and counts"),
        }
    }
}
