//! The CLI's one error type. Each variant maps to an exit code, so scripts can tell a
//! bad command line from a bad model from a failed pass.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad command line or pipeline.
    #[error("{0}")]
    Usage(String),
    /// An input that cannot be read or parsed.
    #[error("{0}")]
    Input(String),
    /// A pass failed, or left an invalid graph.
    #[error("{0}")]
    Pass(String),
    /// An output that cannot be written.
    #[error("{0}")]
    Output(String),
    #[error("refusing to overwrite the input {0}")]
    Overwrite(PathBuf),
}

impl CliError {
    /// 2: usage (as clap), 3: input, 4: pass, 5: output.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Overwrite(_) => 2,
            CliError::Input(_) => 3,
            CliError::Pass(_) => 4,
            CliError::Output(_) => 5,
        }
    }
}

impl From<qopt::Error> for CliError {
    fn from(e: qopt::Error) -> CliError {
        use qopt::Error as E;
        match e {
            E::Read { .. } | E::Parse(_) => CliError::Input(e.to_string()),
            E::Write { .. } => CliError::Output(e.to_string()),
            E::Pipeline(_) | E::Usage(_) => CliError::Usage(e.to_string()),
            E::Run(_) => CliError::Pass(e.to_string()),
        }
    }
}
