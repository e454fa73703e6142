//! `kubectl phd user create|update|delete|list` (SPEC.md section 7.3).
//!
//! A user is an Argo CD local account and an Argo Workflows identity (a
//! ServiceAccount in `argo` with a token, bound to a role). Each user's keys in
//! the shared Argo CD ConfigMaps and Secret are written by server-side apply
//! with a field manager of that user's own, so concurrent commands never
//! overwrite each other's entries and deleting a user releases exactly its keys.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use phd_common::apply::Applier;
use phd_common::config::Setting;
use phd_common::{manifests, naming, password};
use serde::Serialize;

use crate::argo::{ARGOCD_NAMESPACE, ARGOCD_SECRET, WORKFLOWS_NAMESPACE};
use crate::cli::{
    ListFormat, ResultFormat, Role, UserCreateArgs, UserDeleteArgs, UserListArgs, UserUpdateArgs,
};
use crate::outcome::{Action, ObjectRef, Outcome, UserDetails};
use crate::output;
use crate::prompt;
use crate::session::Session;

/// Argo CD's own account, which `argo install` manages.
const RESERVED: &[&str] = &["admin"];
const MAX_USERNAME_LENGTH: usize = 32;
const GENERATED_PASSWORD_LENGTH: usize = 24;
const USER_LABEL: &str = "kubectl-phd/user";
const ROLE_LABEL: &str = "kubectl-phd/role";

/// The same rule in every verb: a DNS label of at most 32 characters, not a reserved name.
pub fn check_username(name: &str) -> anyhow::Result<()> {
    naming::check_label_within("user name", name, MAX_USERNAME_LENGTH)?;
    if RESERVED.contains(&name) {
        bail!("user name {name:?} is reserved for Argo CD's built-in account; choose another");
    }
    Ok(())
}

/// The names of everything that makes up one user.
struct UserObjects {
    name: String,
    service_account: String,
    token_secret: String,
    binding: String,
    field_manager: String,
    account_key: String,
    password_key: String,
    policy_key: String,
}

impl UserObjects {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            service_account: format!("phd-user-{name}"),
            token_secret: format!("phd-user-{name}-token"),
            binding: format!("phd-user-{name}"),
            field_manager: format!("kubectl-phd-user-{name}"),
            account_key: format!("accounts.{name}"),
            password_key: phd_common::argo::password_keys(name).0,
            policy_key: format!("policy.phd-user-{name}.csv"),
        }
    }

    /// The objects of the user, each with the action of `user`; the shared
    /// Argo CD objects (whose user entries were written) `applied` unless
    /// unchanged; `argocd-secret` (the password) only when `password`.
    fn objects(&self, user: Action, password: bool) -> Vec<ObjectRef> {
        let action = match user {
            Action::Created => "created",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            _ => "applied",
        };
        let shared = match user {
            Action::Unchanged => "unchanged",
            Action::Deleted => "keysRemoved",
            _ => "applied",
        };
        let argocd = Some(ARGOCD_NAMESPACE);
        let workflows = Some(WORKFLOWS_NAMESPACE);
        let mut objects = vec![
            ObjectRef::new("ConfigMap", argocd, "argocd-cm", shared),
            ObjectRef::new("ConfigMap", argocd, "argocd-rbac-cm", shared),
        ];
        if password {
            objects.push(ObjectRef::new("Secret", argocd, ARGOCD_SECRET, shared));
        }
        objects.extend([
            ObjectRef::new("ServiceAccount", workflows, &self.service_account, action),
            ObjectRef::new("Secret", workflows, &self.token_secret, action),
            ObjectRef::new("ClusterRoleBinding", None, &self.binding, action),
        ]);
        objects
    }

    fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.field_manager).force()
    }

    fn labels(&self, role: Option<Role>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "kubectl-phd".to_owned(),
            ),
            (USER_LABEL.to_owned(), self.name.clone()),
        ]);
        if let Some(role) = role {
            labels.insert(ROLE_LABEL.to_owned(), role.name().to_owned());
        }
        labels
    }
}

