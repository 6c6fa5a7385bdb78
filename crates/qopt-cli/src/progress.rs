//! Progress of long passes (calibration) on standard error: an indicatif bar on a terminal,
//! and on anything else (a log file, CI) plain lines at every tenth of the work, so logs stay
//! short and readable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

pub struct CliProgress {
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bar: Option<ProgressBar>,
    task: String,
    total: Option<u64>,
    done: u64,
    /// Plain mode: the next count at which a line is printed.
    next_line: u64,
    start: Option<Instant>,
}

impl CliProgress {
    pub fn new() -> CliProgress {
        CliProgress {
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }
}

fn step(total: u64) -> u64 {
    total.div_ceil(10).max(1)
}

impl qopt::pass::Progress for CliProgress {
    fn begin(&self, task: &str, total: Option<u64>) {
        let mut s = self.state.lock().expect("progress lock");
        *s = State {
            task: task.to_string(),
            total,
            start: Some(Instant::now()),
            ..State::default()
        };
        if self.terminal {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {elapsed} elapsed, eta {eta})",
            )
            .map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar.set_message(task.to_string());
            s.bar = Some(bar);
        } else {
            eprintln!(
                "{task}: {}",
                total.map_or("started".to_string(), |n| format!("0/{n}"))
            );
            s.next_line = total.map_or(u64::MAX, step);
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.state.lock().expect("progress lock");
        s.done += n;
        if let Some(bar) = &s.bar {
            bar.inc(n);
        } else if s.done >= s.next_line
            && let Some(total) = s.total
        {
            if s.done < total {
                eprintln!("{}: {}/{total}", s.task, s.done);
            }
            s.next_line = s.done + step(total);
        }
    }

    fn end(&self) {
        let mut s = self.state.lock().expect("progress lock");
        let secs = s.start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}: {} done in {secs:.1} s", s.task, s.done);
    }
}

/// The same reporter for code that reports through qopt-calib's `Progress` (`qopt verify`),
/// with `-q` silencing everything but warnings.
pub struct CalibProgress {
    pub inner: Option<CliProgress>,
}

impl qopt::calib::progress::Progress for CalibProgress {
    fn start(&self, what: &str, total: Option<u64>) {
        if let Some(p) = &self.inner {
            qopt::pass::Progress::begin(p, what, total);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(p) = &self.inner {
            qopt::pass::Progress::advance(p, n);
        }
    }
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
    fn finish(&self) {
        if let Some(p) = &self.inner {
            qopt::pass::Progress::end(p);
        }
    }
}
