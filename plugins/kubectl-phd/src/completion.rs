//! `kubectl phd completion <shell>`

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionArgs};

pub fn print(args: &CompletionArgs) {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "kubectl-phd",
        &mut std::io::stdout(),
    );
}