impl Role {
    /// The role named `name` (`admin`, `developer`, `readonly`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Admin, Self::Developer, Self::Readonly]
            .into_iter()
            .find(|role| role.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
            Self::Readonly => "readonly",
        }
    }

    fn argocd_role(self) -> String {
        format!("role:phd-{}", self.name())
    }

    fn cluster_role(self) -> String {
        format!("phd-argo-{}", self.name())
    }
}

fn meta(
    name: &str,
    namespace: Option<&str>,
    labels: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels,
        ..Default::default()
    }
}

fn config_map(name: &str, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, Some(ARGOCD_NAMESPACE), None),
        data: Some(data),
        ..Default::default()
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// What is in the cluster of one user, read from the shared Argo CD objects.
#[derive(Debug, Default, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct UserState {
    name: String,
    role: Option<String>,
    argocd_login: bool,
    argocd_password: bool,
    workflows_identity: bool,
    workflows_role: Option<String>,
    /// `argo/phd-user-<name>`, the Argo Workflows identity; `null` without one.
    service_account: Option<String>,
    problems: Vec<String>,
}

/// The Argo CD objects users live in.
struct ArgocdObjects {
    config: BTreeMap<String, String>,
    rbac: BTreeMap<String, String>,
    secret_keys: Vec<String>,
}

async fn read_argocd(client: &kube::Client) -> anyhow::Result<ArgocdObjects> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let (config, rbac, secret) = tokio::join!(
        config_maps.get_opt("argocd-cm"),
        config_maps.get_opt("argocd-rbac-cm"),
        secrets.get_opt(ARGOCD_SECRET)
    );
    let missing = || {
        anyhow::anyhow!(
            "Argo CD is not installed in namespace {ARGOCD_NAMESPACE}; run `kubectl phd argo install` first"
        )
    };
    let config = config
        .context("cannot read argocd-cm")?
        .ok_or_else(missing)?;
    let rbac = rbac
        .context("cannot read argocd-rbac-cm")?
        .ok_or_else(missing)?;
    let secret = secret
        .context("cannot read argocd-secret")?
        .ok_or_else(missing)?;
    Ok(ArgocdObjects {
        config: config.data.unwrap_or_default(),
        rbac: rbac.data.unwrap_or_default(),
        secret_keys: secret.data.unwrap_or_default().into_keys().collect(),
    })
}

pub async fn create(session: &Session, args: &UserCreateArgs) -> anyhow::Result<()> {
    check_username(&args.name)?;
    let user = UserObjects::new(&args.name);
    let given_password = if args.password_stdin {
        Some(prompt::password_from_stdin("--password-stdin")?)
    } else {
        None
    };
    let cluster = session.connect().await?;
    let client = cluster.client;
    let argocd = read_argocd(&client).await?;
    phd_common::argo::require_installed(&client, &[phd_common::argo::Part::Workflows]).await?;
    // 1. What is there: the user's role and password, if it exists.
    let current = read_states(&client).await?.remove(&user.name);
    let had_problems = current
        .as_ref()
        .is_some_and(|state| !state.problems.is_empty());
    let existed = current.is_some();
    let role = choose_role(&user, args.role, current.and_then(|state| state.role))?;
    let stored = current_password_hash(&client, &user).await?;
    let (new_password, generated) = choose_password(&user, given_password, &stored)?;
    if argocd.config.contains_key(&user.account_key) {
        output::debug(format!("user {} exists; making it match", user.name));
    }
    // 2. The Argo CD login, then its password.
    enable_login(&client, &user).await?;
    let mut shown_password: Option<String> = None;
    if let Some(password) = &new_password
        && store_new_password(&client, &user, password, &stored).await?
        && generated
    {
        shown_password = Some(password.clone());
        // Shown as soon as it is stored (in -o json|yaml, in the result,
        // or below if a later step fails).
        if args.output == ResultFormat::Text {
            output::info(format!(
                "Argo CD password of {} generated and stored; it is shown only this once:",
                user.name
            ));
            println!("{password}");
        }
    }
    // 3. The Argo Workflows identity and the role's bindings.
    let finished = async {
        ensure_workflows_identity(&client, &user, role).await?;
        ensure_role(&client, &user, role).await?;
        bind_developers(&client).await
    }
    .await;
    if let Err(error) = finished {
        // A generated password that -o json|yaml|name held back is not lost:
        // the result, with action `failed`, carries it.
        if let Some(password) = shown_password.filter(|_| args.output != ResultFormat::Text) {
            let outcome = Outcome::new(
                "User",
                &user.name,
                Action::Failed,
                UserDetails {
                    role: Some(role.name()),
                    password: Some(password),
                    token: None,
                },
            )
            .on(session);
            print_user_outcome(&outcome, args.output)?;
        }
        return Err(error);
    }
    // 4. How to log in, and the result.
    print_login_help(session, &user, role, args.show_token)?;
    let token = if args.show_token {
        Some(format!("Bearer {}", wait_for_token(&client, &user).await?))
    } else {
        None
    };
    let action = match (existed, new_password.is_some() || had_problems) {
        (false, _) => Action::Created,
        (true, true) => Action::Updated,
        (true, false) => Action::Unchanged,
    };
    let mut outcome = Outcome::new(
        "User",
        &user.name,
        action,
        UserDetails {
            role: Some(role.name()),
            password: shown_password,
            token: None,
        },
    )
    .on(session);
    outcome.objects = user.objects(action, new_password.is_some());
    outcome.details.token = token;
    if args.output == ResultFormat::Text {
        // Printed as soon as it was stored.
        outcome.details.password = None;
    }
    print_user_outcome(&outcome, args.output)
}

