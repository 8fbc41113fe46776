//! Update events: what happened to each requested update, with timings. Printed for people
//! (`--trace-updates`), as JSON lines for tools (`--trace-updates=json`), returned by the API.

use super::plan::{UpdatePlan, visible};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Requested,
    Waiting,
    Applied,
    Rejected,
    RolledBack,
    /// Per-task consistency: one task moved to the new version (`task`).
    Switched,
    /// Per-task consistency, a transition being reversed: one task went back (`task`).
    Reverted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Requested => "requested",
            EventKind::Waiting => "waiting",
            EventKind::Applied => "applied",
            EventKind::Rejected => "rejected",
            EventKind::RolledBack => "rolled_back",
            EventKind::Switched => "switched",
            EventKind::Reverted => "reverted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateEvent {
    pub kind: EventKind,
    pub from: u32,
    pub to: u32,
    pub functions_added: usize,
    pub functions_changed: usize,
    pub functions_removed: usize,
    pub types_added: usize,
    pub types_changed: usize,
    pub types_removed: usize,
    pub objects_transformed: usize,
    /// From the request to the update point where it was handled.
    pub wait_us: u64,
    /// From the update point being reached to execution resuming.
    pub pause_us: u64,
    /// Time spent in transformers (default and explicit).
    pub transform_us: u64,
    pub reason: Option<String>,
    /// `plan_summary` of the update, for people.
    pub summary: String,
    /// How many tasks are alive (1 in a program that never spawned one).
    pub tasks: usize,
    /// The task a `switched` or `reverted` event is about, and its function.
    pub task: Option<(u32, String)>,
    /// Per-task consistency: from the request to the last task's switch (`applied`).
    pub transition_us: Option<u64>,
}

impl UpdateEvent {
    pub fn new(kind: EventKind, from: u32, plan: Option<&UpdatePlan>) -> UpdateEvent {
        let mut e = UpdateEvent {
            kind,
            from,
            to: from + 1,
            functions_added: 0,
            functions_changed: 0,
            functions_removed: 0,
            types_added: 0,
            types_changed: 0,
            types_removed: 0,
            objects_transformed: 0,
            wait_us: 0,
            pause_us: 0,
            transform_us: 0,
            reason: None,
            summary: String::new(),
            tasks: 1,
            task: None,
            transition_us: None,
        };
        if let Some(p) = plan {
            e.functions_added = visible(&p.functions_added);
            e.functions_changed = visible(&p.functions_changed);
            e.functions_removed = visible(&p.functions_removed);
            e.types_added = p.types_added.len();
            e.types_changed = p.types_changed.len();
            e.types_removed = p.types_removed.len();
            e.summary = p.summary();
            // A request carries the plan's warnings (a transformer that will not run, a field
            // that will be rejected, a likely rename) as its reason.
            // It also says when per-task consistency was asked for and the update reaches the
            // tasks under the global model.
            if kind == EventKind::Requested {
                let mut notes: Vec<String> = p.warnings.iter().map(|w| format!("warning: {w}")).collect();
                if let Some(c) = p.consistency.as_ref().filter(|c| c.starts_with("global")) {
                    notes.push(format!("consistency {c}"));
                }
                if !notes.is_empty() {
                    e.reason = Some(notes.join("; "));
                }
            }
        }
        e
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> UpdateEvent {
        self.reason = Some(reason.into());
        self
    }

    /// One line for people, as `--trace-updates` prints it (and, for rejections and
    /// rollbacks, as stderr always shows them).
    pub fn human(&self) -> String {
        let (from, to) = (self.from, self.to);
        // The reason may quote the program (`error("a\nb")`): escaped, so that an event stays
        // one line and no control character reaches the terminal.
        let reason = &escape_controls(self.reason.as_deref().unwrap_or(""));
        match self.kind {
            EventKind::Requested if self.summary.is_empty() => format!("update requested (version {from} -> {to})"),
            EventKind::Requested if self.reason.is_some() => {
                format!("update requested (version {from} -> {to}): {} [{reason}]", self.summary)
            }
            EventKind::Requested => format!("update requested (version {from} -> {to}): {}", self.summary),
            EventKind::Waiting => format!("update waiting (version {from} -> {to}): {reason}"),
            EventKind::Applied => {
                let mut line = format!(
                    "update applied (version {from} -> {to}): {}, {} objects transformed; waited {} us, paused {} us ({} us in transformers)",
                    self.summary, self.objects_transformed, self.wait_us, self.pause_us, self.transform_us
                );
                if let Some(t) = self.transition_us {
                    line.push_str(&format!("; every task switched {t} us after the request"));
                }
                if self.reason.is_some() {
                    line.push_str(&format!(" [{reason}]"));
                }
                line
            }
            EventKind::Rejected => format!("update rejected (version {from} -> {to}): {reason}"),
            EventKind::RolledBack => format!("update rolled back (version {from} -> {to}): {reason}"),
            EventKind::Switched | EventKind::Reverted => {
                let (id, name) = self.task.as_ref().map_or((0, ""), |(i, n)| (*i, n.as_str()));
                let verb = if self.kind == EventKind::Switched { "switched" } else { "went back" };
                format!(
                    "task {id} ({name}) {verb} from version {from} to {to} ({} us after the request){}",
                    self.wait_us,
                    if self.reason.is_some() { format!(" [{reason}]") } else { String::new() }
                )
            }
        }
    }

    /// One JSON object, with the fields DSU.md names.
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"event\":\"{}\",\"from\":{},\"to\":{},\"functions_added\":{},\"functions_changed\":{},\"functions_removed\":{},\"types_added\":{},\"types_changed\":{},\"types_removed\":{},\"objects_transformed\":{},\"wait_us\":{},\"pause_us\":{},\"transform_us\":{},\"tasks\":{}",
            self.kind.as_str(),
            self.from,
            self.to,
            self.functions_added,
            self.functions_changed,
            self.functions_removed,
            self.types_added,
            self.types_changed,
            self.types_removed,
            self.objects_transformed,
            self.wait_us,
            self.pause_us,
            self.transform_us,
            self.tasks
        );
        if let Some((id, name)) = &self.task {
            s.push_str(&format!(",\"task\":{id},\"function\":{}", json_string(name)));
        }
        if let Some(t) = self.transition_us {
            s.push_str(&format!(",\"transition_us\":{t}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(",\"reason\":");
            s.push_str(&json_string(r));
        }
        s.push('}');
        s
    }
}

/// `s` with its control characters escaped (`\n`, `\r`, `\t`, else `\u{1b}`), for a line
/// meant for people.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
