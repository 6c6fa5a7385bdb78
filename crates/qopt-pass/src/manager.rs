//! The pass manager: runs a resolved pipeline on a graph, with LLVM-style
//! instrumentation (print before/after, stop after, per-pass timing) and
//! `qopt_ir::verify` after every pass so a broken graph is blamed on its pass.

use crate::pipeline::{PassSpec, PipelineSpec};
use crate::registry::Registry;
use crate::{Changed, Pass, PassContext, PassError};
use qopt_ir::{Graph, VerifyError};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct Instrumentation {
    /// Print the graph before each pass with one of these names (pass or alias).
    pub print_before: Vec<String>,
    /// Print the graph after each pass with one of these names (pass or alias).
    pub print_after: Vec<String>,
    pub print_before_all: bool,
    pub print_after_all: bool,
    /// Stop the pipeline after this pass (or the last pass of this alias).
    pub stop_after: Option<String>,
    /// Collect per-pass wall time (see [`PassManager::timing_report`]).
    pub time_passes: bool,
    /// Run `verify()` after every pass.
    pub verify_each: bool,
}

impl Instrumentation {
    /// Every pass or alias name the instrumentation mentions, for validation by the caller.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.print_before
            .iter()
            .chain(&self.print_after)
            .chain(&self.stop_after)
            .map(String::as_str)
    }
}

#[derive(Clone, Debug)]
pub struct PassTiming {
    pub name: String,
    pub wall: Duration,
    pub changed: Changed,
}

/// A pass failure, with the pass it happened in.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("pass '{pass}' failed: {err}")]
    Pass { pass: String, err: PassError },
    #[error("pass '{pass}' left an invalid graph: {err}")]
    Verify { pass: String, err: VerifyError },
    #[error("could not write the IR dump: {0}")]
    Dump(std::io::Error),
}

type Printer = Box<dyn Fn(&Graph) -> String>;

pub struct PassManager {
    passes: Vec<(PassSpec, Box<dyn Pass>)>,
    instr: Instrumentation,
    printer: Printer,
    sink: Box<dyn Write>,
    timings: Vec<PassTiming>,
}

impl PassManager {
    /// A manager for `spec`, dumping with `printer` to standard error.
    pub fn new(
        reg: &Registry,
        spec: &PipelineSpec,
        instr: Instrumentation,
    ) -> Result<PassManager, String> {
        let passes = spec.instantiate(reg)?;
        Ok(PassManager {
            passes: spec.passes.iter().cloned().zip(passes).collect(),
            instr,
            printer: Box::new(|g: &Graph| format!("{g:?}")),
            sink: Box::new(std::io::stderr()),
            timings: Vec::new(),
        })
    }

    /// How graphs are printed in dumps (the text format, normally).
    pub fn with_printer(mut self, printer: impl Fn(&Graph) -> String + 'static) -> Self {
        self.printer = Box::new(printer);
        self
    }

    /// Where dumps go (standard error by default).
    pub fn with_sink(mut self, sink: impl Write + 'static) -> Self {
        self.sink = Box::new(sink);
        self
    }

    fn matches(list: &[String], spec: &PassSpec, is_last_of_alias: bool) -> bool {
        list.iter()
            .any(|n| n == spec.name || (is_last_of_alias && spec.alias.is_some_and(|a| a == n)))
    }

    fn dump(&mut self, when: &str, spec: &PassSpec, g: &Graph) -> Result<(), RunError> {
        let text = (self.printer)(g);
        writeln!(
            self.sink,
            "# *** IR Dump {when} {}{} ***",
            spec.name, spec.options
        )
        .and_then(|_| writeln!(self.sink, "{}", text.trim_end()))
        .map_err(RunError::Dump)
    }

    /// Run the pipeline. Returns whether anything changed.
    pub fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, RunError> {
        let mut changed = Changed::No;
        let n = self.passes.len();
        for i in 0..n {
            let spec = self.passes[i].0.clone();
            let first_of_alias =
                spec.alias.is_some() && (i == 0 || self.passes[i - 1].0.alias != spec.alias);
            let last_of_alias =
                spec.alias.is_some() && (i + 1 == n || self.passes[i + 1].0.alias != spec.alias);
            if self.instr.print_before_all
                || Self::matches(&self.instr.print_before, &spec, first_of_alias)
            {
                self.dump("Before", &spec, g)?;
            }
            let start = Instant::now();
            let c = self.passes[i].1.run(g, cx).map_err(|err| RunError::Pass {
                pass: spec.name.to_string(),
                err,
            })?;
            let wall = start.elapsed();
            changed = changed.any(c);
            if self.instr.time_passes {
                self.timings.push(PassTiming {
                    name: format!("{}{}", spec.name, spec.options),
                    wall,
                    changed: c,
                });
            }
            if self.instr.verify_each {
                qopt_ir::verify(g).map_err(|err| RunError::Verify {
                    pass: spec.name.to_string(),
                    err,
                })?;
            }
            if self.instr.print_after_all
                || Self::matches(&self.instr.print_after, &spec, last_of_alias)
            {
                self.dump("After", &spec, g)?;
            }
            if let Some(stop) = &self.instr.stop_after
                && (stop == spec.name || (last_of_alias && spec.alias == Some(stop.as_str())))
            {
                break;
            }
        }
        Ok(changed)
    }

    pub fn timings(&self) -> &[PassTiming] {
        &self.timings
    }

