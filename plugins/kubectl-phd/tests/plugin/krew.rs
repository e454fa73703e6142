//! Distribution (SPEC.md 7.8): the release archive (`scripts/pack-release`),
//! the krew manifest rendered from `krew/phd.yaml` (`scripts/render-krew-manifest`)
//! checked by krew's own `validate-krew-manifest` and installed by a real
//! `kubectl krew install --manifest=... --archive=...`, kubectl's plugin
//! completion, and the release workflow checked by actionlint and zizmor.
//!
//! krew and validate-krew-manifest are built from the Go module proxy by
//! `scripts/install-test-tools` into `$PHD_CACHE_DIR/bin`; like the other tools
//! they are looked up on PATH, then there, and a missing one fails the test.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use phd_testkit::tool;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// The release's platforms, as krew and the archive names spell them.
const PLATFORMS: [(&str, &str); 5] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
];

fn workspace() -> PathBuf {
    Path::new(WORKSPACE).canonicalize().expect("workspace")
}

fn archive_name(os: &str, arch: &str) -> String {
    let extension = if os == "windows" { "zip" } else { "tar.gz" };
    format!("kubectl-phd-v{VERSION}-{os}-{arch}.{extension}")
}

/// This machine's architecture as krew names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no kubectl-phd release for {other}"),
    }
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// `scripts/pack-release VERSION OS ARCH BINARY OUT_DIR`; the archive's path.
fn pack(os: &str, arch: &str, binary: &Path, out_dir: &Path) -> PathBuf {
    let output = run(Command::new(workspace().join("scripts/pack-release"))
        .args([VERSION, os, arch])
        .arg(binary)
        .arg(out_dir));
    assert_success("scripts/pack-release", &output);
    let archive = PathBuf::from(stdout(&output).trim());
    assert_eq!(archive, out_dir.join(archive_name(os, arch)));
    archive
}

/// `sha256sum` of every archive in `dir`, into `dir/checksums.txt`, as the
/// release workflow writes it; returns name → sum.
fn write_checksums(dir: &Path) -> Vec<(String, String)> {
    let names: Vec<String> = PLATFORMS
        .iter()
        .map(|(os, arch)| archive_name(os, arch))
        .collect();
    let output = run(Command::new("sha256sum")
        .arg("--")
        .args(&names)
        .current_dir(dir));
    assert_success("sha256sum", &output);
    std::fs::write(dir.join("checksums.txt"), &output.stdout).expect("write checksums.txt");
    stdout(&output)
        .lines()
        .map(|line| {
            let (sum, name) = line.split_once("  ").expect("sha256sum line");
            (name.to_owned(), sum.to_owned())
        })
        .collect()
}

fn render(args: &[&str]) -> Output {
    run(
        Command::new(workspace().join("scripts/render-krew-manifest"))
            .arg("--version")
            .arg(VERSION)
            .args(args),
    )
}

/// Serves the files of `dir` over HTTP on a loopback port, in the background;
/// returns the base URL. Unknown names get 404.
fn serve_dir(dir: PathBuf) -> String {
    fn answer(dir: &Path, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(&stream);
        let mut request = String::new();
        reader.read_line(&mut request)?;
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 && line != "\r\n" {
            line.clear();
        }
        let name = request
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix('/'))
            .unwrap_or_default();
        let body = if name.is_empty() || name.contains('/') || name.starts_with('.') {
            None
        } else {
            std::fs::read(dir.join(name)).ok()
        };
        let mut stream = &stream;
        match body {
            Some(body) => {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(&body)
            }
            None => write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(&dir, stream);
        }
    });
    format!("http://{address}/")
}

/// PATH of `dirs` then the directory holding kubectl, and nothing else.
fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    let kubectl = which::which("kubectl").expect("kubectl must be installed for this test");
    let kubectl_dir = kubectl.parent().expect("kubectl's directory").to_path_buf();
    std::env::join_paths(
        dirs.iter()
            .map(|dir| dir.to_path_buf())
            .chain(std::iter::once(kubectl_dir)),
    )
    .expect("PATH")
}

