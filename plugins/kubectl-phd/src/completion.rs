//! Shell completion: `kubectl phd completion <shell>` scripts, and kubectl's
//! plugin completion protocol (kubectl 1.26+ runs `kubectl_complete-phd
//! __complete WORDS...` and reads candidates, one per line, then `:DIRECTIVE`).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionArgs};

/// Cobra's ShellCompDirectiveNoFileComp: no file names as a fallback.
const NO_FILE_COMPLETION: u32 = 4;

pub fn print(args: &CompletionArgs) {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "kubectl-phd",
        &mut std::io::stdout(),
    );
}

/// Answers kubectl's completion request when invoked as
/// `kubectl_complete-phd` or with `__complete`; `None` otherwise.
pub fn kubectl_plugin_completion(args: &[OsString]) -> Option<ExitCode> {
    let as_completer = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .is_some_and(|name| name == "kubectl_complete-phd");
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let words = match words.split_first() {
        Some((first, rest)) if first == "__complete" => rest.to_vec(),
        _ if as_completer => words,
        _ => return None,
    };
    for candidate in candidates(&words) {
        println!("{candidate}");
    }
    println!(":{NO_FILE_COMPLETION}");
    Some(ExitCode::SUCCESS)
}

/// Completions of the last word, after the words before it.
pub fn candidates(words: &[String]) -> Vec<String> {
    let (current, before) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };
    let root = Cli::command();
    let mut command = &root;
    let mut skip_value = false;
    for word in before {
        if skip_value {
            skip_value = false;
            continue;
        }
        if let Some(flag) = word.strip_prefix("--") {
            let takes_value = command
                .get_arguments()
                .chain(root.get_arguments())
                .find(|arg| arg.get_long() == Some(flag))
                .is_some_and(|arg| arg.get_action().takes_values());
            skip_value = takes_value && !flag.contains('=');
            continue;
        }
        if word.starts_with('-') {
            continue;
        }
        if let Some(sub) = command.find_subcommand(word) {
            command = sub;
        }
    }
    if current.starts_with('-') {
        let mut flags: Vec<String> = command
            .get_arguments()
            .chain(root.get_arguments().filter(|arg| arg.is_global_set()))
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .filter(|flag| flag.starts_with(current))
            .collect();
        flags.sort();
        flags.dedup();
        return flags;
    }
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name().starts_with(current))
        .map(|sub| match sub.get_about() {
            Some(about) => format!("{}\t{about}", sub.get_name()),
            None => sub.get_name().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(words: &[&str]) -> Vec<String> {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        candidates(&words)
            .into_iter()
            .map(|c| c.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn subcommands_then_verbs_then_flags() {
        let top = names(&[""]);
        for noun in [
            "argo",
            "instance",
            "user",
            "doctor",
            "version",
            "completion",
        ] {
            assert!(top.contains(&noun.to_owned()), "{noun} in {top:?}");
        }
        assert_eq!(names(&["in"]), ["instance", "infra"]);
        assert_eq!(names(&["ins"]), ["instance"]);
        assert_eq!(names(&["user", ""]), ["create", "update", "delete", "list"]);
        assert_eq!(names(&["--context", "prod", "instance", "cr"]), ["create"]);
        let flags = names(&["instance", "create", "demo", "--no"]);
        assert_eq!(flags, ["--no-color", "--no-wait"]);
    }
}