/// The role a created user gets: the one asked for (developer when none)
/// for a new user; an existing user keeps its role, and asking for another
/// one is an error, since changing it is `user update`'s job, never a side
/// effect of `create`.
fn choose_role(
    user: &UserObjects,
    asked: Option<Role>,
    current: Option<String>,
) -> anyhow::Result<Role> {
    let Some(current) = current else {
        return Ok(asked.unwrap_or(Role::Developer));
    };
    let kept = Role::from_name(&current)
        .with_context(|| format!("user {} has the unknown role {current:?}", user.name))?;
    if let Some(asked) = asked
        && asked != kept
    {
        bail!(
            "user {} exists with role {current}; `user create` changes nothing it was not asked to create: change the role with `kubectl phd user update {} --role {}`",
            user.name,
            user.name,
            asked.name()
        );
    }
    output::info(format!(
        "user {} exists: kept its role {current}",
        user.name
    ));
    Ok(kept)
}

/// The password to store, and whether it was generated (then shown once):
/// a re-run without a new password keeps the current one; a new user gets
/// the one given on stdin, one typed at the terminal, or a generated one.
fn choose_password(
    user: &UserObjects,
    given: Option<String>,
    stored: &StoredPassword,
) -> anyhow::Result<(Option<String>, bool)> {
    let chosen = match (given, &stored.hash) {
        (Some(given), Some(hash)) if password::bcrypt_matches(&given, hash) => (None, false),
        (Some(given), _) => (Some(given), false),
        (None, Some(_)) => (None, false),
        (None, None) if prompt::can_prompt() => (Some(prompt::new_password(&user.name)?), false),
        (None, None) => (Some(password::generate(GENERATED_PASSWORD_LENGTH)), true),
    };
    if chosen.0.is_none() && stored.hash.is_some() {
        output::info(format!("user {}: kept its Argo CD password", user.name));
    }
    Ok(chosen)
}

/// Applies the user roles and turns on the user's Argo CD login
/// (`accounts.<name>: login` in argocd-cm).
async fn enable_login(client: &kube::Client, user: &UserObjects) -> anyhow::Result<()> {
    Applier::new(client.clone())
        .apply(&manifests::user_roles().documents().await?, None, &|_| {})
        .await
        .context("cannot apply the user roles")?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    config_maps
        .patch(
            "argocd-cm",
            &user.apply_params(),
            &Patch::Apply(config_map(
                "argocd-cm",
                BTreeMap::from([(user.account_key.clone(), "login".to_owned())]),
            )),
        )
        .await
        .context("cannot enable the Argo CD login in argocd-cm")?;
    Ok(())
}

