//! `molt timeline EVENTS.jsonl -o timeline.svg`: draws a stream of update events, as
//! `--trace-updates=json` prints them, as an SVG picture.
//!
//! The events carry durations (`wait_us`, `pause_us`, `transform_us`) but no time stamps, so
//! the picture has a *logical* time axis: the events are placed left to right in the order
//! they were printed, each taking a step; an update's wait and pause are drawn as bars whose
//! length grows with the logarithm of their microseconds (a 10 ms pause next to a 1 us wait
//! would otherwise be invisible), each labelled with its value. One lane per version: the
//! program runs in a version from the update that made it to the next one.
//!
//! With tasks (`--consistency per-task`), each task's `switched` and `reverted` event is a mark
//! on the version lanes (an arrow from the version the task left to the one it runs now), the
//! transition is a shaded band from the first task's switch to the update's end, and a second
//! part of the picture has one lane per task named by these events, coloured by the version that
//! task runs over time: the moments when tasks run different versions are visible at a glance.
//!
//! The SVG is written directly rather than with a plotting crate: the picture is lanes,
//! bars and labelled marks with tooltips (`<title>`), not a chart with numeric axes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// One event line, with the fields the picture uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub event: String,
    pub from: u64,
    pub to: u64,
    pub wait_us: u64,
    pub pause_us: u64,
    pub transform_us: u64,
    pub objects_transformed: u64,
    pub reason: Option<String>,
    /// How many tasks were alive (1 in a program that never spawned one).
    pub tasks: u64,
    /// `switched` and `reverted`: the task's id and the function it runs.
    pub task: Option<u64>,
    pub function: Option<String>,
    /// The `applied` event of a per-task update: from the request to the last task's switch.
    pub transition_us: Option<u64>,
}

/// Reads the event lines of `text`; lines that are not update events (program output, other
/// stderr lines) are skipped.
pub fn parse(text: &str) -> Vec<Event> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Event> {
    let fields = parse_object(line.trim())?;
    let get = |k: &str| fields.iter().find(|(name, _)| name == k).map(|(_, v)| v);
    let num = |k: &str| match get(k) {
        Some(Value::Num(n)) => *n,
        _ => 0,
    };
    let Some(Value::Str(event)) = get("event") else { return None };
    let text = |k: &str| match get(k) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let opt_num = |k: &str| match get(k) {
        Some(Value::Num(n)) => Some(*n),
        _ => None,
    };
    Some(Event {
        event: event.clone(),
        from: num("from"),
        to: num("to"),
        wait_us: num("wait_us"),
        pause_us: num("pause_us"),
        transform_us: num("transform_us"),
        objects_transformed: num("objects_transformed"),
        reason: text("reason"),
        tasks: num("tasks"),
        task: opt_num("task"),
        function: text("function"),
        transition_us: opt_num("transition_us"),
    })
}

enum Value {
    Str(String),
    Num(u64),
    Other,
}

/// A flat JSON object (the events have no nesting): its fields in order.
fn parse_object(s: &str) -> Option<Vec<(String, Value)>> {
    let mut chars = s.strip_prefix('{')?.strip_suffix('}')?.chars().peekable();
    let mut out = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        if chars.next()? != '"' {
            return None;
        }
        let key = read_string(&mut chars)?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != ':' {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            Value::Str(read_string(&mut chars)?)
        } else {
            let mut raw = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                raw.push(c);
                chars.next();
            }
            raw.trim().parse().map(Value::Num).unwrap_or(Value::Other)
        };
        out.push((key, value));
    }
}

fn read_string(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<String> {
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                    out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('\u{fffd}'));
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STEP: f64 = 70.0;
const LANE: f64 = 56.0;
const TASK_LANE: f64 = 24.0;
const LEFT: f64 = 110.0;
const TOP: f64 = 60.0;
const MAX_TASK_LANES: usize = 32;
/// The key of the lane of the tasks that no `switched` or `reverted` event names.
const OTHERS: u64 = u64::MAX;

/// The fill of a version in the task lanes (one colour per version, repeating).
fn version_colour(v: u64) -> &'static str {
    const COLOURS: [&str; 6] = ["#aec7e8", "#98df8a", "#c5b0d5", "#ffbb78", "#f7b6d2", "#dbdb8d"];
    COLOURS[(v % COLOURS.len() as u64) as usize]
}

