//! The OpenTofu modules under `infrastructure/modules/`, checked offline:
//! `tofu fmt`, checkov (with the accepted findings of
//! `infrastructure/checkov-skips.yaml`), the references between the files
//! (parsed as HCL: every `var.`, `local.`, `module.`, resource and data
//! reference names something declared, and the root module that
//! `kubectl phd cluster create` writes passes only inputs the module
//! declares, all of its required ones, and reads only outputs it has), and
//! `tofu init` + `tofu validate` + `tofu test` of the modules and generated
//! roots against the providers' schemas.
//!
//! The real provider plugins are not served here; `tofu` runs against
//! schema-serving stand-ins of them (`phd_testkit::tofu`,
//! `tests/providerschema`): DigitalOcean's and random's real schemas from
//! `$PHD_PROVIDER_SCHEMAS` or `../shared/provider-schemas/` (skipped with a
//! message when absent), AWS's (and random's, when the real one is absent)
//! rebuilt from CDK Terrain's npm packages by `scripts/install-test-tools`.
//! See docs/infrastructure.md, "What is validated".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use hcl_edit::expr::{Expression, Traversal, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::visit::{Visit, visit_expr};
use phd_testkit::tofu::{Diagnostic, ProviderMirror};
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
    // (check id, resource) pairs: a check is accepted for the resources
    // named only, never everywhere.
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for finding in &accepted {
        let id = finding["id"]
            .as_str()
            .expect("each accepted finding has an id");
        let reason = finding["reason"].as_str().unwrap_or_default();
        assert!(reason.len() > 20, "{id} needs a reason");
        let resources = finding["resource"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} names no resource"));
        for resource in resources.split(',') {
            pairs.insert((id.to_owned(), resource.trim().to_owned()));
        }
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
    let mut matched: BTreeSet<(String, String)> = BTreeSet::new();
    let mut passed = 0;
    for report in &reports {
        passed += report["summary"]["passed"].as_u64().unwrap_or_default();
        for check in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // `aws_s3_bucket.state[0]`: a counted resource, named without its index.
            let resource = check["resource"].as_str().unwrap_or("?");
            let resource = resource.split('[').next().unwrap_or(resource);
            let pair = (
                check["check_id"].as_str().unwrap_or("?").to_owned(),
                resource.to_owned(),
            );
            if pairs.contains(&pair) {
                matched.insert(pair);
                continue;
            }
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
        "checkov failed checks not accepted for their resource:\n{}",
        failed.join("\n")
    );
    let stale: Vec<&(String, String)> = pairs.difference(&matched).collect();
    assert!(
        stale.is_empty(),
        "accepted findings checkov no longer reports (remove them): {stale:?}"
    );
    assert!(
        passed > 50,
        "checkov passed only {passed} checks: did it scan?"
    );
    // checkov exits 1 when it reports findings, accepted ones included.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "checkov exit {:?}",
        output.status
    );
}

/// The modules' providers, with a schema-serving stand-in of each
/// (phd_testkit::tofu); `None`, with a message saying what is missing and that
/// the module was NOT validated, when a schema or the stand-in is absent.
fn provider_mirror(provider: &str) -> Option<ProviderMirror> {
    let providers: &[&str] = match provider {
        "aws" => &["aws", "random"],
        _ => &["digitalocean"],
    };
    match ProviderMirror::new(providers) {
        Ok(mirror) => {
            for schema in &mirror.providers {
                eprintln!(
                    "{provider}: {} {} from {} ({:?})",
                    schema.source,
                    schema.version,
                    schema.path.display(),
                    schema.origin
                );
            }
            Some(mirror)
        }
        Err(error) => {
            phd_testkit::skipped(&format!(
                "the {provider} module was NOT validated by tofu: {error:#}"
            ));
            None
        }
    }
}

/// A copy of module `provider` (tofu init writes into the directory it runs in).
fn module_copy(provider: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("temporary directory");
    let from = infrastructure().join("modules").join(provider);
    for entry in walk(&from) {
        let to = copy.path().join(entry.strip_prefix(&from).expect("inside"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &to).expect("copy");
    }
    copy
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if !path.ends_with(".terraform") {
                files.extend(walk(&path));
            }
        } else {
            files.push(path);
        }
    }
    files
}

