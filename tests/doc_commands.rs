//! Docs that cannot rot: every command shown with its output in the tutorial (docs/tutorial),
//! the reference (docs/reference), the README and the examples' READMEs is run, and its output
//! compared exactly. (Examples that need a program running in the background, as `molt push`
//! and `molt status` do, or a terminal, as the REPL does, stay plain ``` blocks.)
//!
//! The format (documented in docs/tutorial/README.md): a fenced block opened with
//! ```` ```console ````. Each line starting with `$ ` is a command, run by `sh` from the
//! repository root with `molt` meaning the binary under test; the lines after it, up to the
//! next `$ ` line or the end of the block, are what it prints, stdout and stderr together in
//! the order they were written. A command must exit with status 0 unless its output ends with
//! the line `[exit status N]`. Timings vary, so before comparing, a number followed by `us` or
//! `ms` (`paused 112 us`, `136 ms`) and the value of a JSON field ending in `_us` are replaced
//! by `#` on both sides.
//!
//! `MOLT_DOC_BLESS=1 cargo test --test doc_commands` rewrites the expected outputs with what
//! the commands print (then read the diff: a blessed output is only as right as its reader).

#[path = "common/mask.rs"]
mod mask;

use std::path::{Path, PathBuf};

use mask::mask;
use std::process::Command;

/// The markdown files whose console blocks are checked.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for dir in ["docs/tutorial", "docs/reference", "examples"] {
        for entry in walkdir::WalkDir::new(root.join(dir)).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "md") {
                files.push(entry.path().to_path_buf());
            }
        }
    }
    files
}

/// One command of a console block: its line numbers (0-based, in the file) and its text.
struct Shown {
    /// The `$ ` line.
    at: usize,
    /// The lines of expected output: `at + 1 .. end`.
    end: usize,
    command: String,
}

fn console_commands(lines: &[&str]) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut in_console = false;
    let mut current: Option<Shown> = None;
    for (i, line) in lines.iter().enumerate() {
        // Fences count at the start of a line only: an indented example of the format is text.
        let fence = line.starts_with("```");
        if !in_console {
            if line.trim_end() == "```console" {
                in_console = true;
            }
            continue;
        }
        if fence || line.starts_with("$ ") {
            if let Some(mut c) = current.take() {
                c.end = i;
                out.push(c);
            }
        }
        if fence {
            in_console = false;
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            current = Some(Shown { at: i, end: i + 1, command: cmd.to_string() });
        }
    }
    assert!(!in_console, "a ```console block is not closed");
    out
}

fn run(root: &Path, bin_dir: &Path, command: &str) -> String {
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // stderr joins stdout first, so that a redirection in the command still applies.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(root)
        .env("PATH", path)
        .env("MOLT_HISTORY", "")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    match out.status.code() {
        Some(0) => {}
        Some(n) => text.push_str(&format!("{}[exit status {n}]", if text.is_empty() { "" } else { "\n" })),
        None => text.push_str("\n[killed by a signal]"),
    }
    text
}

#[test]
fn mask_hides_timings_only() {
    assert_eq!(
        mask("waited 1 us, paused 112 us (3 us in transformers); 692 ms"),
        "waited # us, paused # us (# us in transformers); # ms"
    );
    assert_eq!(
        mask(r#"{"wait_us":12,"pause_us":345,"objects_transformed":20000}"#),
        r#"{"wait_us":#,"pause_us":#,"objects_transformed":20000}"#
    );
    assert_eq!(
        mask("abandoned after waiting 10000 update points (136 ms)"),
        "abandoned after waiting 10000 update points (# ms)"
    );
    assert_eq!(mask("took 1.5ms, v2 total 59997 users 3 usa"), "took #ms, v2 total 59997 users 3 usa");
}

#[test]
fn documented_commands_print_what_the_docs_show() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_molt")).parent().unwrap().to_path_buf();
    let bless = std::env::var_os("MOLT_DOC_BLESS").is_some();
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in documents(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let shown = console_commands(&lines);
        if shown.is_empty() {
            continue;
        }
        let rel = file.strip_prefix(root).unwrap().display().to_string();
        let mut new_lines: Vec<String> = Vec::new();
        let mut copied = 0;
        for s in &shown {
            checked += 1;
            let got = run(root, &bin_dir, &s.command);
            let want = lines[s.at + 1..s.end].join("\n");
            if mask(&got) != mask(&want) {
                failures.push(format!(
                    "{rel}:{}: $ {}\n--- the doc shows\n{want}\n--- the command printed\n{got}\n",
                    s.at + 1,
                    s.command
                ));
            }
            // Blessing keeps the doc's own lines (and timings) where they already match.
            let keep = if mask(&got) == mask(&want) { s.end } else { s.at + 1 };
            new_lines.extend(lines[copied..keep].iter().map(|l| l.to_string()));
            if keep == s.at + 1 && !got.is_empty() {
                new_lines.extend(got.lines().map(String::from));
            }
            copied = s.end;
        }
        if bless {
            new_lines.extend(lines[copied..].iter().map(|l| l.to_string()));
            let mut out = new_lines.join("\n");
            out.push('\n');
            if out != text {
                std::fs::write(&file, out).unwrap();
            }
        }
    }
    assert!(checked >= 20, "only {checked} documented commands found");
    if bless {
        return;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} documented commands differ:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
