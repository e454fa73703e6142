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
/// Cobra's ShellCompDirectiveDefault: the shell completes file names.
const FILE_COMPLETION: u32 = 0;

/// Bash: asks `kubectl-phd __complete` for the words up to the cursor, as
/// kubectl does for plugins, so every word is completed by [`candidates`],
/// values from the cluster included. (clap_complete's static bash script
/// completes nothing past the first word for a binary whose name has a
/// hyphen: clap-rs/clap#6421.)
const BASH: &str = r#"# bash completion for kubectl-phd: source <(kubectl-phd completion bash)
_kubectl_phd() {
    local IFS=$'\n' line directive=4
    local -a candidates=()
    while read -r line; do
        case "$line" in
            :*) directive="${line#:}" ;;
            *) candidates+=("${line%%$'\t'*}") ;;
        esac
    done < <(kubectl-phd __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    if [[ ${#candidates[@]} -eq 0 && "$directive" == 0 ]]; then
        # A flag that takes a file.
        COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
    else
        COMPREPLY=("${candidates[@]}")
    fi
}
complete -F _kubectl_phd kubectl-phd
"#;

/// Zsh: the same protocol, with the candidates' descriptions.
const ZSH: &str = r#"#compdef kubectl-phd
# zsh completion for kubectl-phd: kubectl-phd completion zsh > "${fpath[1]}/_kubectl-phd"
_kubectl_phd() {
    local line directive=4
    local -a names descriptions
    for line in "${(@f)$(kubectl-phd __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}"; do
        [[ $line == :* ]] && directive=${line#:}
        [[ $line == :* || -z $line ]] && continue
        names+=("${line%%$'\t'*}")
        if [[ $line == *$'\t'* ]]; then
            descriptions+=("${line%%$'\t'*} -- ${line#*$'\t'}")
        else
            descriptions+=("${line}")
        fi
    done
    if (( ${#names} == 0 )) && [[ $directive == 0 ]]; then
        _files
    else
        compadd -l -d descriptions -a names
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _kubectl_phd "$@"
else
    compdef _kubectl_phd kubectl-phd
fi
"#;

/// Fish: the same protocol; fish reads `candidate<TAB>description` itself.
const FISH: &str = r#"# fish completion for kubectl-phd: kubectl-phd completion fish > ~/.config/fish/completions/kubectl-phd.fish
function __kubectl_phd_complete
    set -l out (kubectl-phd __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)
    set -l candidates (string match -v -r '^:' -- $out)
    if test (count $candidates) -eq 0; and contains -- ':0' $out
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $candidates
    end
end
complete -c kubectl-phd -f -a '(__kubectl_phd_complete)'
"#;

/// Prints the completion script of `args.shell`: bash, zsh and fish ask the
/// binary itself (every word, names from the cluster); PowerShell and Elvish
/// get clap_complete's static script.
pub fn print(args: &CompletionArgs) {
    use clap_complete::Shell;
    use std::io::Write as _;
    let script = match args.shell {
        Shell::Bash => BASH,
        Shell::Zsh => ZSH,
        Shell::Fish => FISH,
        shell => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "kubectl-phd", &mut std::io::stdout());
            return;
        }
    };
    // A closed pipe (`| head -1`) ends quietly (see main.rs).
    let _ = std::io::stdout().write_all(script.as_bytes());
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
    let (candidates, directive) = complete(&words);
    for candidate in candidates {
        println!("{candidate}");
    }
    println!(":{directive}");
    Some(ExitCode::SUCCESS)
}

/// Completions of the last word, after the words before it.
#[cfg(test)]
pub fn candidates(words: &[String]) -> Vec<String> {
    complete(words).0
}

/// The argument of `command` (or a global one of `root`) a flag word names:
/// `--output`, `-o`.
fn flag_arg<'a>(
    command: &'a clap::Command,
    root: &'a clap::Command,
    flag: &str,
) -> Option<&'a clap::Arg> {
    let matches = |arg: &&clap::Arg| match flag.strip_prefix("--") {
        Some(long) => arg.get_long() == Some(long),
        None => {
            let mut chars = flag.trim_start_matches('-').chars();
            matches!((chars.next(), chars.next()), (Some(short), None) if arg.get_short() == Some(short))
        }
    };
    command
        .get_arguments()
        .chain(root.get_arguments())
        .find(matches)
}

/// The values of flag `arg` starting with `prefix` (each after `lead`, for
/// `--flag=value`), and the directive: file names for a flag that takes a
/// path, none otherwise.
fn flag_values(arg: &clap::Arg, prefix: &str, lead: &str) -> (Vec<String>, u32) {
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|value| value.get_name().to_owned())
        .filter(|name| name.starts_with(prefix))
        .map(|name| format!("{lead}{name}"))
        .collect();
    let takes_path = matches!(
        arg.get_value_hint(),
        clap::ValueHint::FilePath | clap::ValueHint::AnyPath | clap::ValueHint::DirPath
    ) || arg.get_value_names().is_some_and(|names| {
        names
            .iter()
            .any(|n| n.contains("FILE") || n.contains("PATH"))
    });
    let directive = if values.is_empty() && takes_path {
        FILE_COMPLETION
    } else {
        NO_FILE_COMPLETION
    };
    (values, directive)
}

/// Completions of the last word, after the words before it, and the cobra
/// directive that goes with them.
pub fn complete(words: &[String]) -> (Vec<String>, u32) {
    let (current, before) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };
    let root = Cli::command();
    let mut command = &root;
    let mut skip_value = false;
    let mut path: Vec<&str> = Vec::new();
    let mut positionals = 0;
    for word in before {
        if skip_value {
            skip_value = false;
            continue;
        }
        if word.starts_with('-') {
            // `--flag value` and `-o value`; `--flag=value` and `-ovalue` carry theirs.
            let takes_value =
                flag_arg(command, &root, word).is_some_and(|arg| arg.get_action().takes_values());
            skip_value = takes_value;
            continue;
        }
        match command.find_subcommand(word) {
            Some(sub) => {
                command = sub;
                path.push(sub.get_name());
            }
            None => positionals += 1,
        }
    }
    // The value of a flag: its possible values (roles, providers, shells,
    // formats), or file names for a path.
    if skip_value
        && let Some(flag) = before.last()
        && let Some(arg) = flag_arg(command, &root, flag)
    {
        return flag_values(arg, current, "");
    }
    if let Some((flag, prefix)) = current.split_once('=')
        && flag.starts_with("--")
        && let Some(arg) = flag_arg(command, &root, flag)
    {
        return flag_values(arg, prefix, &format!("{flag}="));
    }
    // The first positional of the verbs that name an existing instance or
    // user: from the repository and the cluster.
    if positionals == 0 && !current.starts_with('-') {
        match path.as_slice() {
            ["instance", "status" | "update" | "delete"] => {
                let mut names = instance_names(current);
                names.extend(from_cluster(before, current, Names::Instances));
                names.sort();
                names.dedup();
                return (names, NO_FILE_COMPLETION);
            }
            ["user", "update" | "delete"] => {
                return (
                    from_cluster(before, current, Names::Users),
                    NO_FILE_COMPLETION,
                );
            }
            _ => {}
        }
    }
    if current.starts_with('-') {
        let mut flags: Vec<String> = command
            .get_arguments()
            .chain(root.get_arguments().filter(|arg| arg.is_global_set()))
            // -n/--namespace is only there to be refused with a message.
            .filter(|arg| !arg.is_hide_set() && arg.get_id() != "namespace")
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .filter(|flag| flag.starts_with(current))
            .collect();
        flags.sort();
        flags.dedup();
        return (flags, NO_FILE_COMPLETION);
    }
    let subcommands = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name().starts_with(current))
        .map(|sub| match sub.get_about() {
            Some(about) => format!("{}\t{about}", sub.get_name()),
            None => sub.get_name().to_owned(),
        })
        .collect();
    (subcommands, NO_FILE_COMPLETION)
}

/// What [`from_cluster`] lists.
#[derive(Clone, Copy)]
enum Names {
    Instances,
    Users,
}

/// How long completion may wait for the cluster before it offers only what
/// it found locally.
const CLUSTER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Instance or user names starting with `prefix`, from the cluster the words
/// choose (`--kubeconfig`, `--context`, `--cluster`, `--user`, else
/// KUBECONFIG and the repository's kubeconfig, as every command). Nothing
/// when the cluster cannot be reached within [`CLUSTER_WAIT`]: completion
/// never prints an error.
fn from_cluster(words: &[String], prefix: &str, what: Names) -> Vec<String> {
    let mut global = crate::cli::GlobalArgs::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let (flag, value) = match flag.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (flag, None),
        };
        let slot = match flag {
            "context" => &mut global.context,
            "cluster" => &mut global.cluster,
            "user" => &mut global.user,
            "kubeconfig" => {
                global.kubeconfig = value.or_else(|| words.next().cloned()).map(Into::into);
                continue;
            }
            _ => continue,
        };
        *slot = value.or_else(|| words.next().cloned());
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let names = runtime.block_on(async {
        tokio::time::timeout(CLUSTER_WAIT, async {
            let session = crate::session::Session::new(global).ok()?;
            let client = session.connect().await.ok()?.client;
            match what {
                Names::Instances => crate::instance::names_in_cluster(&client).await.ok(),
                Names::Users => crate::user::names(&client).await.ok(),
            }
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
    });
    runtime.shutdown_background();
    names
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Instances of the cluster repository around the working directory (the
/// folders of its instances directory that hold a config.yml).
fn instance_names(prefix: &str) -> Vec<String> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let Ok(Some(repository)) = phd_common::ClusterRepository::discover(&cwd) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(repository.root.join("instances")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.path().join("config.yml").is_file())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
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

    /// Issue 19.6: values are completed too: roles, providers, formats.
    #[test]
    fn flag_values() {
        assert_eq!(
            names(&["user", "create", "alice", "--role", ""]),
            ["admin", "developer", "readonly"]
        );
        assert_eq!(
            names(&["user", "update", "alice", "--role", "re"]),
            ["readonly"]
        );
        assert_eq!(
            names(&["cluster", "create", "--provider", ""]),
            ["digitalocean", "aws"]
        );
        assert!(names(&["instance", "list", "--output", ""]).contains(&"json".to_owned()));
    }

    /// From a trial: the short `-o`, `--flag=value`, flags that take a file
    /// (the shell completes file names: directive 0), and no `--namespace`,
    /// which is only there to be refused.
    #[test]
    fn short_flags_equals_values_and_files() {
        assert_eq!(
            names(&["user", "list", "-o", ""]),
            ["table", "wide", "json", "yaml", "name"]
        );
        assert_eq!(
            names(&["user", "create", "alice", "--role=a"]),
            ["--role=admin"]
        );
        let words = |w: &[&str]| w.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            complete(&words(&["argo", "install", "--argocd-manifest", ""])),
            (Vec::new(), FILE_COMPLETION)
        );
        assert_eq!(
            complete(&words(&["user", "list", "--kubeconfig", ""])),
            (Vec::new(), FILE_COMPLETION)
        );
        assert_eq!(
            complete(&words(&["user", "list", "-o", "x"])).1,
            NO_FILE_COMPLETION
        );
        assert!(!names(&["user", "list", "--"]).contains(&"--namespace".to_owned()));
    }
}