fn errors(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .filter(|d| d.severity == "error")
        .map(ToString::to_string)
        .collect()
}

/// Issue 17: `tofu init` + `tofu validate` of both modules and of the root
/// module `cluster create` writes for each provider (its module source
/// pointed at the module in this checkout), against the providers' schemas.
#[test]
fn modules_and_generated_roots_pass_tofu_validate() {
    for provider in PROVIDERS {
        let Some(mirror) = provider_mirror(provider) else {
            continue;
        };
        let module = module_copy(provider);
        let diagnostics = mirror.validate(module.path());
        assert!(
            errors(&diagnostics).is_empty(),
            "{provider} module: {:#?}",
            errors(&diagnostics)
        );
        for warning in diagnostics.iter().filter(|d| d.severity != "error") {
            eprintln!("{provider} module: {warning}");
        }

        let (home, _) = generated_root(provider);
        let root = home.path().join("phd-acme-cluster/infrastructure");
        let main = std::fs::read_to_string(root.join("main.tf")).expect("main.tf");
        let source = main
            .lines()
            .find_map(|line| line.trim().strip_prefix("source = "))
            .expect("the module's source")
            .to_owned();
        let local = format!("{:?}", module.path().display().to_string());
        std::fs::write(root.join("main.tf"), main.replace(&source, &local)).expect("main.tf");
        let diagnostics = mirror.validate(&root);
        assert!(
            errors(&diagnostics).is_empty(),
            "{provider} generated root: {:#?}",
            errors(&diagnostics)
        );
    }
}

/// Each kind of mistake `tofu validate` catches from a schema, in a broken
/// copy of each module: (file contents, expected diagnostic summary, line).
fn mistakes(provider: &str) -> Vec<(&'static str, &'static str)> {
    match provider {
        "aws" => vec![
            (
                "resource \"aws_s3_bucket\" \"unknown_argument\" {\n  bucket             = \"x\"\n  versioning_enabled = true\n}\n",
                "Unsupported argument",
            ),
            (
                "resource \"aws_eks_addon\" \"missing_argument\" {\n  addon_name = \"vpc-cni\"\n}\n",
                "Missing required argument",
            ),
            (
                "resource \"aws_vpc\" \"wrong_type\" {\n  cidr_block = [\"10.0.0.0/16\"]\n}\n",
                "Incorrect attribute value type",
            ),
            (
                "output \"missing_attribute\" {\n  value = aws_vpc.cluster.no_such_attribute\n}\n",
                "Unsupported attribute",
            ),
            (
                "resource \"aws_kms_key\" \"read_only\" {\n  description = \"x\"\n  arn         = \"arn:aws:kms:us-east-1:123456789012:key/x\"\n}\n",
                "Value for a read-only attribute",
            ),
        ],
        _ => vec![
            (
                "resource \"digitalocean_vpc\" \"unknown_argument\" {\n  name            = \"x\"\n  region          = \"nyc3\"\n  require_primary = false\n}\n",
                "Unsupported argument",
            ),
            (
                "resource \"digitalocean_database_mysql_config\" \"missing_argument\" {\n  sql_require_primary_key = false\n}\n",
                "Missing required argument",
            ),
            (
                "resource \"digitalocean_vpc\" \"wrong_type\" {\n  name     = \"x\"\n  region   = \"nyc3\"\n  ip_range = [\"10.0.0.0/16\"]\n}\n",
                "Incorrect attribute value type",
            ),
            (
                "output \"missing_attribute\" {\n  value = digitalocean_vpc.cluster.no_such_attribute\n}\n",
                "Unsupported attribute",
            ),
            (
                "resource \"digitalocean_vpc\" \"read_only\" {\n  name   = \"x\"\n  region = \"nyc3\"\n  urn    = \"do:vpc:1\"\n}\n",
                "Value for a read-only attribute",
            ),
        ],
    }
}