/// The kubectl plugin `krew` (a `kubectl-krew` on PATH) in a directory of its own.
fn krew_plugin_dir(root: &Path) -> PathBuf {
    let dir = root.join("krew-plugin");
    std::fs::create_dir_all(&dir).expect("krew plugin dir");
    std::os::unix::fs::symlink(tool("krew"), dir.join("kubectl-krew")).expect("link kubectl-krew");
    dir
}

fn kubectl() -> Command {
    let mut command = Command::new("kubectl");
    command
        .env("KREW_NO_UPGRADE_CHECK", "1")
        .env("NO_COLOR", "1");
    command
}

fn manifest_platforms(manifest: &Value) -> Vec<&Value> {
    manifest["spec"]["platforms"]
        .as_array()
        .expect("spec.platforms")
        .iter()
        .collect()
}

#[test]
fn krew_installs_the_release_archive_and_kubectl_runs_it() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let root = temp.path().canonicalize().expect("canonical temp dir");
    let dist = root.join("dist");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-phd"));
    let host = ("linux", host_arch());

    // This machine's archive holds the binary cargo built for the tests. The
    // other platforms' archives, which krew's validator also installs (it
    // checks the archive's layout, the files it copies, `bin` and LICENSE, not
    // what the binary runs on), hold a stand-in, so they cannot be mistaken
    // for a release.
    let stand_in = root.join("stand-in");
    std::fs::write(&stand_in, "#!/bin/sh\necho stand-in >&2\nexit 1\n").expect("stand-in");
    for (os, arch) in PLATFORMS {
        let source = if (os, arch) == host {
            binary.as_path()
        } else {
            stand_in.as_path()
        };
        pack(os, arch, source, &dist);
    }
    let checksums = write_checksums(&dist);
    let host_archive = dist.join(archive_name(host.0, host.1));

    // The manifest for those archives, served from a local web server.
    let base_url = serve_dir(dist.clone());
    let manifest_dir = root.join("manifest");
    std::fs::create_dir_all(&manifest_dir).expect("manifest dir");
    let manifest_path = manifest_dir.join("phd.yaml");
    let output = render(&[
        "--archives",
        dist.to_str().expect("UTF-8 path"),
        "--base-url",
        &base_url,
        "--output",
        manifest_path.to_str().expect("UTF-8 path"),
    ]);
    assert_success("scripts/render-krew-manifest", &output);
    let text = read(&manifest_path);
    let manifest: Value = serde_saphyr::from_str(&text).expect("the manifest is YAML");
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "phd");
    assert_eq!(manifest["spec"]["version"], format!("v{VERSION}"));
    assert_eq!(manifest["spec"]["homepage"], env!("CARGO_PKG_REPOSITORY"));
    let platforms = manifest_platforms(&manifest);
    assert_eq!(platforms.len(), PLATFORMS.len());
    for ((os, arch), platform) in PLATFORMS.iter().zip(&platforms) {
        let labels = &platform["selector"]["matchLabels"];
        assert_eq!(
            (labels["os"].as_str(), labels["arch"].as_str()),
            (Some(*os), Some(*arch))
        );
        let name = archive_name(os, arch);
        assert_eq!(platform["uri"], format!("{base_url}{name}"));
        let sum = &checksums.iter().find(|(n, _)| *n == name).expect("sum").1;
        assert_eq!(platform["sha256"].as_str(), Some(sum.as_str()), "{name}");
    }

    // krew's validator: structure, then an install of every platform's
    // archive (downloaded from the server) through `kubectl krew`.
    let krew_dir = krew_plugin_dir(&root);
    let output = run(Command::new(tool("validate-krew-manifest"))
        .arg("-manifest")
        .arg(&manifest_path)
        .env("PATH", path_of(&[&krew_dir])));
    assert_success("validate-krew-manifest", &output);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains(&format!(
            "all {} spec.platforms installed fine",
            PLATFORMS.len()
        )),
        "{log}"
    );

    // A manifest whose sum does not match the archive is refused.
    let krew_root = root.join("krew-root");
    let bad_manifest_dir = root.join("bad-manifest");
    std::fs::create_dir_all(&bad_manifest_dir).expect("bad manifest dir");
    let host_sum = &checksums
        .iter()
        .find(|(n, _)| *n == archive_name(host.0, host.1))
        .expect("host sum")
        .1;
    // Another archive's sum: well-formed, but not this archive's.
    let other_sum = &checksums
        .iter()
        .find(|(n, _)| *n == archive_name("windows", "amd64"))
        .expect("windows sum")
        .1;
    assert_eq!(text.matches(host_sum.as_str()).count(), 1);
    assert_ne!(host_sum, other_sum);
    std::fs::write(
        bad_manifest_dir.join("phd.yaml"),
        text.replace(host_sum.as_str(), other_sum),
    )
    .expect("write bad manifest");
    let output = run(kubectl()
        .args(["krew", "install"])
        .arg(format!(
            "--manifest={}",
            bad_manifest_dir.join("phd.yaml").display()
        ))
        .arg(format!("--archive={}", host_archive.display()))
        .env("KREW_ROOT", &krew_root)
        .env("PATH", path_of(&[&krew_dir])));
    assert!(!output.status.success(), "a wrong sha256 was accepted");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("checksum does not match"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The real install from the local archive, into a krew root of its own.
    let output = run(kubectl()
        .args(["krew", "install"])
        .arg(format!("--manifest={}", manifest_path.display()))
        .arg(format!("--archive={}", host_archive.display()))
        .env("KREW_ROOT", &krew_root)
        .env("PATH", path_of(&[&krew_dir])));
    assert_success("kubectl krew install", &output);
    assert!(
        krew_root
            .join(format!("store/phd/v{VERSION}/LICENSE"))
            .is_file()
    );
    // krew's receipt of the install (`kubectl krew list` would want the index).
    let receipt: Value =
        serde_saphyr::from_str(&read(&krew_root.join("receipts/phd.yaml"))).expect("receipt");
    assert_eq!(receipt["metadata"]["name"], "phd");
    assert_eq!(receipt["spec"]["version"], format!("v{VERSION}"));

    // `kubectl phd version` with only krew's bin directory and kubectl on PATH:
    // kubectl finds the plugin krew installed.
    let krew_bin = krew_root.join("bin");
    let path = path_of(&[&krew_bin]);
    let found = which::which_in("kubectl-phd", Some(&path), &root).expect("kubectl-phd on PATH");
    assert_eq!(found, krew_bin.join("kubectl-phd"));
    let target = found.canonicalize().expect("the link's target");
    assert!(
        target.starts_with(krew_root.join("store/phd")),
        "{target:?}"
    );
    let output = run(kubectl()
        .args(["phd", "version"])
        .env("PATH", &path)
        .current_dir(&root));
    assert_success("kubectl phd version", &output);
    assert!(
        stdout(&output).starts_with(&format!("kubectl-phd {VERSION}\n")),
        "{}",
        stdout(&output)
    );
}