/// Stores the bcrypt hash of `password` in argocd-secret. A password chosen
/// because the user had none is stored only if argocd-secret is as read: of
/// two runs at once, one stores its password and the other keeps it, so no
/// run shows one that does not work. `Ok(false)` when another run's password
/// was kept; an error after ten conflicting changes of argocd-secret.
async fn store_new_password(
    client: &kube::Client,
    user: &UserObjects,
    password: &str,
    stored: &StoredPassword,
) -> anyhow::Result<bool> {
    let mut precondition = stored
        .hash
        .is_none()
        .then_some(stored.resource_version.as_deref())
        .flatten()
        .map(str::to_owned);
    let hash = password::bcrypt_hash(password)?;
    for _ in 0..=10 {
        match store_password(client, user, &hash, precondition.as_deref()).await {
            Ok(()) => return Ok(true),
            Err(StoreError::Other(error)) => return Err(error),
            Err(StoreError::Conflict) => {
                let now = current_password_hash(client, user).await?;
                if now.hash.is_some() {
                    output::info(format!(
                        "user {} got a password from another run at the same time; kept that one",
                        user.name
                    ));
                    return Ok(false);
                }
                // Something else in argocd-secret changed: try again.
                precondition = now.resource_version;
            }
        }
    }
    bail!(
        "argocd-secret kept changing while the password of {} was being stored; run the same command again",
        user.name
    )
}

/// Where the user logs in: the Argo CD UI (at `https://argocd.<domain>`
/// when the cluster domain is known) and Argo Workflows through a
/// port-forward with the token.
fn print_login_help(
    session: &Session,
    user: &UserObjects,
    role: Role,
    show_token: bool,
) -> anyhow::Result<()> {
    output::info(format!(
        "user {} ready with role {}",
        user.name,
        role.name()
    ));
    let domain = session
        .settings()
        .get(Setting::ClusterDomain, None)?
        .map(|d| d.value);
    let argocd_address = domain.map_or_else(
        || "the Argo CD UI".to_owned(),
        |d| format!("https://argocd.{d}"),
    );
    output::info(format!(
        "  Argo CD: log in at {argocd_address} as {}",
        user.name
    ));
    let token = if show_token {
        "the token printed below".to_owned()
    } else {
        format!(
            "the token (`kubectl phd user create {} --show-token` prints it)",
            user.name
        )
    };
    output::info(format!(
        "  Argo Workflows: `kubectl -n {WORKFLOWS_NAMESPACE} port-forward svc/argo-server 2746`, then log in at https://localhost:2746 with {token}"
    ));
    Ok(())
}

/// Prints a user's result. The generated password and the token are
/// results too: in the JSON/YAML object; on their own lines of standard
/// output after `user/<name>` with `-o name`, and after the summary in text.
fn print_user_outcome(outcome: &Outcome<UserDetails>, format: ResultFormat) -> anyhow::Result<()> {
    outcome.print(format)?;
    if matches!(format, ResultFormat::Text | ResultFormat::Name) {
        if let Some(password) = &outcome.details.password {
            output::info(format!(
                "Argo CD password of {} generated and stored; it is shown only this once:",
                outcome.name
            ));
            println!("{password}");
        }
        if let Some(token) = &outcome.details.token {
            println!("{token}");
        }
    }
    Ok(())
}