/// Issue 17: a broken copy of each module fails `tofu validate` with one
/// diagnostic per mistake, in the file and on the line of the mistake: an
/// unknown argument, a missing required argument, a wrong type, a reference
/// to an attribute that does not exist, a value on a computed-only attribute.
#[test]
fn tofu_validate_reports_each_kind_of_mistake() {
    for provider in PROVIDERS {
        let Some(mirror) = provider_mirror(provider) else {
            continue;
        };
        let broken = module_copy(provider);
        let mistakes = mistakes(provider);
        for (index, (text, _)) in mistakes.iter().enumerate() {
            std::fs::write(broken.path().join(format!("mistake{index}.tf")), text).expect("write");
        }
        let diagnostics = mirror.validate(broken.path());
        for (index, (_, summary)) in mistakes.iter().enumerate() {
            let file = format!("mistake{index}.tf");
            assert!(
                diagnostics.iter().any(|d| d.severity == "error"
                    && d.summary == *summary
                    && d.range.as_ref().is_some_and(|r| r.filename == file)),
                "{provider}: expected {summary:?} in {file}; got {:#?}",
                errors(&diagnostics)
            );
        }
        assert_eq!(
            errors(&diagnostics).len(),
            mistakes.len(),
            "{provider}: one error per mistake, none elsewhere: {:#?}",
            errors(&diagnostics)
        );
    }
}

/// Whether an output's name says it carries a secret: a password, a key
/// (not a key's ARN or ID) or a kubeconfig.
fn carries_a_secret(output: &str) -> bool {
    [
        "password",
        "kubeconfig",
        "secret",
        "token",
        "private_key",
        "access_key",
    ]
    .iter()
    .any(|word| output.contains(word))
}