/// What kubectl (1.26+) does on `kubectl phd <TAB>`: `kubectl __complete phd ...`
/// finds `kubectl_complete-phd` on PATH and runs it with the words after
/// `phd`. Both ways docs/install.md gives: a link, and a script.
#[test]
fn kubectl_completes_phd_through_kubectl_complete_phd() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-phd"));
    let plugin_dir = temp.path().join("plugin");
    std::fs::create_dir_all(&plugin_dir).expect("plugin dir");
    std::os::unix::fs::symlink(&binary, plugin_dir.join("kubectl-phd")).expect("link");

    let as_link = temp.path().join("link");
    std::fs::create_dir_all(&as_link).expect("link dir");
    std::os::unix::fs::symlink(&binary, as_link.join("kubectl_complete-phd")).expect("link");
    let as_script = temp.path().join("script");
    std::fs::create_dir_all(&as_script).expect("script dir");
    let script = as_script.join("kubectl_complete-phd");
    std::fs::write(&script, "#!/bin/sh\nexec kubectl-phd __complete \"$@\"\n").expect("script");
    let mut permissions = std::fs::metadata(&script).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");

    for completer in [&as_link, &as_script] {
        let path = path_of(&[&plugin_dir, completer]);
        let output = run(kubectl().args(["__complete", "phd", ""]).env("PATH", &path));
        assert_success("kubectl __complete phd ''", &output);
        let out = stdout(&output);
        let names: Vec<&str> = out
            .lines()
            .map(|line| line.split('\t').next().unwrap_or_default())
            .collect();
        for noun in ["argo", "cluster", "instance", "user", "doctor", "version"] {
            assert!(names.contains(&noun), "{noun} in {out}");
        }
        assert_eq!(names.last(), Some(&":4"), "{out}");

        let output = run(kubectl()
            .args(["__complete", "phd", "instance", "d"])
            .env("PATH", &path));
        assert_success("kubectl __complete phd instance d", &output);
        let out = stdout(&output);
        let names: Vec<&str> = out
            .lines()
            .map(|line| line.split('\t').next().unwrap_or_default())
            .collect();
        assert_eq!(names, ["delete", ":4"], "{out}");
    }
}

