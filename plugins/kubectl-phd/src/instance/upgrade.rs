//! `kubectl phd instance upgrade NAME... --to VERSION` (issue 28): an Open
//! edX release upgrade of one instance or a fleet, in waves.
//!
//! For each instance: a preflight before anything changes (the release
//! exists, one release at a time, no downgrade without `--force`, the
//! backups bucket is known), a restore point ([`super::backup`]), the render
//! with the new Tutor release (`instance update --tutor-version`: Meilisearch
//! moves to a volume named after its new image, so the new server never
//! opens the old one's data), then, with `--push`, one commit of the wave's
//! instance folders, a push, and a wait until Argo CD reports each
//! Application Synced and Healthy at that commit with every hook (Drydock's
//! migration and init Jobs) succeeded. A wave starts only when the one before
//! is settled; the first failure stops the run with a table of where each
//! instance stands. Running the same command again continues: instances
//! already rendered with the release are only waited for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use phd_common::argo::{self, Refresh, SyncState};
use phd_common::config::Setting;
use phd_common::tutor::{self, RELEASES, Release};
use phd_common::{git, naming};
use serde::Serialize;

use super::render::{parse_config, release_of};
use super::{backup, instances_dir};
use crate::cli::{IngressArgs, InstanceUpdateArgs, InstanceUpgradeArgs, ListFormat, ResultFormat};
use crate::output;
use crate::progress::Progress;
use crate::session::Session;

/// What the preflight decided for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Rendered with the release already: only waited for.
    Rendered,
    /// To render with the release.
    Upgrade,
}

/// One instance's row of the result (`-o json`: `items`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    wave: usize,
    from: String,
    to: String,
    /// The restore point made before the render.
    restore_point: Option<String>,
    /// The commit Argo CD must have synced.
    commit: Option<String>,
    /// `pending`, `rendered`, `pushed`, `upgraded`, `failed`, `not started`.
    state: &'static str,
    /// Argo CD's view, or why it failed.
    message: Option<String>,
}

/// Parses `--wave`: counts (`1`, `5`) or shares of the fleet (`25%`), the
/// last repeated until every instance has a wave; at least 1 each.
fn wave_sizes(text: &str, total: usize) -> anyhow::Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let size = if let Some(percent) = part.strip_suffix('%') {
            let share: usize = percent
                .parse()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .with_context(|| format!("--wave {text}: {part} is not a share from 1% to 100%"))?;
            (total * share).div_ceil(100).max(1)
        } else {
            part.parse()
                .ok()
                .filter(|n| *n >= 1)
                .with_context(|| format!("--wave {text}: {part} is not a count of at least 1"))?
        };
        sizes.push(size);
    }
    let mut waves = Vec::new();
    let mut left = total;
    let mut index = 0;
    while left > 0 {
        let size = sizes[index.min(sizes.len() - 1)].min(left);
        waves.push(size);
        left -= size;
        index += 1;
    }
    Ok(waves)
}