    /// The `--time-passes` table.
    pub fn timing_report(&self) -> String {
        let total: Duration = self.timings.iter().map(|t| t.wall).sum();
        let mut s = String::new();
        s.push_str("===-------------------------------------------------------===\n");
        s.push_str("                 Pass execution timing report\n");
        s.push_str("===-------------------------------------------------------===\n");
        s.push_str(&format!(
            "  Total wall time: {:.4} s\n\n",
            total.as_secs_f64()
        ));
        s.push_str("   Wall (s)      %   Changed  Pass\n");
        for t in &self.timings {
            let pct = if total.is_zero() {
                0.0
            } else {
                100.0 * t.wall.as_secs_f64() / total.as_secs_f64()
            };
            s.push_str(&format!(
                "  {:9.4}  {:5.1}   {:7}  {}\n",
                t.wall.as_secs_f64(),
                pct,
                if t.changed == Changed::Yes {
                    "yes"
                } else {
                    "no"
                },
                t.name
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse_and_resolve;
    use crate::registry::{AliasInfo, PassInfo};
    use qopt_ir::op::Relu;
    use qopt_ir::{DType, Shape, TypeInfo};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Adds a Relu after the first output.
    struct AddRelu;
    impl Pass for AddRelu {
        fn name(&self) -> &str {
            "add-relu"
        }
        fn run(&mut self, g: &mut Graph, _: &mut PassContext) -> Result<Changed, PassError> {
            let out = g.outputs()[0];
            let name = g.fresh_name("r");
            let r = g.add_simple("", Relu {}, &[out], name);
            g.set_outputs(vec![r]);
            Ok(Changed::Yes)
        }
    }

    /// Breaks the graph: duplicates a value name.
    struct Break;
    impl Pass for Break {
        fn name(&self) -> &str {
            "break"
        }
        fn run(&mut self, g: &mut Graph, _: &mut PassContext) -> Result<Changed, PassError> {
            let out = g.outputs()[0];
            g.add_simple("", Relu {}, &[out], "x");
            Ok(Changed::Yes)
        }
    }

    struct Fail;
    impl Pass for Fail {
        fn name(&self) -> &str {
            "fail"
        }
        fn run(&mut self, _: &mut Graph, _: &mut PassContext) -> Result<Changed, PassError> {
            Err(PassError::msg("no calibrated ranges; run calib first"))
        }
    }

    fn reg() -> Registry {
        let mut r = Registry::new();
        r.register(PassInfo {
            name: "add-relu",
            summary: "",
            options: &[],
            create: |_| Ok(Box::new(AddRelu)),
        });
        r.register(PassInfo {
            name: "break",
            summary: "",
            options: &[],
            create: |_| Ok(Box::new(Break)),
        });
        r.register(PassInfo {
            name: "fail",
            summary: "",
            options: &[],
            create: |_| Ok(Box::new(Fail)),
        });
        r.register_alias(AliasInfo {
            name: "twice",
            summary: "",
            expansion: &["add-relu", "add-relu"],
        });
        r
    }

    fn graph() -> Graph {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[2])));
        g.set_outputs(vec![x]);
        g
    }

    #[derive(Clone, Default)]
    struct Buf(Rc<RefCell<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(pipeline: &str, instr: Instrumentation) -> (Result<Changed, RunError>, Graph, String) {
        let reg = reg();
        let spec = parse_and_resolve(pipeline, &reg).unwrap();
        let buf = Buf::default();
        let mut pm = PassManager::new(&reg, &spec, instr)
            .unwrap()
            .with_printer(|g: &Graph| format!("nodes={}", g.node_count()))
            .with_sink(buf.clone());
        let mut g = graph();
        let r = pm.run(&mut g, &mut PassContext::new());
        let out = String::from_utf8(buf.0.borrow().clone()).unwrap();
        (r, g, out)
    }

    #[test]
    fn print_after_alias_prints_once_after_its_last_pass() {
        let instr = Instrumentation {
            print_after: vec!["twice".into()],
            print_before: vec!["twice".into()],
            ..Default::default()
        };
        let (r, g, out) = run("twice,add-relu", instr);
        assert_eq!(r.unwrap(), Changed::Yes);
        assert_eq!(g.node_count(), 4);
        assert_eq!(
            out,
            "# *** IR Dump Before add-relu ***\nnodes=1\n# *** IR Dump After add-relu ***\nnodes=3\n"
        );
    }

    #[test]
    fn stop_after_and_print_after_all() {
        let instr = Instrumentation {
            print_after_all: true,
            stop_after: Some("twice".into()),
            ..Default::default()
        };
        let (_, g, out) = run("twice,add-relu", instr);
        assert_eq!(g.node_count(), 3);
        assert_eq!(out.matches("IR Dump After").count(), 2);
    }

    #[test]
    fn verify_blames_the_pass() {
        let instr = Instrumentation {
            verify_each: true,
            ..Default::default()
        };
        let (r, ..) = run("add-relu,break", instr);
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with("pass 'break' left an invalid graph"), "{e}");
    }

    #[test]
    fn pass_errors_name_the_pass_and_timing_lists_passes() {
        let (r, ..) = run("add-relu,fail", Instrumentation::default());
        assert_eq!(
            r.unwrap_err().to_string(),
            "pass 'fail' failed: no calibrated ranges; run calib first"
        );
        let reg = reg();
        let spec = parse_and_resolve("twice", &reg).unwrap();
        let mut pm = PassManager::new(
            &reg,
            &spec,
            Instrumentation {
                time_passes: true,
                ..Default::default()
            },
        )
        .unwrap();
        pm.run(&mut graph(), &mut PassContext::new()).unwrap();
        let rep = pm.timing_report();
        assert_eq!(rep.matches("add-relu").count(), 2, "{rep}");
    }
}