#[test]
fn the_archive_holds_the_binary_and_the_license() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-phd"));
    let archive = pack("linux", host_arch(), &binary, temp.path());
    let output = run(Command::new("tar").arg("-tvzf").arg(&archive));
    assert_success("tar -t", &output);
    let listing = stdout(&output);
    let mut entries: Vec<(&str, &str)> = listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (*fields.last().expect("name"), fields[0])
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [("LICENSE", "-rw-r--r--"), ("kubectl-phd", "-rwxr-xr-x")],
        "{listing}"
    );
    // What the reusable workflows do with it.
    let bin = temp.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let output = run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&bin)
        .arg("kubectl-phd"));
    assert_success("tar -x", &output);
    let output = run(Command::new(bin.join("kubectl-phd")).arg("version"));
    assert_success("kubectl-phd version", &output);
    assert!(stdout(&output).starts_with(&format!("kubectl-phd {VERSION}\n")));
    assert_eq!(
        std::fs::read(bin.join("kubectl-phd")).expect("extracted"),
        std::fs::read(&binary).expect("built")
    );

    // The same inputs make the same archive (a small stand-in for the binary,
    // which is large in a debug build).
    let stand_in = temp.path().join("stand-in");
    std::fs::write(&stand_in, "stand-in").expect("stand-in");
    let first = tempfile::tempdir().expect("temporary directory");
    let second = tempfile::tempdir().expect("temporary directory");
    let first = pack("darwin", "arm64", &stand_in, first.path());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = pack("darwin", "arm64", &stand_in, second.path());
    assert_eq!(
        std::fs::read(&first).expect("first"),
        std::fs::read(&second).expect("second")
    );

    // Windows gets a zip with kubectl-phd.exe.
    let zip = pack("windows", "amd64", &stand_in, temp.path());
    let output = run(Command::new("unzip").arg("-Z1").arg(&zip));
    assert_success("unzip -Z1", &output);
    let mut names: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    names.sort();
    assert_eq!(names, ["LICENSE", "kubectl-phd.exe"]);

    let license = read(&workspace().join("LICENSE"));
    let lines: Vec<&str> = license.lines().map(str::trim).collect();
    assert_eq!(lines[..2], ["Apache License", "Version 2.0, January 2004"]);
    assert_eq!(lines.last(), Some(&"END OF TERMS AND CONDITIONS"));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
}

