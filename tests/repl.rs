//! `molt repl` driven through a pseudo-terminal, as a person would use it: typing, Tab,
//! arrows, Ctrl-C and Ctrl-D, with the program's output appearing above the prompt.

use std::path::{Path, PathBuf};
use std::process::Command;

use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};

/// A scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("molt-repl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Repl {
    s: PtySession,
}

impl Repl {
    /// `molt repl ARGS` in `dir`, with its history in `dir/history`.
    fn start(dir: &Path, args: &[&str]) -> Repl {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_molt"));
        cmd.arg("repl").args(args).current_dir(dir).env("MOLT_HISTORY", dir.join("history")).env("TERM", "xterm");
        let s = spawn_with_options(cmd, Options::new().timeout_ms(Some(15_000)).strip_ansi_escape_codes(true))
            .expect("spawn molt repl");
        let mut r = Repl { s };
        r.expect("molt repl:");
        r
    }

    /// Waits for `text` in the output (everything before it is consumed).
    fn expect(&mut self, text: &str) -> String {
        match self.s.exp_string(text) {
            Ok(before) => before,
            Err(e) => panic!("did not see {text:?}: {e}"),
        }
    }

    fn expect_regex(&mut self, re: &str) -> String {
        match self.s.exp_regex(re) {
            Ok((_, found)) => found,
            Err(e) => panic!("did not see /{re}/: {e}"),
        }
    }

    fn line(&mut self, text: &str) {
        self.s.send_line(text).unwrap();
    }

    /// Types a definition and waits until its update is applied and the prompt is back.
    fn define(&mut self, text: &str) {
        self.line(text);
        self.expect("update applied (version");
        self.prompt();
    }

    fn prompt(&mut self) {
        self.expect("molt> ");
    }

    fn quit(mut self) {
        self.line(":quit");
        self.s.exp_eof().expect("the REPL ends after :quit");
    }
}

const APP: &str = r#"let count = 0;
fn greet(n) { return "hello " + str(n); }
fn main() {
    loop {
        update;
        count += 1;
        print(greet(count));
        if count >= 2000 { return; }
        sleep(0.05);
    }
}
"#;

