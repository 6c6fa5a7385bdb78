//! One module per command.

mod inspect;
mod opt;
mod quantize;
mod run;
mod verify;

use crate::app::{Cli, Command};
use crate::error::CliError;

pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Some(Command::Inspect { model }) => inspect::run(&model),
        Some(Command::Quantize(args)) => quantize::run(*args),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        None => opt::run(cli.opt),
    }
}
