//! Every DSU example in examples/ runs as its README says: `v1.molt` with the later versions
//! as `--update`s (and `input.txt` on stdin where there is one), printing exactly
//! `expect.out`, with exit status 0. A directory with a file named `server` holds a network
//! server, which cannot run that way: it has its own test (e.g. tests/kv_server.rs).

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn examples_run_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("v1.molt").exists() && !p.join("server").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "{} examples", dirs.len());
    for dir in dirs {
        let rel = dir.strip_prefix(root).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
        cmd.current_dir(root).arg("run").arg(rel.join("v1.molt"));
        for i in 2..10 {
            let v = rel.join(format!("v{i}.molt"));
            if root.join(&v).exists() {
                cmd.arg("--update").arg(v);
            }
        }
        let stdin = match std::fs::File::open(dir.join("input.txt")) {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        };
        let out = cmd.stdin(stdin).output().expect("molt runs");
        let want = std::fs::read_to_string(dir.join("expect.out")).unwrap_or_default();
        assert_eq!(out.status.code(), Some(0), "{}: {}", rel.display(), String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{}", rel.display());
    }
}
