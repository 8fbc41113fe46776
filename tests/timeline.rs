//! `molt timeline`: an event stream from `--trace-updates=json` becomes an SVG with a lane per
//! version and one mark per event.

use std::process::Command;

fn molt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("molt runs")
}

#[test]
fn timeline_draws_every_event_of_a_real_run() {
    let dir = std::env::temp_dir().join(format!("molt-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A real stream: v2 rolled back, v3 applied as version 2 (lesson 7 of the tutorial).
    let d = "docs/tutorial/07-rollback";
    let run = molt(&[
        "run",
        &format!("{d}/v1.molt"),
        "--update",
        &format!("{d}/v2.molt"),
        "--update",
        &format!("{d}/v3.molt"),
        "--trace-updates=json",
    ]);
    assert_eq!(run.status.code(), Some(0));
    let events = dir.join("events.jsonl");
    std::fs::write(&events, &run.stderr).unwrap();
    let lines = String::from_utf8_lossy(&run.stderr).lines().filter(|l| l.starts_with("{\"event\"")).count();
    assert_eq!(lines, 4, "requested, rolled_back, requested, applied");

    let svg_path = dir.join("timeline.svg");
    let out = molt(&["timeline", events.to_str().unwrap(), "-o", svg_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    // One lane per version: the rolled-back update made none.
    assert!(svg.contains(">version 1</text>") && svg.contains(">version 2</text>"), "{svg}");
    assert!(!svg.contains(">version 3</text>"), "{svg}");
    // One mark per event, of the right kind.
    assert_eq!(svg.matches("<g class=\"event ").count(), 4, "{svg}");
    assert_eq!(svg.matches("<g class=\"event requested\"").count(), 2);
    assert_eq!(svg.matches("<g class=\"event rolled_back\"").count(), 1);
    assert_eq!(svg.matches("<g class=\"event applied\"").count(), 1);
    assert!(svg.contains(">v2 rolled back</text>") && svg.contains(">v2 applied</text>"), "{svg}");
    // The reason is in the rollback's tooltip, escaped.
    assert!(svg.contains("migrate failed: sensor ATTIC is too hot to migrate (at &lt;migrate&gt;"), "{svg}");
    assert!(svg.contains("4 events, in order"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn timeline_refuses_a_file_without_events() {
    let dir = std::env::temp_dir().join(format!("molt-timeline-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("none.jsonl");
    std::fs::write(&input, "hello\n").unwrap();
    let out = molt(&["timeline", input.to_str().unwrap(), "-o", dir.join("x.svg").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no update events"));
    let usage = molt(&["timeline", input.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("`molt timeline` takes EVENTS.jsonl -o OUT.svg"));
    std::fs::remove_dir_all(&dir).ok();
}
