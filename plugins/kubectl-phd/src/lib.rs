//! kubectl-phd: host many Open edX sites on one Kubernetes cluster with GitOps.
//!
//! `main` only calls [`run`]; each CLI noun has its module, each verb a function.

use std::process::ExitCode;

use clap::Parser as _;
use phd_common::interrupt;

mod argo;
mod ci;
pub mod cli;
mod cluster;
mod completion;
mod doctor;
mod infra;
mod instance;
mod legacy;
mod outcome;
mod output;
mod progress;
mod prompt;
mod session;
mod user;
mod version;

/// Size tiers of an instance (`--size`): the namespace's quota and limits.
pub use instance::size;

use cli::{ArgoCommand, Cli, ClusterCommand, Command, InstanceCommand, UserCommand};
use session::Session;

/// Parses the command line, runs the command and turns the outcome into an
/// exit code: 0 success, 1 failure, 2 usage error, 130 (SIGINT) or 143
/// (SIGTERM) interrupted ([`interrupt`]).
pub fn run() -> ExitCode {
    let args = match legacy::translate(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(code) = completion::kubectl_plugin_completion(&args) {
        return code;
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    output::init(&cli.global);
    if let Some(namespace) = &cli.global.namespace {
        output::print_error(&anyhow::anyhow!(
            "-n/--namespace {namespace}: no kubectl phd command works in a namespace you choose; an instance is its own namespace, so name the instance (`kubectl phd instance status NAME`)"
        ));
        return ExitCode::from(2);
    }
    match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            // After SIGINT/SIGTERM the failure is the interruption's, whatever
            // step noticed it (a child process killed by the same Ctrl-C).
            let signal = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<interrupt::Interrupted>())
                .map(|interrupted| interrupted.signal)
                .or_else(interrupt::received);
            match signal {
                Some(signal) => {
                    if error.to_string().starts_with("interrupted") {
                        output::print_error(&error);
                    } else {
                        output::print_error(&error.context(format!("interrupted by {signal}")));
                    }
                    ExitCode::from(signal.exit_code())
                }
                None => {
                    output::print_error(&error);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands that need no cluster run without starting the async runtime.
    match &cli.command {
        Command::Version(args) => return version::show(args).map(|()| ExitCode::SUCCESS),
        Command::Cluster(ClusterCommand::Create(args)) => {
            return cluster::create(args).map(|()| ExitCode::SUCCESS);
        }
        Command::Completion(args) => {
            completion::print(args);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Infra(args) => return infra::infra(&Session::new(cli.global.clone())?, args),
        Command::Doctor(_)
        | Command::CiCredentials(_)
        | Command::Argo(_)
        | Command::User(_)
        | Command::Instance(_)
        | Command::Kubeconfig(_) => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mutating = matches!(
        &cli.command,
        Command::CiCredentials(_)
            | Command::Argo(_)
            | Command::Instance(
                InstanceCommand::Create(_)
                    | InstanceCommand::Update(_)
                    | InstanceCommand::Delete(_)
                    | InstanceCommand::Backup(_)
                    | InstanceCommand::Restore(_)
                    | InstanceCommand::Upgrade(_)
                    | InstanceCommand::Clone(_)
                    | InstanceCommand::Sync(_)
            )
            | Command::User(
                UserCommand::Create(_) | UserCommand::Update(_) | UserCommand::Delete(_)
            )
    );
    let outcome = runtime.block_on(async {
        let session = Session::new(cli.global)?;
        let done = run_command(&session, &cli.command).await;
        // Every mutating command says which cluster it acted on, last.
        if mutating
            && done.is_ok()
            && let Some(cluster) = session.connected()
        {
            output::info(format!("cluster: {cluster}"));
        }
        done
    });
    // A thread blocked in a request (an exec credential plugin that never
    // ends) must not keep the process alive after the command has failed.
    runtime.shutdown_background();
    outcome
}

async fn run_command(session: &Session, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Doctor(args) => doctor::run(session, args).await,
        Command::CiCredentials(args) => ci::credentials(session, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Kubeconfig(args) => infra::kubeconfig(session, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Argo(ArgoCommand::Repository(args)) => argo::repository(session, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Argo(ArgoCommand::Install(args)) => argo::install(session, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Instance(command) => {
            let done = match command {
                InstanceCommand::Create(args) => instance::create(session, args).await,
                InstanceCommand::Update(args) => instance::update(session, args).await,
                InstanceCommand::Delete(args) => instance::delete(session, args).await,
                InstanceCommand::List(args) => instance::list(session, args).await,
                InstanceCommand::Status(args) => instance::status(session, args).await,
                InstanceCommand::Backup(args) => instance::backup(session, args).await,
                InstanceCommand::Backups(args) => instance::backups(session, args).await,
                InstanceCommand::Restore(args) => instance::restore(session, args).await,
                InstanceCommand::Upgrade(args) => instance::upgrade(session, args).await,
                InstanceCommand::Clone(args) => instance::clone(session, args).await,
                InstanceCommand::Sync(args) => instance::sync(session, args).await,
            };
            done.map(|()| ExitCode::SUCCESS)
        }
        Command::User(command) => {
            let done = match command {
                UserCommand::Create(args) => user::create(session, args).await,
                UserCommand::Update(args) => user::update(session, args).await,
                UserCommand::Delete(args) => user::delete(session, args).await,
                UserCommand::List(args) => user::list(session, args).await,
            };
            done.map(|()| ExitCode::SUCCESS)
        }
        Command::Version(_) | Command::Completion(_) | Command::Cluster(_) | Command::Infra(_) => {
            Ok(ExitCode::SUCCESS)
        }
    }
}
