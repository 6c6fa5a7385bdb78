//! `dce`: dead code elimination.
//!
//! Removes every node from which no graph output is reachable. Graph inputs stay
//! (they are the model's interface) and so do calibration observers, which exist
//! for their side effect on statistics.

use qopt_ir::{Graph, Op};
use qopt_pass::{Changed, Pass, PassContext, PassError};

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &str {
        "dce"
    }

    fn run(&mut self, g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
        Ok(Changed::from_bool(eliminate_dead_code(g) > 0))
    }
}

/// Remove dead nodes; returns how many were removed.
pub fn eliminate_dead_code(g: &mut Graph) -> usize {
    // Observers are roots too: keep them and what feeds them.
    let mut live = g.live_nodes();
    let mut stack: Vec<_> = g
        .node_ids()
        .into_iter()
        .filter(|&n| matches!(g.node(n).op, Op::Observer(_)))
        .collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) || matches!(g.node(n).op, Op::Observer(_)) {
            stack.extend(
                g.inputs(n)
                    .into_iter()
                    .flatten()
                    .map(|v| v.node)
                    .filter(|p| !live.contains(p)),
            );
        }
    }
    let dead: Vec<_> = g
        .node_ids()
        .into_iter()
        .filter(|n| !live.contains(n))
        .collect();
    for &n in &dead {
        g.remove_node(n);
    }
    dead.len()
}