/// Issue 17: each module's `tests/plan.tftest.hcl` runs under `tofu test` with
/// mocked providers (planning with the longest names the variables accept)
/// and proves that every output carrying a secret is sensitive, with an
/// `issensitive` assertion for each; OpenTofu itself fails the plan of an
/// output that refers to a value the schema marks sensitive without being
/// marked so. It also checks names against their services' length limits.
#[test]
fn tofu_test_proves_outputs_with_secrets_are_sensitive() {
    for provider in PROVIDERS {
        let module = infrastructure().join("modules").join(provider);
        let test = std::fs::read_to_string(module.join("tests/plan.tftest.hcl"))
            .expect("tests/plan.tftest.hcl");
        for (name, sensitive) in outputs(&module) {
            if carries_a_secret(&name) {
                assert!(sensitive, "{provider}: output {name} must be sensitive");
                assert!(
                    test.contains(&format!("issensitive(output.{name})")),
                    "{provider}: tests/plan.tftest.hcl asserts issensitive(output.{name})"
                );
            }
        }
        let Some(mirror) = provider_mirror(provider) else {
            continue;
        };
        let copy = module_copy(provider);
        let init = mirror.tofu(copy.path(), &["init", "-backend=false", "-no-color"]);
        assert!(init.status.success(), "{provider}: tofu init: {init:?}");
        let test = mirror.tofu(copy.path(), &["test", "-no-color"]);
        let stdout = String::from_utf8_lossy(&test.stdout);
        assert!(
            test.status.success(),
            "{provider}: tofu test:\n{stdout}{}",
            String::from_utf8_lossy(&test.stderr)
        );
        assert!(stdout.contains("0 failed"), "{provider}: {stdout}");

        // The same test fails once an output holding a secret loses its mark.
        let outputs_tf = copy.path().join("outputs.tf");
        let text = std::fs::read_to_string(&outputs_tf).expect("outputs.tf");
        std::fs::write(&outputs_tf, text.replacen("  sensitive   = true\n", "", 1))
            .expect("outputs.tf");
        let test = mirror.tofu(copy.path(), &["test", "-no-color"]);
        assert!(
            !test.status.success(),
            "{provider}: tofu test passed with an unmarked secret output"
        );
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

/// The AWS module's eks.tf, parsed.
fn aws_eks_tf() -> Body {
    std::fs::read_to_string(infrastructure().join("modules/aws/eks.tf"))
        .expect("eks.tf")
        .parse()
        .expect("HCL")
}

/// The resource or data block `kind.name` of `body`; panics when missing.
fn find_block(body: &Body, kind: &str, name: &str) -> Block {
    body.blocks()
        .find(|b| {
            ["resource", "data"].contains(&b.ident.as_str())
                && label(b, 0) == kind
                && label(b, 1) == name
        })
        .unwrap_or_else(|| panic!("no {kind}.{name}"))
        .clone()
}

/// The text of attribute `name` of `block`, quotes trimmed; empty when unset.
fn value(block: &Block, name: &str) -> String {
    block
        .body
        .get_attribute(name)
        .map(|a| a.value.to_string().trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// Open edX's volumes on EKS: Tutor's Meilisearch and Redis claims need a
/// storage driver, which EKS does not install. The AWS module installs the EBS
/// CSI driver add-on, whose controller's service account gets a role (EKS Pod
/// Identity, with its agent add-on) that holds AWS's managed policy for it.
/// The default gp3 StorageClass is in the cluster repository (tested in
/// argo_install.rs).
#[test]
fn aws_module_installs_the_volume_driver_open_edx_needs() {
    let body = aws_eks_tf();
    let block = |kind: &str, name: &str| find_block(&body, kind, name);
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
/// Issue 17: the AWS node group scales between node_count_min and
/// node_count_max only with an autoscaler. The module gives the Cluster
/// Autoscaler's service account a role through EKS Pod Identity, allowed to
/// resize only this cluster's groups; the cluster repository runs it (Argo CD
/// Application in cluster/apps/, its chart's repository allowed by the
/// project) as that service account, for this cluster and region.
#[test]
fn aws_node_group_scales_with_the_cluster_autoscaler() {
    let body = aws_eks_tf();
    let block = |kind: &str, name: &str| find_block(&body, kind, name);
    let association = block("aws_eks_pod_identity_association", "cluster_autoscaler");
    let namespace = value(&association, "namespace");
    let service_account = value(&association, "service_account");
    assert_eq!(
        value(&association, "role_arn"),
        "aws_iam_role.cluster_autoscaler.arn"
    );
    let policy = block("aws_iam_policy_document", "cluster_autoscaler")
        .body
        .to_string();
    assert!(
        policy.contains("autoscaling:SetDesiredCapacity")
            && policy.contains(
                "aws:ResourceTag/k8s.io/cluster-autoscaler/${aws_eks_cluster.cluster.name}"
            ),
        "resizing is limited to this cluster's groups: {policy}"
    );

    let (home, _) = generated_root("aws");
    let repo = home.path().join("phd-acme-cluster");
    let application: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo.join("cluster/apps/cluster-autoscaler.yml"))
            .expect("cluster-autoscaler.yml"),
    )
    .expect("YAML");
    let source = &application["spec"]["source"];
    let values = &source["helm"]["valuesObject"];
    assert_eq!(application["spec"]["destination"]["namespace"], *namespace);
    assert_eq!(values["rbac"]["serviceAccount"]["name"], *service_account);
    let context: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("context.json")).expect("context.json"),
    )
    .expect("JSON");
    // The EKS cluster's name: the module's "${var.name}-${var.environment}",
    // with the root's name = "phd-${cluster_slug}".
    let cluster = format!(
        "phd-{}-{}",
        context["cluster_slug"].as_str().expect("cluster_slug"),
        context["environment"].as_str().expect("environment")
    );
    assert_eq!(values["autoDiscovery"]["clusterName"], *cluster);
    assert_eq!(values["awsRegion"], context["region"]);
    let project = std::fs::read_to_string(repo.join("cluster/project.yml")).expect("project");
    let repo_url = source["repoURL"].as_str().expect("repoURL");
    assert!(project.contains(repo_url), "{project}");

    // DigitalOcean scales its node pool itself: nothing to deploy.
    let (home, _) = generated_root("digitalocean");
    let file = std::fs::read_to_string(
        home.path()
            .join("phd-acme-cluster/cluster/apps/cluster-autoscaler.yml"),
    )
    .expect("cluster-autoscaler.yml");
    assert!(
        file.lines()
            .all(|line| line.trim().is_empty() || line.starts_with('#')),
        "{file}"
    );
}

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