pub async fn update(session: &Session, args: &UserUpdateArgs) -> anyhow::Result<()> {
    check_username(&args.name)?;
    let user = UserObjects::new(&args.name);
    let cluster = session.connect().await?;
    let client = cluster.client;
    // One read of both halves: the user's state before, and whether it exists
    // (an account in argocd-cm, or its ServiceAccount, labelled or not).
    let before = read_states(&client).await?.remove(&user.name);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    let has_identity = accounts.get_opt(&user.service_account).await?.is_some();
    if before.is_none() && !has_identity {
        bail!(
            "user {} does not exist; create it with `kubectl phd user create {}`",
            user.name,
            user.name
        );
    }
    Applier::new(client.clone())
        .apply(&manifests::user_roles().documents().await?, None, &|_| {})
        .await
        .context("cannot apply the user roles")?;
    ensure_workflows_identity(&client, &user, args.role).await?;
    ensure_role(&client, &user, args.role).await?;
    bind_developers(&client).await?;
    // Unchanged only when the role was already this one and nothing was missing.
    let action = match &before {
        Some(state)
            if state.role.as_deref() == Some(args.role.name()) && state.problems.is_empty() =>
        {
            Action::Unchanged
        }
        _ => Action::Updated,
    };
    output::info(format!(
        "user {} {} role {}",
        user.name,
        if action == Action::Unchanged {
            "already has"
        } else {
            "now has"
        },
        args.role.name()
    ));
    let mut outcome = Outcome::new(
        "User",
        &user.name,
        action,
        UserDetails {
            role: Some(args.role.name()),
            ..Default::default()
        },
    )
    .on(session);
    outcome.objects = user.objects(action, false);
    outcome.print(args.output)
}

pub async fn delete(session: &Session, args: &UserDeleteArgs) -> anyhow::Result<()> {
    check_username(&args.name)?;
    let user = UserObjects::new(&args.name);
    let cluster = session.connect().await?;
    let client = cluster.client;
    let states = read_states(&client).await?;
    if !states.contains_key(&user.name) {
        if args.ignore_not_found {
            return Outcome::new("User", &user.name, Action::NotFound, UserDetails::default())
                .on(session)
                .print(args.output);
        }
        bail!(
            "user {} does not exist (`kubectl phd user list` shows who does); pass --ignore-not-found to succeed anyway",
            user.name
        );
    }
    if !args.yes
        && !prompt::confirm(
            &format!(
                "Delete user {} (its Argo CD account and Argo Workflows identity)?",
                user.name
            ),
            "--yes",
        )?
    {
        bail!("not confirmed; user {} was left as it is", user.name);
    }

    // Release this user's keys: an apply with no fields by the user's own manager.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    for name in ["argocd-cm", "argocd-rbac-cm"] {
        config_maps
            .patch(
                name,
                &user.apply_params(),
                &Patch::Apply(config_map(name, BTreeMap::new())),
            )
            .await
            .with_context(|| format!("cannot remove user {} from {name}", user.name))?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let empty_secret = Secret {
        metadata: meta(ARGOCD_SECRET, Some(ARGOCD_NAMESPACE), None),
        ..Default::default()
    };
    secrets
        .patch(
            ARGOCD_SECRET,
            &user.apply_params(),
            &Patch::Apply(&empty_secret),
        )
        .await
        .with_context(|| {
            format!(
                "cannot remove the password of {} from argocd-secret",
                user.name
            )
        })?;
    // Keys another tool wrote (the original Python tool, a manual edit) are not
    // this manager's to release: remove whatever is left, key by key.
    remove_leftover_keys(&client, &user).await?;

    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    let token_secrets: Api<Secret> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    for result in [
        bindings
            .delete(&user.binding, &DeleteParams::default())
            .await
            .map(|_| ()),
        token_secrets
            .delete(&user.token_secret, &DeleteParams::default())
            .await
            .map(|_| ()),
        accounts
            .delete(&user.service_account, &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => {
                return Err(error).context(format!(
                    "cannot delete the Argo Workflows identity of {}",
                    user.name
                ));
            }
        }
    }
    bind_developers(&client).await?;
    let mut outcome =
        Outcome::new("User", &user.name, Action::Deleted, UserDetails::default()).on(session);
    // The shared ConfigMaps and Secret stay: only the user's keys leave them.
    outcome.objects = user.objects(Action::Deleted, true);
    outcome.print(args.output)
}