/// The archive names agree everywhere: the template, the packer, the release
/// workflow, and the reusable workflows that install a release.
#[test]
fn archive_names_agree_across_template_workflows_and_packer() {
    let expected: Vec<String> = PLATFORMS
        .iter()
        .map(|(os, arch)| archive_name(os, arch))
        .collect();
    let output = render(&["--list-archives"]);
    assert_success("render-krew-manifest --list-archives", &output);
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), expected);

    for workflow in ["create-instance.yml", "delete-instance.yml"] {
        let text = read(&workspace().join(".github/workflows").join(workflow));
        let archive = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("archive=\""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{workflow} names no archive"));
        for arch in ["amd64", "arm64"] {
            let name = archive
                .replace("${version}", VERSION)
                .replace("${arch}", arch);
            assert!(
                expected.contains(&name),
                "{workflow}: {name} not in {expected:?}"
            );
        }
        assert!(
            text.contains("tar -xzf \"$archive\" -C bin kubectl-phd"),
            "{workflow}"
        );
        assert!(text.contains("checksums.txt"), "{workflow}");
    }

    let release = read(&workspace().join(".github/workflows/release.yml"));
    let platforms: Vec<String> = PLATFORMS
        .iter()
        .map(|(os, arch)| format!("{os}/{arch}"))
        .collect();
    assert!(
        release.contains(&format!("for platform in {}; do", platforms.join(" "))),
        "release.yml packs every platform"
    );
    for target in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        assert!(release.contains(&format!("target: {target},")), "{target}");
    }
    assert!(release.contains("scripts/render-krew-manifest --version"));
    assert!(release.contains("sha256sum -- kubectl-phd-* >checksums.txt"));
}

#[test]
fn render_refuses_missing_and_mismatched_archives() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let dist = temp.path();
    let stand_in = dist.join("stand-in");
    std::fs::write(&stand_in, "stand-in").expect("stand-in");
    for (os, arch) in &PLATFORMS[..4] {
        pack(os, arch, &stand_in, dist);
    }
    let dir = dist.to_str().expect("UTF-8 path");
    let output = render(&["--archives", dir]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!(
            "archive {} is not in",
            archive_name("windows", "amd64")
        )),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    pack("windows", "amd64", &stand_in, dist);
    write_checksums(dist);
    let output = render(&["--archives", dir]);
    assert_success("render-krew-manifest", &output);
    let text = stdout(&output);
    assert!(!text.contains("{{"), "{text}");
    assert!(text.contains(&format!(
        "    uri: {}/releases/download/v{VERSION}/{}\n    sha256: ",
        env!("CARGO_PKG_REPOSITORY"),
        archive_name("linux", "amd64")
    )));

    // An archive that changed after checksums.txt was written.
    std::fs::write(&stand_in, "another stand-in").expect("stand-in");
    pack("darwin", "arm64", &stand_in, dist);
    let output = render(&["--archives", dir]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("checksums.txt says"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = render(&["--archives", dir, "--version", "1.0"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn release_workflow_passes_actionlint_and_zizmor() {
    let workspace = workspace();
    let workflow = workspace.join(".github/workflows/release.yml");
    let output = run(Command::new(tool("actionlint"))
        .arg(&workflow)
        .current_dir(&workspace));
    assert_success("actionlint", &output);
    let output = run(Command::new(tool("zizmor"))
        .args(["--offline", "--no-progress"])
        .arg(&workflow)
        .current_dir(&workspace));
    assert_success("zizmor", &output);
    assert!(
        stdout(&output).contains("No findings to report"),
        "zizmor: {}",
        stdout(&output)
    );

    let text = read(&workflow);
    let mut checkouts = 0;
    let mut run_indent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start().trim_start_matches("- ");
        // Actions pinned by full commit hash.
        if let Some(action) = trimmed.strip_prefix("uses: ") {
            let reference = action.split_once('@').map(|(_, r)| r).unwrap_or_default();
            let hash = reference.split_whitespace().next().unwrap_or_default();
            assert!(
                hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "release.yml:{}: {line}",
                number + 1
            );
            if action.starts_with("actions/checkout@") {
                checkouts += 1;
            }
        }
        // No expressions inside scripts: values reach them through `env:`.
        if let Some(run) = run_indent {
            if line.trim().is_empty() || indent > run {
                assert!(!line.contains("${{"), "release.yml:{}: {line}", number + 1);
                continue;
            }
            run_indent = None;
        }
        if let Some(script) = trimmed.strip_prefix("run:") {
            assert!(
                !script.contains("${{"),
                "release.yml:{}: {line}",
                number + 1
            );
            run_indent = Some(indent);
        }
    }
    assert!(checkouts > 0);
    assert_eq!(
        text.matches("persist-credentials: false").count(),
        checkouts
    );
    assert!(text.contains("\npermissions: {}\n"));
    assert!(text.contains("GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}"));
}
