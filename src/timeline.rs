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
    let reason = match get("reason") {
        Some(Value::Str(s)) => Some(s.clone()),
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
        reason,
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
const LEFT: f64 = 90.0;
const TOP: f64 = 60.0;

/// The SVG for `events`. Every event is one `<g class="event KIND">` mark; every version one
/// lane labelled `version N`.
pub fn render(events: &[Event], title: &str) -> String {
    let last_version = events.iter().filter(|e| e.event == "applied").map(|e| e.to).max().unwrap_or(1).max(1);
    let first_version = events.iter().map(|e| e.from).filter(|v| *v > 0).min().unwrap_or(1).min(last_version);
    let max_us = events.iter().map(|e| e.wait_us.max(e.pause_us)).max().unwrap_or(0);
    let len = |us: u64| -> f64 {
        if max_us == 0 { 4.0 } else { 4.0 + 110.0 * ((1 + us) as f64).ln() / ((1 + max_us) as f64).ln() }
    };
    let lane_y = |v: u64| TOP + (last_version - v.clamp(first_version, last_version)) as f64 * LANE + LANE / 2.0;

    // Place the events first: the width follows from them.
    let mut x = LEFT + 30.0;
    let mut marks = String::new();
    let mut runs: Vec<(u64, f64)> = vec![(first_version, LEFT)]; // (version, x where it starts)
    for e in events {
        let y = lane_y(e.from);
        let reason = e.reason.as_deref().unwrap_or("");
        let tip = |what: &str| {
            let mut t = format!("{what}: version {} -> {}", e.from, e.to);
            if e.event != "requested" && e.event != "waiting" {
                let _ = write!(
                    t,
                    "; waited {} us, paused {} us ({} us in transformers)",
                    e.wait_us, e.pause_us, e.transform_us
                );
            }
            if !reason.is_empty() {
                let _ = write!(t, "; {reason}");
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
                x += STEP * 0.6;
            }
            "applied" => {
                let (w, p) = (len(e.wait_us), len(e.pause_us));
                let y2 = lane_y(e.to);
                let _ = writeln!(
                    marks,
                    "<g class=\"event applied\"><title>{}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"8\" fill=\"#ffbb78\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">wait {} us</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{p:.1}\" height=\"{:.1}\" fill=\"#d62728\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">pause {} us</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"bold\">v{} applied</text></g>",
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
                x += STEP;
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
    let right = x + 40.0;
    let height = TOP + (last_version - first_version + 1) as f64 * LANE + 40.0;
    let width = right + 20.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(svg, "<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"40\" font-size=\"10\" fill=\"#555\">{} events, in order (no time stamps: logical time); bar lengths grow with the logarithm of the microseconds</text>",
        events.len()
    );
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