/// The step from `current` to `target`: the same release, the next one, or
/// refused (a downgrade without `force`; more than one release ahead).
fn step(current: &Release, target: &Release, force: bool) -> anyhow::Result<Step> {
    let position = |release: &Release| RELEASES.iter().position(|r| r.tutor == release.tutor);
    let (Some(from), Some(to)) = (position(current), position(target)) else {
        bail!(
            "Tutor {} is not a release phd renders (it renders {})",
            if position(current).is_none() {
                current.tutor
            } else {
                target.tutor
            },
            RELEASES
                .iter()
                .map(|r| r.tutor)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    // RELEASES is newest first.
    if from == to {
        return Ok(Step::Rendered);
    }
    if to > from && !force {
        bail!(
            "Tutor {} ({}) is older than {} ({}): a downgrade, which Open edX's database migrations do not support; put back the restore point made before the upgrade (`kubectl phd instance backups`, `instance restore`), or pass --force",
            target.tutor,
            target.name,
            current.tutor,
            current.name
        );
    }
    if from > to + 1 {
        let next = &RELEASES[from - 1];
        bail!(
            "Tutor {} ({}) is more than one Open edX release after {} ({}): upgrade one release at a time, first --to {}",
            target.tutor,
            target.name,
            current.tutor,
            current.name,
            next.tutor
        );
    }
    Ok(Step::Upgrade)
}

/// The instances `--all` names: every folder of the instances directory
/// with a config.yml, by name.
fn all_instances(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the instances directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.path().join("config.yml").is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub async fn upgrade(session: &Session, args: &InstanceUpgradeArgs) -> anyhow::Result<()> {
    let target = tutor::release(&args.to)?;
    // The flags first: a bad --wave is named before any file is read.
    wave_sizes(&args.wave, 1)?;
    let dir = instances_dir(session)?;
    let names = if args.all {
        all_instances(&dir)?
    } else {
        args.names.clone()
    };
    if names.is_empty() {
        if args.all {
            bail!(
                "no instance to upgrade: {} has no instance folder with a config.yml",
                dir.display()
            );
        }
        bail!(
            "no instance to upgrade: name them, or pass --all for every instance of {}",
            dir.display()
        );
    }
    for name in &names {
        naming::check_instance_name(name)?;
    }
    if names.len() > 1 && !args.push {
        bail!(
            "a fleet upgrade waits for each wave to be synced before the next, so it commits and pushes each wave: pass --push"
        );
    }
    // Preflight, for every instance before anything changes.
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for name in &names {
        let path = dir.join(name).join("config.yml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "instance {name} has no {} in this repository (`kubectl phd instance list` shows the instances; `kubectl phd instance create {name}` makes one)",
                path.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let config = parse_config(&text)?;
        let current = release_of(&config)?;
        match step(current, target, args.force) {
            Ok(found) => rows.push((
                found,
                Row {
                    name: name.clone(),
                    wave: 0,
                    from: current.tutor.to_owned(),
                    to: target.tutor.to_owned(),
                    restore_point: None,
                    commit: None,
                    state: "pending",
                    message: None,
                },
            )),
            Err(error) => refused.push(format!("{name}: {error}")),
        }
    }
    if !refused.is_empty() {
        bail!("cannot upgrade: {}", refused.join("; "));
    }
    session.load_outputs().await;
    if !args.no_backup && !args.dry_run && rows.iter().any(|(step, _)| *step == Step::Upgrade) {
        session
            .settings()
            .get(Setting::BackupBucket, None)?
            .context("no backups bucket for the restore point made before the upgrade: set PHD_BACKUP_BUCKET (or run inside the cluster repository whose infrastructure has the output backups_bucket), or pass --no-backup")?;
    }
    let root = match git::root(&dir) {
        Ok(root) => Some(root),
        Err(error) if args.push => {
            return Err(anyhow::Error::new(error).context(format!(
                "--push commits the instances' files, but {} is not in a git repository",
                dir.display()
            )));
        }
        Err(_) => None,
    };
    if args.push
        && !args.dry_run
        && let Some(root) = &root
    {
        git::identity(root).context("--push commits with your git identity")?;
    }
    let sizes = wave_sizes(&args.wave, rows.len())?;
    let mut start = 0;
    let mut waves = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        for (_, row) in &mut rows[start..start + size] {
            row.wave = index + 1;
        }
        waves.push(start..start + size);
        start += size;
    }
    if args.dry_run {
        output::info("dry run: nothing is changed; this is what would happen");
        for (index, wave) in waves.iter().enumerate() {
            for (step, row) in &rows[wave.clone()] {
                match step {
                    Step::Rendered => println!(
                        "wave {}: {} renders with Tutor {} already: wait for Argo CD to be Synced and Healthy",
                        index + 1,
                        row.name,
                        row.to
                    ),
                    Step::Upgrade => println!(
                        "wave {}: {}: {}render with Tutor {} (was {}; Meilisearch on a fresh volume, Drydock's migration jobs in the sync){}",
                        index + 1,
                        row.name,
                        if args.no_backup {
                            String::new()
                        } else {
                            format!(
                                "restore point before-{}-<time>, then ",
                                row.to.replace('.', "-")
                            )
                        },
                        row.to,
                        row.from,
                        if args.push {
                            ", commit and push, wait for Argo CD to be Synced and Healthy"
                        } else {
                            "; then commit and push yourself"
                        }
                    ),
                }
            }
        }
        return Ok(());
    }
    let _handling =
        phd_common::interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    let cluster = session.connect().await?;
    let client = cluster.client;
    super::create::require_argo(&client).await?;
    let started = Instant::now();
    for (index, wave) in waves.iter().enumerate() {
        let result = run_wave(
            session,
            &client,
            args,
            root.as_deref(),
            &dir,
            &mut rows[wave.clone()],
            started,
        )
        .await;
        if let Err(error) = result {
            for (_, row) in &mut rows[wave.end..] {
                row.state = "not started";
            }
            print_rows(&rows, args.output)?;
            return Err(error.context(format!(
                "the upgrade to Tutor {} stopped in wave {} of {}; fix the cause and run the same command again: it continues where it stopped",
                target.tutor,
                index + 1,
                waves.len()
            )));
        }
    }
    print_rows(&rows, args.output)?;
    if !args.push {
        let waiting = rows.iter().any(|(_, row)| row.state == "rendered");
        if waiting {
            output::info(format!(
                "Next: commit and push, then run this command again: it waits for Argo CD\n  git add {dir} && git commit -m 'Upgrade to Tutor {to}' && git push",
                dir = dir.display(),
                to = target.tutor
            ));
        }
    }
    Ok(())
}

/// One wave: restore points, renders, one commit and push, the wait.
async fn run_wave(
    session: &Session,
    client: &kube::Client,
    args: &InstanceUpgradeArgs,
    root: Option<&Path>,
    dir: &Path,
    rows: &mut [(Step, Row)],
    started: Instant,
) -> anyhow::Result<()> {
    let to_render: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].0 == Step::Upgrade)
        .collect();
    if !args.no_backup && !to_render.is_empty() {
        // Independent of each other: all at once.
        let prefix = format!("before-{}", rows[to_render[0]].1.to.replace('.', "-"));
        let point = backup::point_name(Some(&prefix));
        let made = futures::future::join_all(to_render.iter().map(|i| {
            let name = rows[*i].1.name.clone();
            let point = point.clone();
            async move { backup::make_point(session, client, &name, &point, args.timeout).await }
        }))
        .await;
        for (i, result) in to_render.iter().zip(made) {
            match result {
                Ok((made, _)) => rows[*i].1.restore_point = Some(made.name),
                Err(error) => {
                    rows[*i].1.state = "failed";
                    rows[*i].1.message = Some(format!("{error:#}"));
                    return Err(error.context(format!(
                        "no restore point of {}, so it was not upgraded",
                        rows[*i].1.name
                    )));
                }
            }
        }
    }
    for i in &to_render {
        let row = &mut rows[*i].1;
        let update = InstanceUpdateArgs {
            name: row.name.clone(),
            tutor_version: Some(row.to.clone()),
            size: None,
            edx_platform_version: None,
            set: Vec::new(),
            environment: None,
            ingress: IngressArgs::default(),
            smtp_password_stdin: false,
            files_only: false,
            dry_run: false,
            output: ResultFormat::Text,
            part_of: Some("instance upgrade"),
        };
        if let Err(error) = super::update(session, &update).await {
            row.state = "failed";
            row.message = Some(format!("{error:#}"));
            return Err(error.context(format!("cannot render {} with Tutor {}", row.name, row.to)));
        }
        row.state = "rendered";
        rows[*i].0 = Step::Rendered;
    }
    let Some(root) = root.filter(|_| args.push) else {
        if to_render.is_empty() {
            // Rendered before: its push is what Argo CD waits for.
            for (_, row) in rows.iter_mut() {
                let folder = dir.join(&row.name);
                row.commit = backup::files_commit(&folder);
            }
            return wait_wave(client, root, rows, args.timeout, started).await;
        }
        return Ok(());
    };
    let folders: Vec<PathBuf> = rows.iter().map(|(_, row)| dir.join(&row.name)).collect();
    let paths: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    let names: Vec<&str> = rows.iter().map(|(_, row)| row.name.as_str()).collect();
    let message = format!("Upgrade {} to Tutor {}", names.join(", "), rows[0].1.to);
    let committed = git::commit(root, &paths, &message)
        .with_context(|| format!("cannot commit {}", names.join(", ")))?;
    if let Some(commit) = &committed {
        output::info(format!(
            "committed {}: {message}",
            &commit[..12.min(commit.len())]
        ));
    }
    git::push(root).context("cannot push the upgrade")?;
    output::info("pushed");
    for (_, row) in rows.iter_mut() {
        row.commit = backup::files_commit(&dir.join(&row.name));
        if row.state == "rendered" {
            row.state = "pushed";
        }
    }
    wait_wave(client, Some(root), rows, args.timeout, started).await
}

async fn application_of(
    client: &kube::Client,
    name: &str,
) -> anyhow::Result<Option<kube::api::DynamicObject>> {
    argo::instance_application(client, name)
        .await
        .with_context(|| format!("cannot read the Argo CD Application of {name}"))
}

/// Waits until every instance of the wave is settled in Argo CD at its
/// commit (or fails: a failed sync at that commit, the timeout).
async fn wait_wave(
    client: &kube::Client,
    root: Option<&Path>,
    rows: &mut [(Step, Row)],
    timeout: Duration,
    started: Instant,
) -> anyhow::Result<()> {
    // Argo CD polls git every few minutes: ask it to look now.
    for (_, row) in rows.iter() {
        if let Some(application) = application_of(client, &row.name).await?
            && let Some(app_name) = application.metadata.name
        {
            let _ = argo::refresh(
                client,
                Refresh::Application,
                &app_name,
                Duration::from_secs(30),
            )
            .await;
        }
    }
    let run_started = jiff::Timestamp::now();
    let mut asked = std::collections::BTreeSet::new();
    let progress = Progress::new("waiting for Argo CD".to_owned());
    let deadline = Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for (_, row) in rows.iter_mut() {
            if row.state == "upgraded" {
                continue;
            }
            let Some(application) = application_of(client, &row.name).await? else {
                row.message = Some("no Argo CD Application yet".into());
                pending.push(format!("{}: no Application", row.name));
                continue;
            };
            let state = SyncState::of(&application);
            let at_commit = match (&row.commit, &state.operation_revision) {
                (None, _) => true,
                (Some(commit), Some(revision)) => match root {
                    Some(root) => git::contains(root, revision, commit),
                    None => revision == commit,
                },
                (Some(_), None) => false,
            };
            row.message = Some(state.summary());
            if at_commit && state.settled() {
                row.state = "upgraded";
                output::info(format!(
                    "{}: Synced and Healthy with Tutor {}",
                    row.name, row.to
                ));
            } else if at_commit && state.failed() && state.finished_before(run_started) {
                // Failed in an earlier run, whose cause may be fixed now:
                // auto-sync will not retry that commit, so ask once.
                if let Some(app_name) = &application.metadata.name
                    && asked.insert(row.name.clone())
                {
                    argo::sync(client, app_name)
                        .await
                        .with_context(|| format!("cannot ask Argo CD to sync {app_name} again"))?;
                    output::info(format!(
                        "{}: its sync had failed at this commit; asked Argo CD to sync it again",
                        row.name
                    ));
                }
                pending.push(format!("{}: syncing again", row.name));
            } else if at_commit && state.failed() {
                row.state = "failed";
                progress.finish();
                bail!(
                    "Argo CD's sync of {} failed at commit {}: {} (auto-sync does not retry a failed commit; fix the cause, push, and run again)",
                    row.name,
                    row.commit.as_deref().unwrap_or("?"),
                    state.message.as_deref().unwrap_or("no message")
                );
            } else {
                pending.push(format!("{}: {}", row.name, state.summary()));
            }
        }
        if pending.is_empty() {
            progress.finish();
            return Ok(());
        }
        if Instant::now() >= deadline {
            progress.finish();
            for (_, row) in rows.iter_mut() {
                if row.state != "upgraded" {
                    row.state = "failed";
                }
            }
            bail!(
                "not Synced and Healthy at the upgrade's commit within {}s: {}",
                timeout.as_secs(),
                pending.join("; ")
            );
        }
        progress.update(&format!(
            "{} ({}s)",
            pending.join("; "),
            started.elapsed().as_secs()
        ));
        phd_common::interrupt::or_interrupted(tokio::time::sleep(Duration::from_secs(2)))
            .await
            .map_err(|interrupted| {
                anyhow::Error::new(interrupted).context(
                    "interrupted while waiting for Argo CD; run the same command again to go on",
                )
            })?;
    }
}