pub async fn list(session: &Session, args: &UserListArgs) -> anyhow::Result<()> {
    let cluster = session.connect().await?;
    let states = read_states(&cluster.client).await?;
    let users: Vec<UserState> = states.into_values().collect();
    match args.output {
        format @ (ListFormat::Table | ListFormat::Wide) => {
            let wide = format == ListFormat::Wide;
            let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
            let mut headers = vec!["USER", "ROLE", "ARGOCD LOGIN", "WORKFLOWS IDENTITY"];
            if wide {
                headers.extend(["ARGOCD PASSWORD", "WORKFLOWS ROLE", "SERVICE ACCOUNT"]);
            }
            headers.push("PROBLEMS");
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|user| {
                    let mut row = vec![
                        user.name.clone(),
                        user.role.clone().unwrap_or_default(),
                        yes_no(user.argocd_login),
                        yes_no(user.workflows_identity),
                    ];
                    if wide {
                        row.extend([
                            yes_no(user.argocd_password),
                            user.workflows_role.clone().unwrap_or_default(),
                            user.service_account.clone().unwrap_or_default(),
                        ]);
                    }
                    row.push(user.problems.join("; "));
                    row
                })
                .collect();
            output::print_table(&headers, &rows);
        }
        ListFormat::Name => {
            for user in &users {
                println!("user/{}", user.name);
            }
        }
        format => output::print_structured(&users, format)?,
    }
    Ok(())
}

/// The names of the users in the cluster (either half), sorted: shell
/// completion's candidates.
pub async fn names(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    Ok(read_states(client).await?.into_keys().collect())
}

/// Every user found in either half, with what does not match between them.
async fn read_states(client: &kube::Client) -> anyhow::Result<BTreeMap<String, UserState>> {
    let argocd = read_argocd(client).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let selector = ListParams::default().labels(USER_LABEL);
    let (accounts, bindings) = tokio::join!(accounts.list(&selector), bindings.list(&selector));
    let accounts = accounts.context("cannot list the users' service accounts")?;
    let bindings = bindings.context("cannot list the users' role bindings")?;

    let mut states: BTreeMap<String, UserState> = BTreeMap::new();
    for (key, value) in &argocd.config {
        if let Some(name) = key.strip_prefix("accounts.").filter(|n| !n.contains('.'))
            && !RESERVED.contains(&name)
        {
            let state = state_of(&mut states, name);
            state.argocd_login = value.split(',').any(|c| c.trim() == "login");
        }
    }
    for key in &argocd.secret_keys {
        if let Some(name) = key
            .strip_prefix("accounts.")
            .and_then(|k| k.strip_suffix(".password"))
        {
            let state = state_of(&mut states, name);
            state.argocd_password = true;
        }
    }
    for (key, value) in &argocd.rbac {
        if let Some(name) = key
            .strip_prefix("policy.phd-user-")
            .and_then(|k| k.strip_suffix(".csv"))
        {
            let state = state_of(&mut states, name);
            state.role = value
                .split([',', '\n'])
                .map(str::trim)
                .find_map(|field| field.strip_prefix("role:phd-"))
                .map(str::to_owned);
        }
    }
    for account in accounts.items {
        if let Some(name) = account
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(USER_LABEL))
        {
            let state = state_of(&mut states, name);
            state.workflows_identity = true;
        }
    }
    for binding in bindings.items {
        if let Some(name) = binding
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(USER_LABEL))
        {
            let state = state_of(&mut states, name);
            state.workflows_role = binding
                .role_ref
                .name
                .strip_prefix("phd-argo-")
                .map(str::to_owned);
        }
    }
    for state in states.values_mut() {
        if state.workflows_identity {
            state.service_account = Some(format!(
                "{WORKFLOWS_NAMESPACE}/{}",
                UserObjects::new(&state.name).service_account
            ));
        }
        if !state.argocd_login {
            state.problems.push("no Argo CD login".into());
        } else if !state.argocd_password {
            state.problems.push("no Argo CD password".into());
        }
        if !state.workflows_identity {
            state.problems.push("no Argo Workflows identity".into());
        }
        match (&state.role, &state.workflows_role) {
            (None, None) if state.workflows_identity => state
                .problems
                .push("no Argo CD role and no Argo Workflows role (no ClusterRoleBinding)".into()),
            (None, _) => state.problems.push("no Argo CD role".into()),
            (Some(_), None) => state.problems.push("no Argo Workflows role".into()),
            (Some(a), Some(b)) if a != b => state
                .problems
                .push(format!("Argo CD role {a} but Argo Workflows role {b}")),
            _ => {}
        }
    }
    Ok(states)
}

