//! The OpenTofu modules under `infrastructure/modules/`, checked offline:
//! `tofu fmt`, checkov (with the accepted findings of
//! `infrastructure/checkov-skips.yaml`), and the references between the
//! files, parsed as HCL: every `var.`, `local.`, `module.`, resource and data
//! reference names something declared, and the root module that
//! `kubectl phd cluster create` writes passes only inputs the module
//! declares, all of its required ones, and reads only outputs it has.
//!
//! `tofu validate` needs the provider plugins, which are not served here. The
//! DigitalOcean module is checked against the provider's real schema instead
//! (`tofu providers schema -json` of 2.99.1, kept outside the repository in
//! `../shared/provider-schemas/` or `$PHD_PROVIDER_SCHEMAS`; skipped with a
//! message when absent): argument and block names, required and
//! computed-only arguments. See docs/infrastructure.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use hcl_edit::expr::{Expression, Traversal, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::visit::{Visit, visit_expr};
use phd_testkit::tool;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PROVIDERS: [&str; 2] = ["digitalocean", "aws"];

fn infrastructure() -> PathBuf {
    Path::new(WORKSPACE).join("infrastructure")
}

fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()))
}

/// What a module declares and what its expressions refer to.
#[derive(Default, Debug)]
struct Module {
    variables: BTreeMap<String, bool>,
    locals: BTreeSet<String>,
    outputs: BTreeSet<String>,
    resources: BTreeSet<String>,
    data: BTreeSet<String>,
    modules: BTreeMap<String, Block>,
    references: BTreeSet<Reference>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Reference {
    Variable(String),
    Local(String),
    ModuleOutput(String, String),
    Resource(String),
    Data(String),
    /// `import { to = module.M.TYPE.NAME[...] }`: a resource of child module M.
    Import(String, String),
}

fn label(block: &Block, index: usize) -> String {
    block
        .labels
        .get(index)
        .map(|label| label.as_str().to_owned())
        .unwrap_or_default()
}

fn attribute_names(traversal: &Traversal) -> Vec<String> {
    traversal
        .operators
        .iter()
        .map_while(|operator| match operator.value() {
            TraversalOperator::GetAttr(name) => Some(name.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[derive(Default)]
struct References(BTreeSet<Reference>);

impl Visit for References {
    fn visit_block(&mut self, block: &Block) {
        if block.ident.as_str() == "import" {
            // `to` names a resource, possibly inside a module, not a value.
            if let Some(Expression::Traversal(to)) =
                block.body.get_attribute("to").map(|a| &a.value)
                && let Expression::Variable(root) = &to.expr
                && root.as_str() == "module"
                && let [module, kind, name, ..] = attribute_names(to).as_slice()
            {
                self.0
                    .insert(Reference::Import(module.clone(), format!("{kind}.{name}")));
            }
            if let Some(id) = block.body.get_attribute("id") {
                self.visit_expr(&id.value);
            }
            return;
        }
        hcl_edit::visit::visit_block(self, block);
    }

    fn visit_expr(&mut self, expr: &Expression) {
        if let Expression::Traversal(traversal) = expr
            && let Expression::Variable(root) = &traversal.expr
        {
            let names = attribute_names(traversal);
            let root = root.as_str();
            let reference = match (root, names.as_slice()) {
                ("var", [name, ..]) => Some(Reference::Variable(name.clone())),
                ("local", [name, ..]) => Some(Reference::Local(name.clone())),
                ("module", [module, output, ..]) => {
                    Some(Reference::ModuleOutput(module.clone(), output.clone()))
                }
                ("data", [kind, name, ..]) => Some(Reference::Data(format!("{kind}.{name}"))),
                (kind, [name, ..])
                    if ["aws_", "digitalocean_", "random_", "terraform_"]
                        .iter()
                        .any(|prefix| kind.starts_with(prefix)) =>
                {
                    Some(Reference::Resource(format!("{kind}.{name}")))
                }
                _ => None,
            };
            self.0.extend(reference);
        }
        visit_expr(self, expr);
    }
}

fn parse_module(dir: &Path) -> Module {
    let mut module = Module::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read .tf file");
        let body: Body = text
            .parse()
            .unwrap_or_else(|error| panic!("{} is not valid HCL: {error}", file.display()));
        let mut references = References::default();
        references.visit_body(&body);
        module.references.extend(references.0);
        for block in body.blocks() {
            match block.ident.as_str() {
                "variable" => {
                    let required = !block.body.has_attribute("default");
                    module.variables.insert(label(block, 0), required);
                }
                "locals" => {
                    for attribute in block.body.attributes() {
                        module.locals.insert(attribute.key.as_str().to_owned());
                    }
                }
                "output" => {
                    module.outputs.insert(label(block, 0));
                }
                "resource" => {
                    module
                        .resources
                        .insert(format!("{}.{}", label(block, 0), label(block, 1)));
                }
                "data" => {
                    module
                        .data
                        .insert(format!("{}.{}", label(block, 0), label(block, 1)));
                }
                "module" => {
                    module.modules.insert(label(block, 0), block.clone());
                }
                _ => {}
            }
        }
    }
    module
}

/// References in `module` to things it does not declare; module outputs are
/// checked against `children`.
fn dangling(module: &Module, children: &BTreeMap<String, Module>) -> Vec<String> {
    module
        .references
        .iter()
        .filter(|reference| match reference {
            Reference::Variable(name) => !module.variables.contains_key(name),
            Reference::Local(name) => !module.locals.contains(name),
            Reference::Resource(name) => !module.resources.contains(name),
            Reference::Data(name) => !module.data.contains(name),
            Reference::ModuleOutput(child, output) => !children
                .get(child)
                .is_some_and(|child| child.outputs.contains(output)),
            Reference::Import(child, resource) => !children
                .get(child)
                .is_some_and(|child| child.resources.contains(resource)),
        })
        .map(|reference| format!("{reference:?}"))
        .collect()
}

#[test]
fn modules_declare_everything_they_refer_to() {
    for provider in PROVIDERS {
        let module = parse_module(&infrastructure().join("modules").join(provider));
        let missing = dangling(&module, &BTreeMap::new());
        assert!(
            missing.is_empty(),
            "{provider}: undeclared references {missing:?}"
        );
        let unused: Vec<&String> = module
            .variables
            .keys()
            .filter(|name| {
                !module
                    .references
                    .contains(&Reference::Variable((*name).clone()))
            })
            .collect();
        assert!(unused.is_empty(), "{provider}: unused variables {unused:?}");
    }
}

#[test]
fn the_reference_check_finds_an_undeclared_variable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("main.tf"),
        "variable \"a\" {}\nlocals {\n  b = \"${var.a}-${var.c}\"\n}\noutput \"o\" {\n  value = [for x in [local.b] : aws_s3_bucket.d.id]\n}\n",
    )
    .expect("write");
    let module = parse_module(dir.path());
    assert_eq!(
        dangling(&module, &BTreeMap::new()),
        [
            "Variable(\"c\")".to_owned(),
            "Resource(\"aws_s3_bucket.d\")".to_owned()
        ]
    );
}

/// Every module shares the contract the generated root module relies on.
#[test]
fn modules_have_the_same_contract() {
    let contract_inputs = [
        "name",
        "environment",
        "region",
        "domain",
        "kubernetes_version",
        "node_size",
        "node_count_min",
        "node_count_max",
    ];
    let contract_outputs = [
        "kubeconfig",
        "cluster_name",
        "mysql_host",
        "mysql_port",
        "mysql_root_user",
        "mysql_root_password",
        "mongodb_host",
        "mongodb_port",
    ];
    for provider in PROVIDERS {
        let module = parse_module(&infrastructure().join("modules").join(provider));
        for input in contract_inputs {
            assert!(
                module.variables.contains_key(input),
                "{provider} lacks variable {input}"
            );
        }
        let required: Vec<&String> = module
            .variables
            .iter()
            .filter(|(_, required)| **required)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            required,
            ["domain", "environment", "name", "region"],
            "{provider}: only the four names are required"
        );
        for output in contract_outputs {
            assert!(
                module.outputs.contains(output),
                "{provider} lacks output {output}"
            );
        }
    }
}

/// `cluster create` for `provider`, its infrastructure/ parsed with the
/// module it calls.
fn generated_root(provider: &str) -> (tempfile::TempDir, Module) {
    let home = tempfile::tempdir().expect("temporary directory");
    let output = Command::cargo_bin("kubectl-phd")
        .expect("binary")
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("PATH", home.path())
        .args([
            "cluster",
            "create",
            "Acme",
            "acme.example.com",
            "--no-git",
            "--provider",
            provider,
        ])
        .output()
        .expect("run kubectl-phd");
    assert!(
        output.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let root = parse_module(&home.path().join("phd-acme-cluster/infrastructure"));
    (home, root)
}

#[test]
fn generated_root_modules_match_the_modules() {
    for provider in PROVIDERS {
        let module = parse_module(&infrastructure().join("modules").join(provider));
        let (_home, root) = generated_root(provider);
        let call = root
            .modules
            .get("cluster")
            .unwrap_or_else(|| panic!("{provider}: the root has no module \"cluster\""));
        let source = call
            .body
            .get_attribute("source")
            .and_then(|source| source.value.as_str().map(str::to_owned))
            .expect("module source");
        assert!(
            source.contains(&format!("//infrastructure/modules/{provider}?ref=v")),
            "{provider}: source {source}"
        );
        let passed: BTreeSet<String> = call
            .body
            .attributes()
            .map(|attribute| attribute.key.as_str().to_owned())
            .filter(|key| !["source", "version", "providers", "depends_on"].contains(&key.as_str()))
            .collect();
        let unknown: Vec<&String> = passed
            .iter()
            .filter(|input| !module.variables.contains_key(*input))
            .collect();
        assert!(unknown.is_empty(), "{provider}: unknown inputs {unknown:?}");
        let missing: Vec<&String> = module
            .variables
            .iter()
            .filter(|(name, required)| **required && !passed.contains(*name))
            .map(|(name, _)| name)
            .collect();
        assert!(missing.is_empty(), "{provider}: missing inputs {missing:?}");
        assert!(
            root.references
                .iter()
                .any(|reference| matches!(reference, Reference::Import(..))),
            "{provider}: the root imports the state bucket"
        );
        let children = BTreeMap::from([("cluster".to_owned(), module)]);
        let dangling = dangling(&root, &children);
        assert!(
            dangling.is_empty(),
            "{provider}: root refers to {dangling:?}"
        );
    }
}

#[test]
fn modules_are_formatted() {
    let tofu = tool("tofu");
    let output = run(
        &tofu,
        &["fmt", "-check", "-diff", "-recursive"],
        &infrastructure(),
    );
    assert!(
        output.status.success(),
        "{} fmt -check: {}{}",
        tofu.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn checkov_finds_nothing_beyond_the_accepted_findings() {
    let checkov = tool("checkov");
    let skips = infrastructure().join("checkov-skips.yaml");
    let text = std::fs::read_to_string(&skips).expect("checkov-skips.yaml");
    let accepted: Vec<serde_json::Value> = serde_saphyr::from_str::<serde_json::Value>(&text)
        .expect("skips parse")["accepted"]
        .as_array()
        .expect("accepted: a list")
        .clone();
    let mut ids = Vec::new();
    for finding in &accepted {
        let id = finding["id"]
            .as_str()
            .expect("each accepted finding has an id");
        let reason = finding["reason"].as_str().unwrap_or_default();
        assert!(reason.len() > 20, "{id} needs a reason");
        ids.push(id.to_owned());
    }
    let output = run(
        &checkov,
        &[
            "--directory",
            ".",
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "--output",
            "json",
            "--skip-download",
            "--skip-check",
            &ids.join(","),
        ],
        &infrastructure(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "checkov printed no JSON ({error}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let reports = match report {
        serde_json::Value::Array(reports) => reports,
        single => vec![single],
    };
    let mut failed = Vec::new();
    let mut passed = 0;
    for report in &reports {
        passed += report["summary"]["passed"].as_u64().unwrap_or_default();
        for check in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            failed.push(format!(
                "{} {} ({}:{})",
                check["check_id"].as_str().unwrap_or("?"),
                check["resource"].as_str().unwrap_or("?"),
                check["file_path"].as_str().unwrap_or("?"),
                check["file_line_range"][0]
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert!(
        passed > 50,
        "checkov passed only {passed} checks: did it scan?"
    );
    assert!(output.status.success(), "checkov exit {:?}", output.status);
}

/// The real schema of a provider, as `tofu providers schema -json` prints it,
/// from `$PHD_PROVIDER_SCHEMAS` or `../shared/provider-schemas/` next to the
/// workspace (data kept outside the repository). `None` with a message when
/// it is not there: the caller skips, loudly.
fn provider_schema(file: &str, provider: &str) -> Option<serde_json::Value> {
    let dir = std::env::var_os("PHD_PROVIDER_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(WORKSPACE).join("../shared/provider-schemas"));
    let path = dir.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED: {} is not there (set PHD_PROVIDER_SCHEMAS to the folder of `tofu providers schema -json` files); the {provider} module was NOT checked against its provider's schema",
            path.display()
        );
        return None;
    };
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    let providers = schema["provider_schemas"]
        .as_object()
        .expect("provider_schemas");
    let (_, found) = providers
        .iter()
        .find(|(name, _)| name.ends_with(&format!("/{provider}")))
        .expect("the provider in its schema file");
    Some(found.clone())
}

/// What `tofu validate` checks of one block against its schema: every
/// argument exists and is not computed-only, every nested block type
/// exists, every required argument and block is there.
fn check_against_schema(
    body: &Body,
    schema: &serde_json::Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    const META: [&str; 5] = ["count", "for_each", "depends_on", "provider", "lifecycle"];
    let attributes = schema["attributes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let block_types = schema["block_types"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for attribute in body.attributes() {
        let name = attribute.key.as_str();
        if META.contains(&name) {
            continue;
        }
        match attributes.get(name) {
            None => errors.push(format!("{path}: unsupported argument {name:?}")),
            Some(a) if a["computed"] == true && a["optional"] != true && a["required"] != true => {
                errors.push(format!(
                    "{path}: {name:?} is computed by the provider and cannot be set"
                ))
            }
            Some(_) => {}
        }
    }
    for block in body.blocks() {
        let name = block.ident.as_str();
        if META.contains(&name) || name == "dynamic" {
            continue;
        }
        match block_types.get(name) {
            None => errors.push(format!("{path}: unsupported block type {name:?}")),
            Some(nested) => check_against_schema(
                &block.body,
                &nested["block"],
                &format!("{path}.{name}"),
                errors,
            ),
        }
    }
    for (name, a) in &attributes {
        if a["required"] == true && !body.has_attribute(name) {
            errors.push(format!("{path}: the argument {name:?} is required"));
        }
    }
    for (name, nested) in &block_types {
        let present = body.blocks().any(|b| b.ident.as_str() == name);
        if nested["min_items"].as_u64().unwrap_or(0) > 0 && !present {
            errors.push(format!("{path}: at least one {name:?} block is required"));
        }
    }
}

/// Every resource and data block of `dir` whose type starts with `prefix`, checked.
fn schema_errors(dir: &Path, provider: &serde_json::Value, prefix: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("module dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    for file in files {
        let body: Body = std::fs::read_to_string(&file)
            .expect("read")
            .parse()
            .expect("HCL");
        for block in body.blocks() {
            let kind = match block.ident.as_str() {
                "resource" => "resource_schemas",
                "data" => "data_source_schemas",
                _ => continue,
            };
            let type_name = label(block, 0);
            if !type_name.starts_with(prefix) {
                continue;
            }
            let path = format!(
                "{}: {} {type_name}.{}",
                file.file_name().unwrap_or_default().to_string_lossy(),
                block.ident.as_str(),
                label(block, 1)
            );
            match provider[kind].get(&type_name) {
                None => errors.push(format!("{path}: the provider has no such type")),
                Some(schema) => {
                    check_against_schema(&block.body, &schema["block"], &path, &mut errors)
                }
            }
        }
    }
    errors
}

/// Issue 17 (part): the DigitalOcean module against the real schema of the
/// provider release `~> 2.0` resolves to (2.99.1): the checks of `tofu
/// validate` that need only the schema. A broken copy shows each kind of
/// mistake is caught.
#[test]
fn digitalocean_module_matches_the_provider_schema() {
    let Some(provider) = provider_schema("digitalocean-2.99.1.json", "digitalocean") else {
        return;
    };
    let module = infrastructure().join("modules/digitalocean");
    let errors = schema_errors(&module, &provider, "digitalocean_");
    assert!(errors.is_empty(), "{errors:#?}");

    let broken = tempfile::tempdir().expect("dir");
    std::fs::write(
        broken.path().join("main.tf"),
        r#"resource "digitalocean_database_mysql_config" "a" {
  cluster_id      = "x"
  require_primary = false
}
resource "digitalocean_database_mysql_config" "b" {
  sql_require_primary_key = false
}
resource "digitalocean_vpc" "c" {
  name   = "x"
  region = "nyc3"
  urn    = "do:vpc:1"
}
resource "digitalocean_kubernetes_cluster" "d" {
  name    = "x"
  region  = "nyc3"
  version = "1.34"
}
resource "digitalocean_spaces_bucket" "e" {
  name = "x"
  versioning_enabled = true
}
"#,
    )
    .expect("write");
    let errors = schema_errors(broken.path(), &provider, "digitalocean_").join("\n");
    for expected in [
        "unsupported argument \"require_primary\"",
        "the argument \"cluster_id\" is required",
        "\"urn\" is computed by the provider and cannot be set",
        "at least one \"node_pool\" block is required",
        "unsupported argument \"versioning_enabled\"",
    ] {
        assert!(errors.contains(expected), "{expected} in:\n{errors}");
    }
}

/// Open edX on DigitalOcean's managed MySQL: edx-platform's migrations create
/// tables without a primary key, which that service refuses by default
/// (`sql_require_primary_key`); the module turns it off for its cluster.
#[test]
fn digitalocean_mysql_accepts_open_edx_migrations() {
    let text = std::fs::read_to_string(infrastructure().join("modules/digitalocean/main.tf"))
        .expect("main.tf");
    let body: Body = text.parse().expect("HCL");
    let config = body
        .blocks()
        .find(|b| {
            b.ident.as_str() == "resource" && label(b, 0) == "digitalocean_database_mysql_config"
        })
        .expect("a digitalocean_database_mysql_config resource");
    let value = |name: &str| {
        config
            .body
            .get_attribute(name)
            .map(|a| a.value.to_string().trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(value("sql_require_primary_key"), "false");
    assert_eq!(
        value("cluster_id"),
        "digitalocean_database_cluster.mysql.id"
    );
}

/// Open edX's volumes on EKS: Tutor's Meilisearch and Redis claims need a
/// storage driver, which EKS does not install. The AWS module installs the EBS
/// CSI driver add-on, whose controller's service account gets a role (EKS Pod
/// Identity, with its agent add-on) that holds AWS's managed policy for it.
/// The default gp3 StorageClass is in the cluster repository (tested in
/// argo_install.rs).
#[test]
fn aws_module_installs_the_volume_driver_open_edx_needs() {
    let text =
        std::fs::read_to_string(infrastructure().join("modules/aws/eks.tf")).expect("eks.tf");
    let body: Body = text.parse().expect("HCL");
    let block = |kind: &str, name: &str| {
        body.blocks()
            .find(|b| {
                ["resource", "data"].contains(&b.ident.as_str())
                    && label(b, 0) == kind
                    && label(b, 1) == name
            })
            .unwrap_or_else(|| panic!("no {kind}.{name} in eks.tf"))
            .clone()
    };
    let value = |block: &Block, name: &str| {
        block
            .body
            .get_attribute(name)
            .map(|a| a.value.to_string().trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let addons: Vec<(String, Block)> = body
        .blocks()
        .filter(|b| b.ident.as_str() == "resource" && label(b, 0) == "aws_eks_addon")
        .map(|b| (value(b, "addon_name"), b.clone()))
        .collect();
    let addon = |name: &str| {
        addons
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("no aws_eks_addon {name}"))
    };
    let ebs = addon("aws-ebs-csi-driver");
    addon("eks-pod-identity-agent");
    let association = ebs
        .body
        .blocks()
        .find(|b| b.ident.as_str() == "pod_identity_association")
        .expect("a pod_identity_association");
    assert_eq!(
        value(association, "service_account"),
        "ebs-csi-controller-sa"
    );
    let role_ref = value(association, "role_arn");
    let role_name = role_ref
        .strip_prefix("aws_iam_role.")
        .and_then(|r| r.strip_suffix(".arn"))
        .unwrap_or_else(|| panic!("role_arn {role_ref}"));
    let role = block("aws_iam_role", role_name);
    let trust = value(&role, "assume_role_policy");
    let trust_name = trust
        .strip_prefix("data.aws_iam_policy_document.")
        .and_then(|t| t.strip_suffix(".json"))
        .unwrap_or_else(|| panic!("assume_role_policy {trust}"));
    let document = block("aws_iam_policy_document", trust_name)
        .body
        .to_string();
    assert!(document.contains("pods.eks.amazonaws.com"), "{document}");
    let attached = body.blocks().any(|b| {
        b.ident.as_str() == "resource"
            && label(b, 0) == "aws_iam_role_policy_attachment"
            && value(b, "role") == format!("aws_iam_role.{role_name}.name")
            && value(b, "policy_arn").ends_with(":policy/service-role/AmazonEBSCSIDriverPolicy")
    });
    assert!(attached, "AmazonEBSCSIDriverPolicy attached to {role_name}");
}

/// Each output block of the `.tf` files in `dir`: its name and whether it is
/// marked sensitive.
fn outputs(dir: &Path) -> BTreeMap<String, bool> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read module") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "tf") {
            continue;
        }
        let body: Body = std::fs::read_to_string(&path)
            .expect("read")
            .parse()
            .expect("HCL");
        for block in body.blocks().filter(|b| b.ident.as_str() == "output") {
            let sensitive = block
                .body
                .get_attribute("sensitive")
                .is_some_and(|a| a.value.to_string().trim() == "true");
            found.insert(label(block, 0), sensitive);
        }
    }
    found
}

/// What the module tells the operator (the database hosts and the MongoDB
/// cluster ID the generated README asks to set as secrets, the buckets, the
/// key), the generated root module tells too: every module output is a root
/// output, secrets still marked sensitive. `kubectl phd infra output NAME`
/// reads only the root's.
#[test]
fn generated_root_modules_export_every_module_output() {
    for provider in PROVIDERS {
        let module = outputs(&infrastructure().join("modules").join(provider));
        let (home, _root) = generated_root(provider);
        let root = outputs(&home.path().join("phd-acme-cluster/infrastructure"));
        assert_eq!(root, module, "{provider}: root outputs (name → sensitive)");
    }
}

/// Every `kubectl phd infra output NAME` the generated README tells the
/// operator to run names an output of the generated root module.
#[test]
fn the_generated_readme_names_only_outputs_that_exist() {
    for provider in PROVIDERS {
        let (home, _root) = generated_root(provider);
        let repo = home.path().join("phd-acme-cluster");
        let root = outputs(&repo.join("infrastructure"));
        let readme = std::fs::read_to_string(repo.join("README.md")).expect("README");
        let named: Vec<&str> = readme
            .split("infra output ")
            .skip(1)
            .map(|rest| {
                rest.trim_start_matches("-raw ")
                    .split(['`', ' ', ')'])
                    .next()
                    .unwrap_or_default()
            })
            .collect();
        assert!(!named.is_empty(), "{provider}: the README names no output");
        for name in named {
            assert!(
                root.contains_key(name),
                "{provider}: README names output {name:?}; outputs: {:?}",
                root.keys()
            );
        }
    }
}
