//! The `.qir` text format (DESIGN.md §3): a printer and a parser with an exact round trip,
//! `print(parse(print(g))) == print(g)`, in the spirit of MLIR's `.mlir` and Cranelift's
//! `.clif`. Tests and snapshots are written in it by hand, so it reads like code:
//!
//! ```text
//! # Comments run from `#` to the end of the line.
//! graph mnist(%input: f32[N,1,28,28]) -> (%logits) {
//!   opset {"": 13, "com.microsoft": 1}
//!   meta {ir_version=7 producer_name="pytorch" producer_version="2.1.0"}
//!   props {"key"="value"}
//!   %shape = const i64[2] [1, -1]
//!   %half = const f32[] 0.5
//!   %bias = const f32[64] splat(0.0)
//!   %w0 = const f32[16,1,3,3] random(seed=1)
//!   %w1 = const f32[32,16,3,3] {min=-0.52 max=0.71 mean=0.013 std=0.2} #8f3a2b4c5d6e7f80
//!   %"/conv1/Conv_output_0" = Conv(%input, %w0, %b0) {pads=[1,1,1,1] strides=[2,2]} : f32[N,16,14,14] @range=[0.0, 6.31] loc("/conv1/Conv")
//!   %a, %b = Split(%x) {axis=1} : f32[1,2], f32[1,2] @q=i8(s=0.1, zp=0)
//!   %y = Resize(%x, _, %scales) {mode="linear"}
//!   %q = com.microsoft::QLinearAdd(%a, %as, %az, %b, %bs, %bz, %cs, %cz)
//!   %o = Observer(%y) {bins=2048 samples=0}
//! }
//! blobs {
//!   8f3a2b4c5d6e7f80 = "<base64 of the little-endian bytes>"
//! }
//! ```
//!
//! # Grammar
//!
//! ```text
//! file      := graph blobs?                        (comments and whitespace anywhere)
//! graph     := 'graph' NAME '(' (input ',')* ')' '->' '(' (VALUE ',')* ')' '{' stmt* '}'
//! input     := VALUE ':' entry trailer?
//! stmt      := 'opset' '{' (STRING ':' INT ',')* '}'          -- opset imports, in order
//!            | 'meta' '{' (KEY '=' (INT | STRING))* '}'       -- ir_version producer_name
//!                                                                producer_version domain
//!                                                                model_version doc graph_doc
//!            | 'props' '{' (STRING '=' STRING)* '}'           -- metadata_props, in order
//!            | VALUE '=' 'const' tensor annot* doc? trailer?
//!            | outs '=' opname '(' (VALUE | '_') ',' ... ')' attrs? (':' entry ',' ...)? trailer?
//! outs      := VALUE (',' VALUE)* | '(' ')'                   -- '()' for no outputs
//! opname    := NAME | NAME '::' NAME                          -- domain::OpType
//! entry     := type annot* doc?                               -- one per output
//! trailer   := 'loc' '(' STRING ')' doc?                      -- node name, then node doc
//! doc       := 'doc' '(' STRING ')'
//! type      := DTYPE '[' (dim ',')* ']' | DTYPE '[' '*' ']' | '?' ('[' ... ']')?
//! dim       := INT | NAME | '?'
//! tensor    := type payload                                   -- type fully known
//! payload   := scalar | '[' (elem ',')* ']' | 'splat' '(' elem ')'
//!            | 'random' '(' 'seed' '=' INT (',' 'lo' '=' NUM)? (',' 'hi' '=' NUM)? ')'
//!            | ('{' (KEY '=' NUM)* '}')? HASH                 -- statistics are ignored
//! annot     := '@range' '=' '[' NUM ',' NUM ']'
//!            | '@q' '=' DTYPE '(' ('axis' '=' INT ',')? 's' '=' list (',' 'zp' '=' list)? ')'
//!            | '@' NAME '=' attr                              -- a note
//! list      := NUM | '[' (NUM ',')* ']' | tensor              -- 1-D
//! attrs     := '{' (NAME '=' attr)* '}'
//! attr      := INT | FLOAT | STRING | '[' ... ']' | 'floats[]' | 'strings[]'
//!            | 'tensor' '<' tensor '>' | 'raw' '<' (BASE64 | HASH) '>'
//! blobs     := 'blobs' '{' (HEX16 '=' STRING)* '}'            -- base64 of the bytes
//! ```
//!
//! Lexical rules:
//! - `NAME` is an identifier `[A-Za-z_.][A-Za-z0-9_.]*` or a quoted string; `VALUE` is
//!   `%` and `[A-Za-z0-9_.]+` or `%"any string"`, so ONNX names like
//!   `%"/backbone/conv1/Conv_output_0"` stay findable in a dump.
//! - Strings are one line, with `\" \\ \n \t \r \u{..}` escapes.
//! - `#` starts a comment except where a tensor's payload stands: there `#` and 16 hex
//!   digits is the content hash ([`Tensor::content_hash`](crate::Tensor::content_hash)).
//! - Floats always have a `.` or an `e`, or are `inf`, `-inf`, `nan`, or `nan(0x<bits>)` for
//!   other NaNs; they are printed with the shortest digits that read back to the same bits.
//!   An int literal is accepted wherever a float is expected.
//!
//! Meaning:
//! - Constants print before op nodes, in order of first use along
//!   [`Graph::topo_order`](crate::Graph::topo_order) (unused ones last), then the op nodes in
//!   that order. Values must be defined before they are used.
//! - Constants with at most 16 elements print inline (a 0-d one as a scalar); larger ones as
//!   `splat(v)` when every element has the same bits, otherwise as statistics and a content
//!   hash. [`PrintOptions::blobs`] appends their exact bytes (deduplicated by hash); dumps
//!   leave them out, and parsing a hash without its blob is an error. The same rule holds
//!   for tensor attributes, per-channel quantization lists and observer histograms, and for
//!   `raw<..>` attributes longer than 64 bytes (hashed with FNV-1a over `raw` + bytes).
//! - `random(seed=S, lo=A, hi=B)` fills a constant from SplitMix64 (see [`random`]).
//! - A type is `?` when nothing is known; the `: types` part is left out when every output
//!   is unknown and unannotated. An absent optional input is `_`.
//! - Op attributes print in [`Op::attrs`](crate::Op::attrs) order (non-default values only)
//!   and parse through [`Op::from_parts`](crate::Op::from_parts): an op outside the table
//!   becomes `Custom`. `Observer` prints its state as its attributes; graph inputs live in
//!   the signature. A custom op of the default domain named `const` or `Observer` prints
//!   as `""::const` so it cannot be mistaken for those forms.
//! - Notes named `range` or `q`, and names that are not identifiers, are quoted: `@"q"=1`.
//! - Empty list attributes are ints (`[]`); empty float and string lists print as
//!   `floats[]` and `strings[]`.
//! - `loc("..")` is the ONNX node name (for inputs and constants, printed only when it
//!   differs from the value name); a node's `doc` follows its `loc`, a value's follows its
//!   type.

mod error;
mod lexer;
mod num;
mod parse;
mod print;
pub mod random;

pub use error::ParseError;
pub use parse::parse;
pub use print::{PrintOptions, print};

use crate::tensor::Fnv64;

/// Constants, lists and histograms with at most this many elements print inline.
pub const INLINE_MAX: usize = 16;

/// `raw<..>` attributes up to this many bytes print inline as base64.
const RAW_INLINE_MAX: usize = 64;

/// Annotation names with their own syntax; notes with these names print quoted.
const RESERVED_NOTES: &[&str] = &["range", "q"];

/// Graph-level forms that a default-domain custom op must not be mistaken for.
const RESERVED_OPS: &[&str] = &["const", "Observer"];

/// The blob name of a `raw<..>` attribute's bytes.
fn raw_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(b"raw");
    h.write(bytes);
    h.finish()
}

/// True when a value name prints without quotes after `%`.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Quote a string for the text format: `"..."` with `\"`, `\\`, `\n`, `\t` and `\u{..}` escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