#[test]
fn load_run_edit_reload_while_running() {
    let dir = scratch("live");
    let app = dir.join("app.molt");
    std::fs::write(&app, APP).unwrap();
    let mut r = Repl::start(&dir, &["app.molt"]);
    r.expect("loaded app.molt");
    r.prompt();
    r.line(":run");
    r.expect("[main is running in the background");
    r.expect("hello 3");

    // Edit the file on disk, then :reload: the plan, then the update applies at the program's
    // next update point; the counter (a global) goes on from where version 1 left it.
    std::fs::write(&app, APP.replace("\"hello \"", "\"howdy \"")).unwrap();
    r.line(":reload");
    r.expect("update plan: version 1 -> 2");
    r.expect("functions changed: greet");
    r.expect("update applied (version 1 -> 2)");
    r.expect("paused");
    let first_new = r.expect_regex(r"howdy \d+");
    let n: u32 = first_new.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 3, "the state was not carried over: {first_new}");

    // A broken edit is rejected; the program keeps running its current version.
    std::fs::write(&app, APP.replace("\"hello \"", "\"broken \" + ")).unwrap();
    r.line(":reload");
    r.expect("error[E0001]");
    r.expect("does not compile: not pushed: the program goes on unchanged");
    let later = r.expect_regex(r"howdy \d+");
    let m: u32 = later.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(m > n, "{later} after {first_new}");

    // A definition typed at the prompt is an update of the running program too.
    r.line(r#"fn greet(n) { return "hi " + str(n * 1000); }"#);
    r.expect("update applied (version 2 -> 3)");
    r.expect_regex(r"hi \d+000");

    // Expressions and :globals while it runs are evaluated at its next update point.
    r.line(r#"str(count) + " so far""#);
    r.expect("[the program is running: this runs at its next update point]");
    r.expect_regex(r#""\d+ so far""#);
    r.line(":globals");
    r.expect_regex(r"count = \d+");

    r.line(":stop");
    r.expect("[main stopped]");
    r.prompt();
    r.line(r#"str(count) + " counted""#);
    r.expect_regex(r#""\d+ counted""#);
    r.prompt();
    r.line(":versions");
    r.expect("version 1: start");
    r.expect("version 2: :reload (+0 ~1 -0 functions");
    r.expect("version 3: prompt: greet (+0 ~1 -0 functions");
    r.expect("version 4: evaluation at an update point");
    r.prompt();
    r.quit();
}

#[test]
fn every_command() {
    let dir = scratch("commands");
    std::fs::write(
        dir.join("shapes.molt"),
        "let made = 0;\ntype Point { x, y = 0, fn sum() { return self.x + self.y; } }\nfn make(x) { made += 1; return Point { x: x }; }\nfn main() { print(\"main ran\", make(5).sum()); }\n",
    )
    .unwrap();
    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    r.line(":help");
    for c in [":load FILE", ":run", ":stop", ":reload", ":plan", ":versions", ":trace on|off", ":globals", ":types"] {
        r.expect(c);
    }
    r.expect(":funcs");
    r.expect(":quit");
    r.prompt();
    r.line(":run");
    r.expect("there is no `main` to run");
    r.prompt();
    r.line(":reload");
    r.expect("no program is loaded");
    r.prompt();
    r.line(":load shapes.molt");
    r.expect("loaded shapes.molt (version 1: 3 functions, 1 types, 1 globals; :run starts main)");
    r.prompt();
    r.line(":funcs");
    r.expect("fn make(x)  [shapes.molt:3]");
    r.expect("fn main()  [shapes.molt:4]");
    r.prompt();
    r.line(":types");
    r.expect("type Point { x, y = .. }  methods: sum");
    r.prompt();
    r.line(":run");
    r.expect("main ran 5");
    r.expect("[main finished]");
    r.prompt();
    r.line(":globals");
    r.expect("made = 1");
    r.prompt();
    r.line(":stop");
    r.expect("nothing is running");
    r.prompt();
    r.line(":plan");
    r.expect("update plan: version 1 -> 2");
    r.expect("functions unchanged: 3");
    r.prompt();
    r.line(":trace on");
    r.expect("trace on");
    r.prompt();
    std::fs::write(
        dir.join("shapes.molt"),
        "let made = 0;\ntype Point { x, y = 0, z = 7, fn sum() { return self.x + self.y + self.z; } }\nfn make(x) { made += 1; return Point { x: x }; }\nfn main() { print(\"main ran\", make(5).sum()); }\nlet kept = make(1);\n",
    )
    .unwrap();
    r.line(":plan");
    r.expect("type changed: Point (+z)");
    r.prompt();
    r.line(":reload");
    r.expect("update requested (version 1 -> 2)");
    r.expect("update applied (version 1 -> 2)");
    r.prompt();
    r.line("kept");
    r.expect("Point { x: 1, y: 0, z: 7 }");
    r.prompt();
    r.line(":trace off");
    r.expect("trace off");
    r.prompt();
    r.line(":versions");
    r.expect("version 2: :reload (+0 ~2 -0 functions, +0 ~1 -0 types, +1 -0 globals)");
    r.prompt();
    r.line(":nonsense");
    r.expect("unknown command ':nonsense'");
    r.prompt();
    r.line(":glo");
    r.expect("made = 2");
    r.prompt();
    r.quit();
}

#[test]
fn multi_line_input_follows_the_parser() {
    let dir = scratch("multiline");
    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    // An open function body continues; a brace inside a string does not count.
    r.line("fn shout(s) {");
    r.line("  let t = \"{\" + s.upper();");
    r.line("  return t + \"}\";");
    r.line("}");
    r.expect("update applied (version 1 -> 2): +1 ~0 -0 functions");
    r.prompt();
    r.line("shout(\"abc\")");
    r.expect("\"{ABC}\"");
    r.prompt();
    // An unfinished expression continues too.
    r.line("[10,");
    r.line(" 20].len() *");
    r.line(" 21");
    r.expect("42");
    r.prompt();
    // Statements over several lines, with a final expression printed.
    r.line("let total = 0;");
    r.line("for i in 0..5 {");
    r.line("  total += i;");
    r.line("}");
    r.line("total * 100");
    r.expect("1000");
    r.prompt();
    // Definitions and then statements in one entry: defined first, then run.
    r.line("fn twice(x) { return x * 2; } print(twice(21)); twice(5) + 1");
    r.expect("update applied (version 3 -> 4): +1 ~0 -0 functions");
    r.expect("42");
    r.expect("11");
    r.prompt();
    r.quit();
}

#[test]
fn tab_completes_names_methods_and_commands() {
    let dir = scratch("complete");
    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    r.define("fn frobnicate(n) { return n * 3; }");
    r.define("type Vec2 { x, y, fn manhattan() { return self.x + self.y; } }");
    r.define("let origin_distance = 5;");
    // A function name.
    r.s.send("frobn").unwrap();
    r.s.send("\t").unwrap();
    r.line("(33)");
    r.expect("99");
    r.prompt();
    // A method after `.`.
    r.s.send("Vec2 { x: 30, y: 12 }.manh").unwrap();
    r.s.send("\t").unwrap();
    r.line("()");
    r.expect("42");
    r.prompt();
    // A global.
    r.s.send("origin_d").unwrap();
    r.s.send("\t").unwrap();
    r.line(" + 1");
    r.expect("6");
    r.prompt();
    // A :command.
    r.s.send(":vers").unwrap();
    r.s.send("\t").unwrap();
    r.line("");
    r.expect("version 1: start");
    r.prompt();
    r.quit();
}

#[test]
fn history_is_kept_across_sessions() {
    let dir = scratch("history");
    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    r.line("6 * 7 + 1000");
    r.expect("1042");
    r.prompt();
    r.quit();
    let saved = std::fs::read_to_string(dir.join("history")).expect("history file written");
    assert!(saved.contains("6 * 7 + 1000"), "{saved}");

    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    r.s.send("\x1b[A").unwrap(); // Up: `:quit`, the last line of the previous session
    r.s.send("\x1b[A").unwrap(); // Up again: the line before
    r.line("");
    r.expect("1042");
    r.prompt();
    r.quit();
}

#[test]
fn errors_at_the_prompt_keep_the_session() {
    let dir = scratch("errors");
    let mut r = Repl::start(&dir, &[]);
    r.prompt();
    r.define("let kept = 41;");
    r.define("type Acct { id }");
    r.define("let accounts = [];");
    r.line("accounts.push(Acct { id: 7 })");
    r.prompt();
    // Syntax error.
    r.line("kept + * 2");
    r.expect("error[E0001]: syntax error");
    r.prompt();
    // Compile error: an undefined name, pointed at in what was typed.
    r.line("kept + missing");
    r.expect("error[E0003]: undefined name 'missing'");
    r.expect("<input>:1:8");
    r.prompt();
    // Runtime error, with its trace.
    r.line("error(\"boom\")");
    r.expect("error: boom");
    r.prompt();
    // A rejected update: a new field without a default or a transformer.
    r.line("type Acct { id, owner }");
    r.expect("update rejected (version 4 -> 5): type Acct: new field 'owner' has no default");
    r.prompt();
    // A rolled-back update: a transformer that fails.
    r.line("type Acct { id, owner } transform Acct(old) { return Acct { id: old.id, owner: error(\"no owner\") }; }");
    r.expect("update rolled back (version 4 -> 5)");
    r.prompt();
    // Ctrl-C interrupts a running evaluation; the session stays.
    r.line("while true { kept = kept; }");
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.s.send_control('c').unwrap();
    r.expect("error: interrupted");
    r.prompt();
    // Everything is still there.
    r.line("accounts[0].id * 6 + kept - 41");
    r.expect("42");
    r.prompt();
    r.line("accounts");
    r.expect("[Acct { id: 7 }]");
    r.prompt();
    // Ctrl-D leaves.
    r.s.send_control('d').unwrap();
    r.s.exp_eof().expect("Ctrl-D ends the session");
}

#[test]
fn piped_input_is_a_transcript() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = scratch("piped");
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .arg("repl")
        .current_dir(&dir)
        .env("MOLT_HISTORY", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let script =
        "fn twice(x) {\n  return x * 2;\n}\ntwice(21)\nlet names = [\"a\",\n  \"b\"];\nnames.join(\"+\")\n:funcs\n";
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("[update applied")).collect();
    assert_eq!(
        lines,
        [
            "molt repl: type definitions, statements or expressions; :help lists the commands, Ctrl-D leaves",
            "42",
            "\"a+b\"",
            "fn twice(x)  [prompt]",
        ],
        "{text}"
    );
    assert!(out.status.success());
}

/// `:reload` of a file that compiles, while a function typed at the prompt no longer
/// compiles against it (the file changed a type the function builds): the function is left
/// out of the update, which says so, and can be typed again to fit.
#[test]
fn reload_leaves_out_prompt_functions_the_file_no_longer_fits() {
    let dir = scratch("stale");
    std::fs::write(dir.join("p.molt"), "type Box { v }\nlet boxes = [Box { v: 1 }];\n").unwrap();
    let mut r = Repl::start(&dir, &["p.molt"]);
    r.prompt();
    r.define("fn mkbox(n) { return Box { v: n }; }");
    std::fs::write(
        dir.join("p.molt"),
        "type Box { w }\ntransform Box(old) { return Box { w: old.v }; }\nlet boxes = [Box { w: 1 }];\n",
    )
    .unwrap();
    r.line(":reload");
    r.expect("error[E0007]");
    r.expect("note: mkbox, typed at the prompt, does not compile against p.molt any more (above): it is left out");
    r.expect("update applied (version");
    r.prompt();
    r.line("boxes");
    r.expect("[Box { w: 1 }]");
    r.prompt();
    r.define("fn mkbox(n) { return Box { w: n }; }");
    r.line("mkbox(5)");
    r.expect("Box { w: 5 }");
    r.prompt();
    r.quit();
}

/// An update that waits (strict: the running `main` has no matching update point in the new
/// version) when the program is stopped is applied then; with `:trace on` its `requested`
/// line is shown once, when the program took it (it was shown again when the stopped
/// program's session asked for it anew).
#[test]
fn an_update_waiting_when_the_program_stops_is_traced_once() {
    const V1: &str = "fn main() {\n    while true {\n        let s = 0;\n        for i in 0..300000 { s += i; }\n        update \"a\";\n    }\n}\n";
    let dir = scratch("waiting");
    std::fs::write(dir.join("w.molt"), V1).unwrap();
    let mut r = Repl::start(&dir, &["w.molt"]);
    r.prompt();
    r.line(":trace on");
    r.expect("trace on");
    r.prompt();
    r.line(":run");
    r.expect("[main is running in the background");
    std::fs::write(dir.join("w.molt"), V1.replace("\"a\"", "\"b\"")).unwrap();
    r.line(":reload");
    r.expect("[update requested (version 1 -> 2)");
    r.expect("[update waiting (version 1 -> 2)");
    r.line(":stop");
    r.expect("[main stopped]");
    let between = r.expect("[update applied (version 1 -> 2)");
    assert!(!between.contains("update requested"), "requested shown again: {between}");
    r.prompt();
    r.quit();
}

/// `:load` of a directory or of a file that is not UTF-8 says so, with the path (it used to
/// blame the session's internal `<repl>:1:1` import line).
#[test]
fn load_of_a_directory_or_a_bad_file_names_it() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = scratch("load-dir");
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    std::fs::write(dir.join("bad.molt"), b"fn main() {\n  print(\"h\xc3\xa9\xff\");\n}\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .arg("repl")
        .current_dir(&dir)
        .env("MOLT_HISTORY", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b":load adir\n:load bad.molt\n1 + 1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "molt repl: type definitions, statements or expressions; :help lists the commands, Ctrl-D leaves\n\
         error: cannot load 'adir': it is a directory (give a .molt file)\n\
         adir was not loaded; the session is unchanged\n\
         error: cannot read 'bad.molt': bad.molt:2:12: invalid UTF-8 (byte 0xff): source files must be UTF-8 text\n\
         bad.molt was not loaded; the session is unchanged\n\
         2\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// Issue 17, finding 7: the prompt owns the terminal. A running program's `read_line()`
/// reads the lines given with `:input TEXT`; `:stop` is a command, not program input, and
/// stops a program waiting for input; at the prompt `read_line()` takes a line given
/// beforehand or says how to give one.
#[test]
fn read_line_reads_what_input_gives() {
    let dir = scratch("input");
    std::fs::write(
        dir.join("echo.molt"),
        "fn main() {\n    let n = 0;\n    while true {\n        let line = read_line();\n        n += 1;\n        print(\"got \" + str(n) + \": \" + line);\n        if line == \"bye\" { return; }\n    }\n}\n",
    )
    .unwrap();
    let mut r = Repl::start(&dir, &["echo.molt"]);
    r.prompt();
    r.line(":run");
    r.expect("[main is running in the background");
    r.expect("[the program is waiting for input: :input TEXT gives it a line]");
    r.line(":input hello there");
    r.expect("got 1: hello there");
    // A command typed while it waits is a command.
    r.line(":stop");
    r.expect("[main stopped]");
    r.prompt();
    r.line(":stop");
    r.expect("nothing is running");
    r.prompt();
    // At the prompt, with no line given: an error that says what to do.
    r.line("read_line()");
    r.expect("read_line(): no input was given: at the prompt a program reads the lines given with :input TEXT (give them first, then run the code)");
    r.prompt();
    r.line(":input first");
    r.expect("(1 line of input waiting for the program's next read_line())");
    r.line(":input bye");
    r.expect("(2 lines of input waiting for the program's next read_line())");
    r.line("read_line()");
    r.expect("\"first\"");
    r.prompt();
    // A line given before the program asks is kept for it.
    r.line(":run");
    r.expect("got 1: bye");
    r.expect("[main finished]");
    r.prompt();
    // Ctrl-D leaves the session, also while the program waits for input.
    r.line(":run");
    r.expect("[the program is waiting for input: :input TEXT gives it a line]");
    r.s.send_control('d').unwrap();
    r.s.exp_eof().expect("Ctrl-D leaves the session");
}

/// Issue 17, finding 8: while an update's `migrate` runs (here forever), the prompt says so
/// (it said the update was still waiting for an update point), and one `:stop` rolls the
/// update back and stops the program (the first used to roll it back only, and `main` went on).
#[test]
fn stop_during_an_endless_migrate_rolls_back_and_stops() {
    let dir = scratch("migrate");
    std::fs::write(dir.join("app.molt"), APP).unwrap();
    let mut r = Repl::start(&dir, &["app.molt"]);
    r.prompt();
    r.line(":run");
    r.expect("[main is running in the background");
    r.expect("hello 2");
    r.line("migrate { while true { } }");
    r.expect("[prompt: pushed, it applies at the program's next update point]");
    // Until the program reaches its update point the update waits; then its code runs.
    let mut said = String::new();
    for _ in 0..100 {
        r.line("fn extra() { return 1; }");
        said = r.expect_regex(r"an update is (being applied: the program is running its code|still waiting)[^\r\n]*");
        if said.contains("being applied") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        said,
        "an update is being applied: the program is running its code (migrate, a transformer or a new global's initialiser); try again once it is applied or rolled back, or :stop to roll it back and stop the program"
    );
    r.line(":stop");
    r.expect("[interrupting the update's code: it is rolled back, then the program stops]");
    r.expect("update rolled back (version 1 -> 2)");
    r.expect("migrate failed: interrupted");
    r.expect("[main stopped]");
    r.prompt();
    r.line(":stop");
    r.expect("nothing is running");
    r.prompt();
    r.line(":versions");
    r.expect("version 1: start");
    r.prompt();
    r.quit();
}

/// `:run` runs a program's tasks (main as task 1, with the tasks it spawns), and `:stop`
/// stops them all, also while every task sleeps.
#[test]
fn run_runs_tasks_and_stop_stops_them() {
    const APP: &str = "fn worker(ch) {\n    for i in 0..3 { ch.send(i * 10); }\n}\nfn main() {\n    let ch = channel();\n    spawn(worker, ch);\n    let s = 0;\n    for i in 0..3 { s += ch.recv(); }\n    print(\"sum from a task\", s);\n    let t = spawn(fn() { sleep(1000); });\n    t.join();\n}\n";
    let dir = scratch("tasks");
    std::fs::write(dir.join("t.molt"), APP).unwrap();
    let mut r = Repl::start(&dir, &["t.molt"]);
    r.prompt();
    r.line(":run");
    r.expect("[main is running in the background");
    r.expect("sum from a task 30");
    r.line(":stop");
    r.expect("[main stopped]");
    r.prompt();
    r.quit();
}

/// `:tasks` lists the running program's tasks (state, version, what each waits on, where),
/// answered by the program itself while every task waits in the event loop.
#[test]
fn tasks_lists_the_running_programs_tasks() {
    const APP: &str = "fn worker(ch) {\n    print(\"got\", ch.recv());\n}\nfn main() {\n    let ch = channel();\n    spawn(worker, ch);\n    print(\"started\");\n    sleep(1000);\n}\n";
    let dir = scratch("tasks_list");
    std::fs::write(dir.join("t.molt"), APP).unwrap();
    let mut r = Repl::start(&dir, &["t.molt"]);
    r.prompt();
    r.line(":tasks");
    r.expect("nothing is running (`:run` starts main; its tasks are listed here while it runs)");
    r.line(":run");
    r.expect("started");
    r.line(":tasks");
    r.expect_regex(r"version 1, up \d+ ms, 2 task\(s\)");
    r.expect("  task 1 (main) blocked, version 1, sleeps, in main (t.molt:8)");
    r.expect("  task 2 (worker) blocked, version 1, waits to receive from <channel 1>, in worker (t.molt:2)");
    r.line(":stop");
    r.expect("[main stopped]");
    r.prompt();
    r.quit();
}

/// `:undo` goes back to the previous version's program (a new version number); a second one
/// goes one further back, until there is nothing left.
#[test]
fn undo_goes_back_one_version_at_a_time() {
    let dir = scratch("undo");
    let file = dir.join("g.molt");
    std::fs::write(&file, "fn greet() { return \"one\"; }\nfn main() { print(greet()); }\n").unwrap();
    let mut r = Repl::start(&dir, &["g.molt"]);
    r.prompt();
    std::fs::write(&file, "fn greet() { return \"two\"; }\nfn main() { print(greet()); }\n").unwrap();
    r.line(":reload");
    r.expect("[update applied (version 1 -> 2)");
    r.prompt();
    r.line("greet()");
    r.expect("\"two\"");
    r.prompt();
    r.line(":undo");
    r.expect("[update applied (version 2 -> 3)");
    r.prompt();
    r.line("greet()");
    r.expect("\"one\"");
    r.prompt();
    r.line(":undo");
    r.expect("nothing to undo: this is the session's first version (or every later one was undone)");
    r.prompt();
    r.line(":versions");
    r.expect(":undo");
    r.prompt();
    r.quit();
}
