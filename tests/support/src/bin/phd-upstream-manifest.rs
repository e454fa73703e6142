//! Prints the path of an upstream install manifest, fetched through the Go
//! module proxy and cached (see `phd_testkit::upstream`):
//!
//! ```sh
//! phd-upstream-manifest argocd v3.6.1
//! phd-upstream-manifest workflows v3.7.18
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["argocd", version] => phd_testkit::argocd_install_manifest(version),
        ["workflows", version] => phd_testkit::workflows_install_manifest(version),
        _ => {
            eprintln!("usage: phd-upstream-manifest argocd|workflows VERSION");
            std::process::exit(2);
        }
    };
    println!("{}", path.display());
}
