//! `molt demo --fast`: the guided demo runs to the end and tells the story it promises.

use std::process::Command;

#[test]
fn demo_runs_through_every_step() {
    let out = Command::new(env!("CARGO_BIN_EXE_molt")).args(["demo", "--fast"]).output().expect("molt runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps = [
        "tick 2: ada=101.0 grace=250.5 edsger=75.75",
        ">> the second program arrives",
        "applied at the next `update \"tick\"`: now version 2; 3 record(s) transformed in place",
        "tick 3: ada=101.25 EUR grace=250.75 EUR edsger=76.00 EUR",
        ">> the third program arrives",
        "rolled back: migrate failed: audit: GRACE is over the limit",
        "tick 6: ada=102.00 EUR grace=251.50 EUR edsger=76.75 EUR",
        ">> the fourth program arrives",
        "The third program was rolled back and used no version number, so this one becomes version 3.",
        "now version 3",
        "tick 12: ada=103.50 EUR grace=253.00 EUR edsger=78.25 EUR   (bank total at the update: 431.75)",
        "The program ended in version 3",
    ];
    let mut rest: &str = &stdout;
    for step in steps {
        let at = rest.find(step).unwrap_or_else(|| panic!("missing (in order): {step}\n--- stdout\n{stdout}"));
        rest = &rest[at + step.len()..];
    }
    // The narration names no file the user does not have.
    assert!(!stdout.contains("demo/v"), "a path the user does not have:\n{stdout}");
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}
