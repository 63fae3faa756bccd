//! `klamm completion bash|zsh|fish`: shell completion scripts generated from the clap tree.

use clap::{Command, ValueEnum};
use clap_complete::Shell;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell` to stdout.
pub fn run(shell: CompletionShell, mut command: Command) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "klamm", &mut std::io::stdout());
}
