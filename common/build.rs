// include_dir! sees changes to files it embedded, not files added since:
// rebuild whenever anything under manifests/ changes.
fn main() {
    println!("cargo:rerun-if-changed=../manifests");
}
