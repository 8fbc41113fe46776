//! The DSU property test: pushing the running program itself as an update at every update
//! point must not change any tests/lang program's behaviour (stdout, stderr, exit status).
//! Programs that print `version()` are left out: that number is meant to change.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(file: &Path, self_update: bool) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
    cmd.current_dir(root).env("NO_COLOR", "1").arg("run").arg(file);
    if self_update {
        cmd.arg("--self-update");
    }
    cmd.stdin(Stdio::null()).output().expect("molt runs")
}

#[test]
fn identical_updates_at_every_point_change_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut with_points = 0;
    let mut failures = Vec::new();
    for entry in walkdir::WalkDir::new(root.join("tests/lang")).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "molt") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains("version()") || text.contains("// stdin:") || text.contains("// args:") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap();
        let plain = run(rel, false);
        let updated = run(rel, true);
        checked += 1;
        with_points += text.contains("update") as usize;
        if plain.stdout != updated.stdout
            || plain.stderr != updated.stderr
            || plain.status.code() != updated.status.code()
        {
            failures.push(format!(
                "{}: plain exit {:?} / self-updated exit {:?}\n--- plain stdout\n{}--- updated stdout\n{}--- updated stderr\n{}",
                rel.display(),
                plain.status.code(),
                updated.status.code(),
                String::from_utf8_lossy(&plain.stdout),
                String::from_utf8_lossy(&updated.stdout),
                String::from_utf8_lossy(&updated.stderr)
            ));
        }
    }
    assert!(checked > 100, "only {checked} programs checked");
    assert!(with_points > 0, "no program with update points was checked");
    assert!(failures.is_empty(), "{} programs changed:\n{}", failures.len(), failures.join("\n"));
}
