//! `molt timeline`: an event stream from `--trace-updates=json` (or `molt demo --events`)
//! becomes an SVG with a lane per version, one mark per event and, under per-task consistency,
//! one lane per task showing the version it runs. The tests read the SVG's content.

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

/// Writes `events` (a `--trace-updates=json` stream) to DIR/NAME.jsonl, draws it with
/// `molt timeline`, and returns the SVG.
fn draw(dir: &std::path::Path, name: &str, events: &[u8]) -> String {
    let input = dir.join(format!("{name}.jsonl"));
    std::fs::write(&input, events).unwrap();
    let svg_path = dir.join(format!("{name}.svg"));
    let out = molt(&["timeline", input.to_str().unwrap(), "-o", svg_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    svg
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-timeline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn per_task_run(scenario: &str) -> Vec<u8> {
    let d = format!("tests/dsu/{scenario}");
    let run = molt(&[
        "run",
        &format!("{d}/v1.molt"),
        "--update",
        &format!("{d}/v2.molt"),
        "--consistency",
        "per-task",
        "--trace-updates=json",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    run.stderr
}

/// The x where the first task-run rectangle titled `title` starts.
fn run_x(svg: &str, title: &str) -> f64 {
    let at =
        svg.find(&format!("<title>{title}</title><rect x=\"")).unwrap_or_else(|| panic!("no run '{title}':\n{svg}"));
    let rest = &svg[at + title.len() + "<title></title><rect x=\"".len()..];
    rest[..rest.find('"').unwrap()].parse().unwrap()
}

#[test]
fn timeline_draws_each_task_switching_at_its_own_moment() {
    let dir = temp_dir("per-task");
    // main switches at once; the worker (`serve`) is busy in changed code and switches later.
    let events = per_task_run("tasks_per_task_busy_worker_switches_later");
    let kinds: Vec<String> = String::from_utf8_lossy(&events)
        .lines()
        .filter_map(|l| l.strip_prefix("{\"event\":\"").and_then(|r| r.split('"').next()).map(String::from))
        .collect();
    assert_eq!(kinds, ["requested", "switched", "waiting", "switched", "applied"]);
    let svg = draw(&dir, "busy", &events);
    assert_eq!(svg.matches("<g class=\"event ").count(), 5, "{svg}");
    assert_eq!(svg.matches("<g class=\"event switched\"").count(), 2, "{svg}");
    // Each switch is a mark naming its task, with its numbers as a tooltip.
    assert!(svg.contains(">task 1 (main) to v2</text>") && svg.contains(">task 2 (serve) to v2</text>"), "{svg}");
    assert!(svg.contains("<title>task 2 (serve) switched from version 1 to 2, "), "{svg}");
    assert!(svg.contains(" us after the request (2 tasks alive)</title>"), "{svg}");
    // One lane per task, showing the version it runs: main runs v2 while serve still runs v1.
    assert!(svg.contains(">tasks: the version each one runs</text>"), "{svg}");
    assert_eq!(svg.matches("<g class=\"task-lane\">").count(), 2, "{svg}");
    assert!(svg.contains(">task 1 (main)</text>") && svg.contains(">task 2 (serve)</text>"), "{svg}");
    let main_v2 = run_x(&svg, "task 1 (main) runs version 2");
    let serve_v1 = run_x(&svg, "task 2 (serve) runs version 1");
    let serve_v2 = run_x(&svg, "task 2 (serve) runs version 2");
    assert!(serve_v1 < main_v2 && main_v2 < serve_v2, "main switches first: {main_v2} {serve_v2}");
    // The transition, from the first switch to the update's end, with its duration.
    assert_eq!(svg.matches("<g class=\"transition\">").count(), 1, "{svg}");
    assert!(svg.contains(">per-task transition to version 2: "), "{svg}");
    assert!(svg.contains(">every task switched "), "{svg}");
    assert!(svg.contains(">v2 applied</text>"), "{svg}");
    assert!(svg.contains("up to 2 tasks alive"), "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn timeline_draws_a_reversed_transition() {
    let dir = temp_dir("reversed");
    // main switches, the worker stays in changed code past the limit: main goes back to v1.
    let events = per_task_run("tasks_per_task_reversed_after_timeout");
    let svg = draw(&dir, "reversed", &events);
    assert_eq!(svg.matches("<g class=\"event switched\"").count(), 1, "{svg}");
    assert_eq!(svg.matches("<g class=\"event reverted\"").count(), 1, "{svg}");
    assert_eq!(svg.matches("<g class=\"event rejected\"").count(), 1, "{svg}");
    assert!(svg.contains(">task 1 (main) to v2</text>") && svg.contains(">task 1 (main) back to v1</text>"), "{svg}");
    assert!(svg.contains("<title>task 1 (main) went back from version 2 to 1, "), "{svg}");
    // Version 2 ran in main for a while: it has a lane, though no update applied.
    assert!(svg.contains(">version 2</text>") && !svg.contains(">v2 applied</text>"), "{svg}");
    // main: v1, v2, v1 again; the worker, named by no event, never left v1.
    assert_eq!(svg.matches("<title>task 1 (main) runs version 1</title>").count(), 2, "{svg}");
    assert_eq!(svg.matches("<title>task 1 (main) runs version 2</title>").count(), 1, "{svg}");
    assert!(run_x(&svg, "task 1 (main) runs version 2") > run_x(&svg, "task 1 (main) runs version 1"));
    assert!(svg.contains(">1 other task</text>"), "{svg}");
    assert_eq!(svg.matches("<title>1 other task runs version").count(), 1, "{svg}");
    assert!(svg.contains("<title>1 other task runs version 1</title>"), "{svg}");
    assert!(svg.contains(">per-task transition to version 2: reversed</text>"), "{svg}");
    // The reason is in the rejection's tooltip.
    assert!(svg.contains("it was reversed and every task runs version 1 again"), "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn timeline_draws_the_demo() {
    let dir = temp_dir("demo");
    let events = dir.join("demo.jsonl");
    let demo = molt(&["demo", "--fast", "--events", events.to_str().unwrap()]);
    assert_eq!(demo.status.code(), Some(0), "{}", String::from_utf8_lossy(&demo.stderr));
    // The narration is unchanged (stdout), and the events went to the file only.
    assert!(String::from_utf8_lossy(&demo.stdout).contains("The program ended in version 3"));
    assert!(demo.stderr.is_empty(), "{}", String::from_utf8_lossy(&demo.stderr));
    let text = std::fs::read(&events).unwrap();
    let svg = draw(&dir, "demo", &text);
    // v2 applied (3 accounts transformed), v3 rolled back, the fixed program applied as v3.
    assert_eq!(svg.matches("<g class=\"event ").count(), 6, "{svg}");
    assert_eq!(svg.matches("<g class=\"event requested\"").count(), 3, "{svg}");
    assert_eq!(svg.matches("<g class=\"event applied\"").count(), 2, "{svg}");
    assert_eq!(svg.matches("<g class=\"event rolled_back\"").count(), 1, "{svg}");
    for lane in [">version 1</text>", ">version 2</text>", ">version 3</text>"] {
        assert!(svg.contains(lane), "{lane}\n{svg}");
    }
    assert!(!svg.contains(">version 4</text>"), "{svg}");
    assert!(svg.contains(">v2 applied</text>") && svg.contains(">v3 rolled back</text>"), "{svg}");
    assert!(svg.contains(">v3 applied</text>"), "{svg}");
    assert!(svg.contains("migrate failed: audit: GRACE is over the limit"), "{svg}");
    assert!(svg.contains("&lt;demo: third program&gt;"), "{svg}");
    // The program ran v1, v2 and v3, in that order; no task lanes (one task).
    assert_eq!(svg.matches("<rect class=\"run\"").count(), 3, "{svg}");
    assert!(!svg.contains("task-lane"), "{svg}");
    // A bad --events path is an error before the demo runs.
    let bad = molt(&["demo", "--fast", "--events", dir.join("no/such/dir.jsonl").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error: cannot write '"), "{bad:?}");
    assert!(bad.stdout.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn timeline_draws_an_example() {
    let dir = temp_dir("example");
    // examples/worker_pool: four tasks; v2 changes the `Order` record, so the update is global.
    let run = molt(&[
        "run",
        "examples/worker_pool/v1.molt",
        "--update",
        "examples/worker_pool/v2.molt",
        "--trace-updates=json",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let svg = draw(&dir, "worker_pool", &run.stderr);
    assert_eq!(svg.matches("<g class=\"event ").count(), 2, "{svg}");
    assert!(svg.contains(">request v2</text>") && svg.contains(">v2 applied</text>"), "{svg}");
    assert!(svg.contains("up to 4 tasks alive"), "{svg}");
    // The applied tooltip: 4 orders transformed, with its numbers.
    assert!(svg.contains("<title>applied: version 1 -&gt; 2; waited "), "{svg}");
    assert!(svg.contains(" (4 tasks alive)</title>"), "{svg}");
    assert_eq!(svg.matches("<rect class=\"run\"").count(), 2, "{svg}");
    // Global: every task switches in the one pause, so no task lanes and no transition.
    assert!(!svg.contains("task-lane") && !svg.contains("class=\"transition\""), "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}
