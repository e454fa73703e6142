//! The original tool's command names: the binary, installed or linked as
//! `phd_create_instance` and the others, takes their arguments and runs the
//! matching `kubectl phd` command, so existing scripts keep working.

use std::ffi::OsString;
use std::path::Path;

/// A flag of the original that has a new name here.
struct Rename {
    old: &'static str,
    new: &'static str,
}

/// An original flag that no longer applies, and why.
struct Dropped {
    flag: &'static str,
    takes_value: bool,
    reason: &'static str,
}

/// What the original did with its Nth positional argument.
#[derive(Clone, Copy)]
enum Positional {
    /// Passed on as a positional (the user, instance or cluster name).
    Keep,
    /// Passed on as the value of a flag (`phd_update_argo_user_permissions
    /// alice admin` → `--role admin`).
    Flag(&'static str),
    /// No longer needed; ignored with a note.
    Drop(&'static str),
}

struct Legacy {
    program: &'static str,
    command: &'static [&'static str],
    renames: &'static [Rename],
    dropped: &'static [Dropped],
    /// The original's positional arguments in order; more are passed on.
    positionals: &'static [Positional],
}

/// Flags of the new commands (and the original's) that take no value; every
/// other `--flag` without `=` takes the next argument as its value.
const SWITCHES: &[&str] = &[
    "--yes",
    "--force",
    "-f",
    "--argocd-only",
    "--workflows-only",
    "--no-wait",
    "--dry-run",
    "--show-token",
    "--password-stdin",
    "--admin-password-stdin",
    "--no-git",
    "--files-only",
    "--verbose",
    "-v",
    "--no-color",
    "--help",
    "-h",
];

const YES: &[Rename] = &[
    Rename {
        old: "--force",
        new: "--yes",
    },
    Rename {
        old: "-f",
        new: "--yes",
    },
];
const TEMPLATE_FLAGS: &[Dropped] = &[
    Dropped {
        flag: "--template-repository",
        takes_value: true,
        reason: "the templates are built into kubectl-phd",
    },
    Dropped {
        flag: "--template-version",
        takes_value: true,
        reason: "the templates are built into kubectl-phd",
    },
];

const COMMANDS: &[Legacy] = &[
    Legacy {
        program: "phd_create_cluster",
        command: &["cluster", "create"],
        positionals: &[Positional::Keep, Positional::Keep],
        renames: &[
            Rename {
                old: "--cloud-provider",
                new: "--provider",
            },
            Rename {
                old: "--cloud-region",
                new: "--region",
            },
            Rename {
                old: "--github-organization",
                new: "--github-org",
            },
            Rename {
                old: "--github-repository",
                new: "--github-repo",
            },
        ],
        dropped: &[
            Dropped {
                flag: "--short-description",
                takes_value: true,
                reason: "not used by the scaffold",
            },
            Dropped {
                flag: "--harmony-module-version",
                takes_value: true,
                reason: "the modules are this project's own",
            },
            Dropped {
                flag: "--opencraft-module-version",
                takes_value: true,
                reason: "the modules are this project's own",
            },
            Dropped {
                flag: "--picasso-version",
                takes_value: true,
                reason: "pinned by the plugin",
            },
            Dropped {
                flag: "--tutor-version",
                takes_value: true,
                reason: "set per instance",
            },
            Dropped {
                flag: "--template-repository",
                takes_value: true,
                reason: "the templates are built into kubectl-phd",
            },
            Dropped {
                flag: "--template-version",
                takes_value: true,
                reason: "the templates are built into kubectl-phd",
            },
        ],
    },
    Legacy {
        program: "phd_install_argo",
        command: &["argo", "install"],
        positionals: &[Positional::Keep],
        renames: &[],
        dropped: &[],
    },
    Legacy {
        program: "phd_create_argo_user",
        command: &["user", "create"],
        positionals: &[Positional::Keep],
        renames: &[],
        dropped: &[],
    },
    Legacy {
        program: "phd_update_argo_user",
        command: &["user", "update"],
        positionals: &[Positional::Keep],
        renames: &[],
        dropped: &[],
    },
    Legacy {
        program: "phd_delete_argo_user",
        command: &["user", "delete"],
        positionals: &[Positional::Keep],
        renames: YES,
        dropped: &[],
    },
    Legacy {
        program: "phd_create_instance",
        command: &["instance", "create"],
        // `phd_create_instance NAME TEMPLATE_REPOSITORY PLATFORM_NAME`
        positionals: &[
            Positional::Keep,
            Positional::Drop("the templates are built into kubectl-phd"),
            Positional::Flag("--platform-name"),
        ],
        renames: &[],
        dropped: TEMPLATE_FLAGS,
    },
    Legacy {
        program: "phd_delete_instance",
        command: &["instance", "delete"],
        positionals: &[Positional::Keep],
        renames: YES,
        dropped: &[],
    },
    // Documented by the original README ("Updating User Permissions").
    Legacy {
        program: "phd_update_argo_user_permissions",
        command: &["user", "update"],
        positionals: &[Positional::Keep, Positional::Flag("--role")],
        renames: &[],
        dropped: &[],
    },
];

/// The command line to parse: unchanged for `kubectl-phd`, translated when
/// the program was invoked under one of the original names.
pub fn translate(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(program) = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_stem())
        .and_then(|stem| stem.to_str())
        .map(str::to_owned)
    else {
        return Ok(args);
    };
    let Some(legacy) = COMMANDS
        .iter()
        .find(|legacy| legacy.program == program.as_str())
    else {
        return Ok(args);
    };
    let mut translated: Vec<OsString> = vec!["kubectl-phd".into()];
    translated.extend(legacy.command.iter().map(OsString::from));
    let rest: Vec<OsString> = args.into_iter().skip(1).collect();
    // Both "only" flags meant "both parts" in the original.
    let both_only = ["--argocd-only", "--workflows-only"]
        .iter()
        .all(|flag| rest.iter().any(|a| a == *flag));
    let mut iter = rest.into_iter();
    let mut position = 0;
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if !text.starts_with('-') || text == "-" {
            let kind = legacy
                .positionals
                .get(position)
                .copied()
                .unwrap_or(Positional::Keep);
            position += 1;
            match kind {
                Positional::Keep => translated.push(arg),
                Positional::Flag(flag) => {
                    translated.push(flag.into());
                    translated.push(arg);
                }
                Positional::Drop(reason) => {
                    eprintln!("{program}: ignoring {text:?}: {reason}");
                }
            }
            continue;
        }
        let (flag, inline_value) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (text.clone(), None),
        };
        if flag == "--password" {
            return Err(format!(
                "{program}: --password is not accepted because it exposes the password in the process list; \
                 pipe it instead: printf '%s' \"$PASSWORD\" | {program} USER --password-stdin"
            ));
        }
        if both_only && (flag == "--argocd-only" || flag == "--workflows-only") {
            continue;
        }
        if let Some(dropped) = legacy.dropped.iter().find(|d| d.flag == flag) {
            eprintln!("{program}: ignoring {flag}: {}", dropped.reason);
            if dropped.takes_value && inline_value.is_none() {
                iter.next();
            }
            continue;
        }
        let has_inline_value = inline_value.is_some();
        match legacy.renames.iter().find(|r| r.old == flag) {
            Some(rename) => translated.push(match inline_value {
                Some(value) => format!("{}={value}", rename.new).into(),
                None => rename.new.into(),
            }),
            None => translated.push(arg),
        }
        // A flag's value is not a positional.
        if !has_inline_value
            && !SWITCHES.contains(&flag.as_str())
            && let Some(value) = iter.next()
        {
            translated.push(value);
        }
    }
    Ok(translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Vec<String>, String> {
        translate(args.iter().map(OsString::from).collect()).map(|v| {
            v.into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn kubectl_phd_is_left_alone() {
        assert_eq!(
            run(&["kubectl-phd", "version"]),
            Ok(vec!["kubectl-phd".into(), "version".into()])
        );
    }

    #[test]
    fn original_names_become_commands() {
        assert_eq!(
            run(&[
                "/usr/local/bin/phd_create_argo_user",
                "alice",
                "--role",
                "admin"
            ])
            .expect("translated"),
            ["kubectl-phd", "user", "create", "alice", "--role", "admin"]
        );
        assert_eq!(
            run(&["phd_delete_instance", "demo", "-f"]).expect("translated"),
            ["kubectl-phd", "instance", "delete", "demo", "--yes"]
        );
        assert_eq!(
            run(&["phd_install_argo", "--argocd-only", "--workflows-only"]).expect("translated"),
            ["kubectl-phd", "argo", "install"]
        );
        assert_eq!(
            run(&[
                "phd_create_cluster",
                "My Cluster",
                "x.example",
                "--cloud-provider=aws",
                "--picasso-version",
                "main"
            ])
            .expect("translated"),
            [
                "kubectl-phd",
                "cluster",
                "create",
                "My Cluster",
                "x.example",
                "--provider=aws"
            ]
        );
        assert_eq!(
            run(&[
                "phd_create_instance",
                "demo",
                "--template-version",
                "v1",
                "--platform-name",
                "Demo"
            ])
            .expect("translated"),
            [
                "kubectl-phd",
                "instance",
                "create",
                "demo",
                "--platform-name",
                "Demo"
            ]
        );
    }

    /// Issue 14.11: every command form the original README documents
    /// (its "PHD Commands", "Instance Management" and "Updating User
    /// Permissions" sections; `--password` is refused on purpose, tested
    /// below) translates into a command line this plugin's CLI accepts.
    #[test]
    fn every_documented_original_form_parses() {
        use clap::Parser as _;
        let documented: &[&[&str]] = &[
            &[
                "phd_create_cluster",
                "PHD Production Cluster",
                "prod.example.com",
            ],
            &["phd_install_argo"],
            &["phd_install_argo", "--argocd-only"],
            &["phd_install_argo", "--workflows-only"],
            &["phd_create_argo_user", "alice"],
            &["phd_create_argo_user", "alice", "--role", "admin"],
            &["phd_update_argo_user", "alice", "--role", "readonly"],
            &["phd_delete_argo_user", "alice"],
            &["phd_update_argo_user_permissions", "username", "admin"],
            &["phd_update_argo_user_permissions", "username", "developer"],
            &["phd_update_argo_user_permissions", "username", "readonly"],
            &[
                "phd_create_instance",
                "my-instance",
                "https://github.com/your-org/your-cluster.git",
                "My Open edX Platform",
            ],
            &[
                "phd_create_instance",
                "my-instance",
                "https://github.com/your-org/your-cluster.git",
                "My Open edX Platform",
                "--edx-platform-repository",
                "https://github.com/openedx/edx-platform.git",
                "--edx-platform-version",
                "release/teak",
                "--tutor-version",
                "v20.0.1",
            ],
            &["phd_delete_instance", "my-instance"],
        ];
        let names: Vec<&str> = COMMANDS.iter().map(|legacy| legacy.program).collect();
        for form in documented {
            assert!(names.contains(&form[0]), "{} is not recognised", form[0]);
            let translated = run(form).expect("translated");
            if let Err(error) = crate::cli::Cli::try_parse_from(&translated) {
                panic!("{form:?} → {translated:?}: {error}");
            }
        }
        assert_eq!(
            run(&["phd_update_argo_user_permissions", "bob", "admin"]).expect("translated"),
            ["kubectl-phd", "user", "update", "bob", "--role", "admin"]
        );
        assert_eq!(
            run(&[
                "phd_create_instance",
                "demo",
                "https://github.com/o/c.git",
                "Demo U",
                "--tutor-version",
                "22"
            ])
            .expect("translated"),
            [
                "kubectl-phd",
                "instance",
                "create",
                "demo",
                "--platform-name",
                "Demo U",
                "--tutor-version",
                "22"
            ]
        );
    }

    #[test]
    fn passwords_on_the_command_line_are_refused() {
        let error =
            run(&["phd_create_argo_user", "alice", "--password", "hunter2"]).expect_err("refused");
        assert!(error.contains("--password-stdin") && !error.contains("hunter2"));
    }
}