fn state_of<'a>(states: &'a mut BTreeMap<String, UserState>, name: &str) -> &'a mut UserState {
    states.entry(name.to_owned()).or_insert_with(|| UserState {
        name: name.to_owned(),
        ..Default::default()
    })
}

/// A user's password hash in argocd-secret, and the Secret's resourceVersion
/// it was read at.
struct StoredPassword {
    hash: Option<String>,
    resource_version: Option<String>,
}

async fn current_password_hash(
    client: &kube::Client,
    user: &UserObjects,
) -> anyhow::Result<StoredPassword> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let secret = secrets
        .get_opt(ARGOCD_SECRET)
        .await
        .context("cannot read argocd-secret")?;
    let resource_version = secret
        .as_ref()
        .and_then(|s| s.metadata.resource_version.clone());
    Ok(StoredPassword {
        hash: secret
            .and_then(|s| s.data)
            .and_then(|data| data.get(&user.password_key).cloned())
            .and_then(|hash| String::from_utf8(hash.0).ok()),
        resource_version,
    })
}

enum StoreError {
    /// argocd-secret changed since `resource_version` was read.
    Conflict,
    Other(anyhow::Error),
}

/// Stores a password's bcrypt `hash`; with `resource_version`, only if
/// argocd-secret is still at that version (server-side apply honours it as a
/// precondition).
async fn store_password(
    client: &kube::Client,
    user: &UserObjects,
    hash: &str,
    resource_version: Option<&str>,
) -> Result<(), StoreError> {
    let secret =
        phd_common::argo::password_secret(&user.name, hash, resource_version.map(str::to_owned));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    match secrets
        .patch(ARGOCD_SECRET, &user.apply_params(), &Patch::Apply(&secret))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 && resource_version.is_some() => {
            Err(StoreError::Conflict)
        }
        Err(error) => Err(StoreError::Other(
            anyhow::Error::new(error).context("cannot store the password in argocd-secret"),
        )),
    }
}

async fn ensure_workflows_identity(
    client: &kube::Client,
    user: &UserObjects,
    role: Role,
) -> anyhow::Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    let account = ServiceAccount {
        metadata: meta(
            &user.service_account,
            Some(WORKFLOWS_NAMESPACE),
            Some(user.labels(Some(role))),
        ),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    accounts
        .patch(
            &user.service_account,
            &user.apply_params(),
            &Patch::Apply(&account),
        )
        .await
        .context("cannot create the user's ServiceAccount")?;
    let mut token_meta = meta(
        &user.token_secret,
        Some(WORKFLOWS_NAMESPACE),
        Some(user.labels(None)),
    );
    token_meta.annotations = Some(BTreeMap::from([(
        "kubernetes.io/service-account.name".to_owned(),
        user.service_account.clone(),
    )]));
    let token = Secret {
        metadata: token_meta,
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), WORKFLOWS_NAMESPACE);
    secrets
        .patch(
            &user.token_secret,
            &user.apply_params(),
            &Patch::Apply(&token),
        )
        .await
        .context("cannot create the user's token Secret")?;
    Ok(())
}

/// The role in Argo CD's policy and in Kubernetes RBAC. A binding's roleRef
/// cannot change, so a binding to another role is replaced.
/// Rewrites who may run Workflows in each instance namespace
/// ([`phd_common::rbac`]) after a user's role changed.
async fn bind_developers(client: &kube::Client) -> anyhow::Result<()> {
    let count = phd_common::rbac::bind_developers_everywhere(client, WORKFLOWS_NAMESPACE)
        .await
        .context("cannot update who may run Workflows in the instance namespaces")?;
    output::debug(format!(
        "developers' Workflow access updated in {count} instance namespaces"
    ));
    Ok(())
}

