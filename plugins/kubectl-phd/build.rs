// The templates are embedded with include_dir, which makes cargo watch the
// files it embedded but not the directories: a new template file would go
// unnoticed without this.
fn main() {
    println!("cargo:rerun-if-changed=../../templates");
}
