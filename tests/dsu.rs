//! DSU scenarios: `tests/dsu/<scenario>/v1.molt, v2.molt, ...` run as
//! `molt run v1.molt --update v2.molt ...` (plus the options in `args`), checking stdout
//! against `expect.out`, the lines of `expect.err` (in order, as substrings) against stderr
//! (stderr must be empty without it), and the exit status against `status` (default 0).
//! `env` sets environment variables (`NAME=value` lines).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

fn run(dir: &Path) -> Result<(), Failed> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = dir.strip_prefix(root).unwrap_or(dir).to_path_buf();
    let mut versions: Vec<PathBuf> =
        (1..100).map(|i| rel.join(format!("v{i}.molt"))).take_while(|p| root.join(p).exists()).collect();
    if versions.is_empty() {
        return Err("no v1.molt".into());
    }
    let first = versions.remove(0);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
    cmd.current_dir(root).env("NO_COLOR", "1").arg("run").arg(&first);
    for v in &versions {
        cmd.arg("--update").arg(v);
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    if let Some(args) = read("args") {
        cmd.args(args.split_whitespace());
    }
    // `env`: one `NAME=value` per line (e.g. a small MOLT_MAX_HEAP).
    for line in read("env").unwrap_or_default().lines() {
        if let Some((name, value)) = line.trim().split_once('=') {
            cmd.env(name, value);
        }
    }
    let expect_out = read("expect.out").unwrap_or_default();
    let expect_err = read("expect.err");
    let status: i32 = read("status").map_or(0, |s| s.trim().parse().unwrap_or(0));
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err("timed out after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(status) {
        problems.push(format!("exit status {:?}, expected {status}", out.status.code()));
    }
    if stdout != expect_out {
        problems.push(format!("stdout differs:\n--- expected\n{expect_out}--- actual\n{stdout}---"));
    }
    match &expect_err {
        None if !stderr.is_empty() => problems.push("stderr should be empty".into()),
        None => {}
        Some(lines) => {
            let mut rest: &str = &stderr;
            for line in lines.lines().filter(|l| !l.trim().is_empty()) {
                match rest.find(line) {
                    Some(i) => rest = &rest[i + line.len()..],
                    None => problems.push(format!("stderr lacks (in order): {line}")),
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{}\n--- stderr\n{stderr}", problems.join("\n")).into()) }
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dsu");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("v1.molt").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    let trials = dirs
        .into_iter()
        .map(|d| {
            let name = d.file_name().unwrap_or_default().to_string_lossy().to_string();
            let skip = std::fs::read_to_string(d.join("skip")).ok();
            Trial::test(name, move || run(&d)).with_ignored_flag(skip.is_some())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