/// `task 1 (main)`.
fn task_name(id: u64, function: Option<&str>) -> String {
    match function {
        Some(f) => format!("task {id} ({f})"),
        None => format!("task {id}"),
    }
}

/// Which version each task named by a `switched` or `reverted` event runs, over logical time.
#[derive(Default)]
struct TaskLanes {
    /// Task id -> (its function, the version it runs, where that run started).
    now: std::collections::BTreeMap<u64, (Option<String>, u64, f64)>,
    /// (task id, version, x from, x to).
    runs: Vec<(u64, u64, f64, f64)>,
}

impl TaskLanes {
    fn set(&mut self, task: u64, version: u64, x: f64) {
        if let Some((_, v, start)) = self.now.get_mut(&task) {
            if *v != version {
                self.runs.push((task, *v, *start, x));
                (*v, *start) = (version, x);
            }
        }
    }

    /// An update that ended: every task runs `version` from `x` on.
    fn all(&mut self, version: u64, x: f64) {
        let ids: Vec<u64> = self.now.keys().copied().collect();
        for id in ids {
            self.set(id, version, x);
        }
    }
}

/// The SVG for `events`. Every event is one `<g class="event KIND">` mark; every version one
/// lane labelled `version N`; every task named by a `switched` or `reverted` event one lane
/// labelled with its name.
pub fn render(events: &[Event], title: &str) -> String {
    let per_task = |e: &Event| matches!(e.event.as_str(), "switched" | "reverted");
    // A version some task ran in a transition has a lane, even when the transition was reversed.
    let last_version = events
        .iter()
        .filter(|e| e.event == "applied" || per_task(e))
        .map(|e| if e.event == "applied" { e.to } else { e.to.max(e.from) })
        .max()
        .unwrap_or(1)
        .max(1);
    let first_version = events.iter().map(|e| e.from).filter(|v| *v > 0).min().unwrap_or(1).min(last_version);
    let start_version = events.first().map_or(first_version, |e| e.from.clamp(first_version, last_version));
    let max_us = events.iter().map(|e| e.wait_us.max(e.pause_us)).max().unwrap_or(0);
    let max_tasks = events.iter().map(|e| e.tasks).max().unwrap_or(0);
    let len = |us: u64| -> f64 {
        if max_us == 0 { 4.0 } else { 4.0 + 110.0 * ((1 + us) as f64).ln() / ((1 + max_us) as f64).ln() }
    };
    // Room above the lanes for the slanted labels of the tasks' switches.
    let top = if events.iter().any(per_task) { TOP + 50.0 } else { TOP };
    let lane_y = |v: u64| top + (last_version - v.clamp(first_version, last_version)) as f64 * LANE + LANE / 2.0;

    let mut tasks = TaskLanes::default();
    for e in events.iter().filter(|e| per_task(e)) {
        if let Some(id) = e.task {
            tasks.now.entry(id).or_insert((e.function.clone(), start_version, LEFT));
        }
    }
    // The tasks no event names (they never switched) follow the updates' outcomes only.
    let named = tasks.now.len() as u64;
    if named > 0 && max_tasks > named {
        tasks.now.insert(OTHERS, (None, start_version, LEFT));
    }
    let lane_name = |id: u64, function: Option<&str>| {
        if id == OTHERS {
            let n = max_tasks - named;
            format!("{n} other task{}", if n == 1 { "" } else { "s" })
        } else {
            task_name(id, function)
        }
    };
    // At most MAX_TASK_LANES lanes, plus one line saying how many are left out.
    let task_rows = tasks.now.len().min(MAX_TASK_LANES) + usize::from(tasks.now.len() > MAX_TASK_LANES);

    // Place the events first: the width follows from them.
    let mut x = LEFT + 30.0;
    let mut marks = String::new();
    let mut runs: Vec<(u64, f64)> = vec![(start_version, LEFT)]; // (version, x where it starts)
    let mut transition_start: Option<f64> = None;
    // How far the labels reach to the right (the picture is at least that wide).
    let mut extent: f64 = 640.0;
    let mut transitions: Vec<(f64, f64, String)> = Vec::new(); // (x from, x to, what)
    for e in events {
        let y = lane_y(e.from);
        let reason = e.reason.as_deref().unwrap_or("");
        let who = task_name(e.task.unwrap_or(0), e.function.as_deref());
        let tip = |what: &str| {
            let mut t = match what {
                "switched" => {
                    format!("{who} switched from version {} to {}, {} us after the request", e.from, e.to, e.wait_us)
                }
                "reverted" => {
                    format!("{who} went back from version {} to {}, {} us after the request", e.from, e.to, e.wait_us)
                }
                _ => format!("{what}: version {} -> {}", e.from, e.to),
            };
            if !matches!(what, "requested" | "waiting" | "switched" | "reverted") {
                let _ = write!(
                    t,
                    "; waited {} us, paused {} us ({} us in transformers)",
                    e.wait_us, e.pause_us, e.transform_us
                );
            }
            if let Some(us) = e.transition_us {
                let _ = write!(t, "; every task switched {us} us after the request");
            }
            if !reason.is_empty() {
                let _ = write!(t, "; {reason}");
            }
            if e.tasks > 1 {
                let _ = write!(t, " ({} tasks alive)", e.tasks);
            }
            esc(&t)
        };
        match e.event.as_str() {
            "requested" => {
                let _ = writeln!(
                    marks,
                    "<g class=\"event requested\"><title>{}</title><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"6\" fill=\"#1f77b4\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">request v{}</text></g>",
                    tip("requested"),
                    y - 12.0,
                    e.to
                );
                x += STEP * 0.6;
            }
            "waiting" => {
                let _ = writeln!(
                    marks,
                    "<g class=\"event waiting\"><title>{}</title><path d=\"M{:.1},{:.1} l12,0 l-6,10 z\" fill=\"#ff7f0e\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">waiting</text></g>",
                    tip("waiting"),
                    x - 6.0,
                    y + 8.0,
                    y + 30.0
                );
                x += STEP * 0.8;
            }
            "switched" | "reverted" => {
                // An arrow from the version the task left to the one it runs now, labelled
                // with the task (the label slanted, so that close marks stay readable).
                let (y1, y2) = (lane_y(e.from), lane_y(e.to));
                let (colour, label) = if e.event == "switched" {
                    ("#2ca02c", format!("{who} to v{}", e.to))
                } else {
                    ("#9467bd", format!("{who} back to v{}", e.to))
                };
                let head = if y2 < y1 { -7.0 } else { 7.0 };
                let _ = writeln!(
                    marks,
                    "<g class=\"event {}\"><title>{}</title><line x1=\"{x:.1}\" y1=\"{y1:.1}\" x2=\"{x:.1}\" y2=\"{y2:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><path d=\"M{:.1},{:.1} l5,{:.1} l-10,0 z\" fill=\"{colour}\"/><circle cx=\"{x:.1}\" cy=\"{y1:.1}\" r=\"3\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{colour}\" transform=\"rotate(-30 {:.1} {:.1})\">{}</text></g>",
                    e.event,
                    tip(&e.event),
                    x,
                    y2,
                    -head,
                    x + 4.0,
                    y2.min(y1) - 8.0,
                    x + 4.0,
                    y2.min(y1) - 8.0,
                    esc(&label)
                );
                if let Some(id) = e.task {
                    tasks.set(id, e.to, x);
                }
                transition_start.get_or_insert(x - 12.0);
                x += STEP * 0.6;
            }
            "applied" => {
                let (w, p) = (len(e.wait_us), len(e.pause_us));
                let y2 = lane_y(e.to);
                let transition = match e.transition_us {
                    Some(us) => format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">every task switched {us} us after the request</text>",
                        x + w + p + 4.0,
                        y2 + 16.0
                    ),
                    None => String::new(),
                };
                if e.transition_us.is_some() {
                    extent = extent.max(x + w + p + 250.0);
                }
                extent = extent.max(x + w + p + 80.0);
                let _ = writeln!(
                    marks,
                    "<g class=\"event applied\"><title>{}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"8\" fill=\"#ffbb78\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">wait {} us</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{p:.1}\" height=\"{:.1}\" fill=\"#d62728\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">pause {} us</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"bold\">v{} applied</text>{transition}</g>",
                    tip("applied"),
                    y - 4.0,
                    x + w / 2.0,
                    y + 20.0,
                    e.wait_us,
                    x + w,
                    y2 - 8.0,
                    (y - y2) + 16.0,
                    x + w + p / 2.0,
                    y + 32.0,
                    e.pause_us,
                    x + w + p + 4.0,
                    y2 - 12.0,
                    e.to
                );
                x += w + p;
                runs.push((e.to, x));
                tasks.all(e.to, x);
                if let Some(start) = transition_start.take() {
                    let what = match e.transition_us {
                        Some(us) => format!("per-task transition to version {}: {us} us", e.to),
                        None => format!("per-task transition to version {}", e.to),
                    };
                    transitions.push((start, x, what));
                }
                // Room for the "vN applied" label before the next mark.
                x += STEP * 1.5;
            }
            "rejected" | "rolled_back" => {
                // A rollback paused the program too (it was prepared, then undone).
                let w = len(e.wait_us) + if e.pause_us > 0 { len(e.pause_us) } else { 0.0 };
                let label = if e.event == "rejected" { "rejected" } else { "rolled back" };
                let _ = writeln!(
                    marks,
                    "<g class=\"event {}\"><title>{}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"8\" fill=\"#ffbb78\"/><path d=\"M{:.1},{:.1} l12,12 m0,-12 l-12,12\" stroke=\"#d62728\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#d62728\">v{} {label}</text></g>",
                    e.event,
                    tip(label),
                    y - 4.0,
                    x + w,
                    y - 6.0,
                    x + w + 6.0,
                    y + 24.0,
                    e.to
                );
                // Nothing changed: every task runs the version it ran before the request.
                tasks.all(e.from, x + w);
                if let Some(start) = transition_start.take() {
                    transitions.push((start, x + w, format!("per-task transition to version {}: reversed", e.to)));
                }
                x += w + STEP;
            }
            other => {
                let _ = writeln!(
                    marks,
                    "<g class=\"event other\"><title>{}</title><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#7f7f7f\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text></g>",
                    tip(other),
                    y - 10.0,
                    esc(other)
                );
                x += STEP * 0.6;
            }
        }
    }
    let right = (x + 40.0).max(extent);
    // A transition the stream does not finish (the program ended first) goes to the edge.
    if let Some(start) = transition_start {
        transitions.push((start, right, "per-task transition (not finished in these events)".into()));
    }
    let versions_bottom = top + (last_version - first_version + 1) as f64 * LANE;
    let tasks_top = versions_bottom + 36.0;
    let height = if task_rows == 0 { versions_bottom + 40.0 } else { tasks_top + task_rows as f64 * TASK_LANE + 40.0 };
    let width = right + 20.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(svg, "<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    let alive = if max_tasks > 1 { format!(", up to {max_tasks} tasks alive") } else { String::new() };
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"40\" font-size=\"10\" fill=\"#555\">{} events, in order (no time stamps: logical time){alive};</text>\n<text x=\"10\" y=\"53\" font-size=\"10\" fill=\"#555\">bar lengths grow with the logarithm of the microseconds; hover over a mark for its numbers</text>",
        events.len()
    );
    let bottom = if task_rows == 0 { versions_bottom } else { tasks_top + task_rows as f64 * TASK_LANE };
    for (from, to, what) in &transitions {
        let _ = writeln!(
            svg,
            "<g class=\"transition\"><title>{}</title><rect x=\"{from:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fff3c4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#8a6d00\">{}</text></g>",
            esc(what),
            (to - from).max(0.0),
            bottom + 18.0 - top,
            from + 2.0,
            bottom + 14.0,
            esc(what)
        );
    }
    for v in first_version..=last_version {
        let y = lane_y(v);
        let _ = writeln!(
            svg,
            "<g class=\"lane\"><line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"10\" y=\"{:.1}\" font-size=\"12\">version {v}</text></g>",
            y + 4.0
        );
    }
    // The program runs in each version from the update that made it to the next one.
    for (i, (v, start)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(right, |r| r.1);
        let y = lane_y(*v);
        let _ = writeln!(
            svg,
            "<rect class=\"run\" x=\"{start:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\" fill=\"#2ca02c\" opacity=\"0.6\"><title>running version {v}</title></rect>",
            y - 2.0,
            (end - start).max(0.0)
        );
    }
    if !tasks.now.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\">tasks: the version each one runs</text>",
            tasks_top - 10.0
        );
        let ids: Vec<u64> = tasks.now.keys().copied().collect();
        for (id, (_, v, start)) in &tasks.now {
            tasks.runs.push((*id, *v, *start, right));
        }
        if ids.len() > MAX_TASK_LANES {
            let _ = writeln!(
                svg,
                "<text x=\"10\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">({} more task lanes not drawn)</text>",
                tasks_top + MAX_TASK_LANES as f64 * TASK_LANE + 14.0,
                ids.len() - MAX_TASK_LANES
            );
        }
        for (row, id) in ids.iter().take(MAX_TASK_LANES).enumerate() {
            let y = tasks_top + row as f64 * TASK_LANE;
            let name = lane_name(*id, tasks.now[id].0.as_deref());
            let _ = writeln!(
                svg,
                "<g class=\"task-lane\"><text x=\"10\" y=\"{:.1}\" font-size=\"11\">{}</text></g>",
                y + 14.0,
                esc(&name)
            );
            for (_, v, from, to) in tasks.runs.iter().filter(|r| r.0 == *id) {
                let w = (to - from).max(0.0);
                let label = if w >= 22.0 {
                    format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">v{v}</text>",
                        from + w / 2.0,
                        y + 14.0
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    svg,
                    "<g class=\"task-run\"><title>{} runs version {v}</title><rect x=\"{from:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"{}\" stroke=\"white\"/>{label}</g>",
                    esc(&name),
                    y + 2.0,
                    version_colour(*v)
                );
            }
        }
    }
    svg.push_str(&marks);
    svg.push_str("</svg>\n");
    svg
}

const USAGE: &str = "`molt timeline` takes EVENTS.jsonl -o OUT.svg";

/// `molt timeline EVENTS.jsonl -o OUT.svg`.
pub fn cmd(args: &[String]) -> Result<ExitCode, String> {
    let (input, output) = match args {
        [i, o, out] if o == "-o" => (i, out),
        [o, out, i] if o == "-o" => (i, out),
        _ => return Err(USAGE.into()),
    };
    let text = match std::fs::read_to_string(input) {
        Ok(t) => t,
        Err(e) => {
            molt::report!("error: cannot read '{input}': {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let events = parse(&text);
    if events.is_empty() {
        molt::report!("error: '{input}' has no update events (lines printed by `molt run ... --trace-updates=json`)");
        return Ok(ExitCode::from(2));
    }
    let name = Path::new(input).file_name().map_or(input.clone(), |n| n.to_string_lossy().into_owned());
    let svg = render(&events, &format!("update timeline: {name}"));
    if let Err(e) = std::fs::write(output, svg) {
        molt::report!("error: cannot write '{output}': {e}");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