fn print_rows(rows: &[(Step, Row)], format: ListFormat) -> anyhow::Result<()> {
    let items: Vec<&Row> = rows.iter().map(|(_, row)| row).collect();
    match format {
        ListFormat::Json | ListFormat::Yaml => output::print_structured(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
            format,
        ),
        ListFormat::Name => {
            for row in items {
                println!("instance/{}", row.name);
            }
            Ok(())
        }
        ListFormat::Table | ListFormat::Wide => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|row| {
                    let mut cells = vec![
                        row.name.clone(),
                        row.wave.to_string(),
                        row.from.clone(),
                        row.to.clone(),
                        row.state.to_owned(),
                        row.restore_point.clone().unwrap_or_else(|| "-".into()),
                    ];
                    if format == ListFormat::Wide {
                        cells.push(row.message.clone().unwrap_or_else(|| "-".into()));
                    }
                    cells
                })
                .collect();
            let mut headers = vec!["NAME", "WAVE", "FROM", "TO", "STATE", "RESTORE POINT"];
            if format == ListFormat::Wide {
                headers.push("ARGO CD");
            }
            output::print_table(&headers, &rows);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_counts_then_shares_the_last_repeated() {
        assert_eq!(wave_sizes("1,5,25%", 20).unwrap(), vec![1, 5, 5, 5, 4]);
        assert_eq!(wave_sizes("1", 3).unwrap(), vec![1, 1, 1]);
        assert_eq!(wave_sizes("1,100%", 3).unwrap(), vec![1, 2]);
        assert_eq!(wave_sizes("10", 3).unwrap(), vec![3]);
        for bad in ["0", "x", "0%", "101%", "1,,2"] {
            assert!(wave_sizes(bad, 3).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn one_release_up_at_a_time_and_no_downgrade_without_force() {
        let newest = &RELEASES[0];
        let older = &RELEASES[1];
        assert_eq!(step(older, newest, false).unwrap(), Step::Upgrade);
        assert_eq!(step(newest, newest, false).unwrap(), Step::Rendered);
        let refused = step(newest, older, false).unwrap_err().to_string();
        assert!(refused.contains("downgrade"), "{refused}");
        assert_eq!(step(newest, older, true).unwrap(), Step::Upgrade);
        if let Some(oldest) = RELEASES.get(2) {
            let refused = step(oldest, newest, false).unwrap_err().to_string();
            assert!(refused.contains("one release at a time"), "{refused}");
        }
    }
}