async fn ensure_role(client: &kube::Client, user: &UserObjects, role: Role) -> anyhow::Result<()> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let policy = format!("g, {}, {}\n", user.name, role.argocd_role());
    config_maps
        .patch(
            "argocd-rbac-cm",
            &user.apply_params(),
            &Patch::Apply(config_map(
                "argocd-rbac-cm",
                BTreeMap::from([(user.policy_key.clone(), policy)]),
            )),
        )
        .await
        .context("cannot set the user's role in argocd-rbac-cm")?;

    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    if let Some(existing) = bindings.get_opt(&user.binding).await?
        && existing.role_ref.name != role.cluster_role()
    {
        bindings
            .delete(&user.binding, &DeleteParams::default())
            .await
            .context("cannot replace the user's role binding")?;
    }
    let binding = ClusterRoleBinding {
        metadata: meta(&user.binding, None, Some(user.labels(Some(role)))),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.cluster_role(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: user.service_account.clone(),
            namespace: Some(WORKFLOWS_NAMESPACE.into()),
            ..Default::default()
        }]),
    };
    bindings
        .patch(&user.binding, &user.apply_params(), &Patch::Apply(&binding))
        .await
        .context("cannot bind the user's role")?;
    Ok(())
}

/// Removes the user's keys with JSON merge patches (`null` deletes one key and
/// leaves the others); a key that is already gone is a no-op.
/// Removes every key of the user left in Argo CD's objects, whoever wrote
/// it: `accounts.<name>` and every `accounts.<name>.*` (argocd-server writes
/// `.tokens` when a token is generated and `.password`/`.passwordMtime` when
/// the password is changed in the UI; the original tool wrote others) in
/// argocd-cm and argocd-secret, and the user's policy in argocd-rbac-cm.
/// Each removal is a merge patch of exactly the keys found.
async fn remove_leftover_keys(client: &kube::Client, user: &UserObjects) -> anyhow::Result<()> {
    let removal = |keys: &[String]| {
        let data: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|key| (key.clone(), serde_json::Value::Null))
            .collect();
        Patch::Merge(serde_json::json!({ "data": data }))
    };
    let prefix = format!("{}.", user.account_key);
    let of_user = |key: &String| *key == user.account_key || key.starts_with(&prefix);
    let params = PatchParams::default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let config = config_maps
        .get_opt("argocd-cm")
        .await
        .context("cannot read argocd-cm")?;
    let keys: Vec<String> = config
        .and_then(|c| c.data)
        .map(|data| data.into_keys().filter(of_user).collect())
        .unwrap_or_default();
    if !keys.is_empty() {
        config_maps
            .patch("argocd-cm", &params, &removal(&keys))
            .await
            .context("cannot remove the user from argocd-cm")?;
    }
    config_maps
        .patch(
            "argocd-rbac-cm",
            &params,
            &removal(std::slice::from_ref(&user.policy_key)),
        )
        .await
        .context("cannot remove the user from argocd-rbac-cm")?;
    let secret = secrets
        .get_opt(ARGOCD_SECRET)
        .await
        .context("cannot read argocd-secret")?;
    let keys: Vec<String> = secret
        .and_then(|s| s.data)
        .map(|data| data.into_keys().filter(of_user).collect())
        .unwrap_or_default();
    if !keys.is_empty() {
        secrets
            .patch(ARGOCD_SECRET, &params, &removal(&keys))
            .await
            .context("cannot remove the user's keys from argocd-secret")?;
    }
    Ok(())
}

async fn wait_for_token(client: &kube::Client, user: &UserObjects) -> anyhow::Result<String> {
    let (token, _) =
        phd_common::rbac::service_account_token(client, WORKFLOWS_NAMESPACE, &user.token_secret)
            .await?;
    String::from_utf8(token.0).context("the token is not text")
}
