//! The checks the fuzz targets (`fuzz/`, run with `cargo fuzz` on nightly) make on each input,
//! here so that `tests/fuzz_corpus.rs` replays the kept corpus and every crash input with the
//! same checks on stable. Each check panics on a bug: a panic, a verifier rejection of the
//! compiler's output, a `.mbc` round trip that changes the program, or the interpreter and
//! the compiled tier printing different output for the same run. See docs/fuzzing.md.
//!
//! Programs run bounded: a watchdog raises the VM's interrupt after `RUN_LIMIT` (every loop
//! back-edge and call checks it), the heap and values are capped small, and the built-ins that
//! wait on the world (`sleep`, `read_line`) return at once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::mpsc::channel;
use std::time::Duration;

use molt_vm::tier::JitMode;
use molt_vm::update::{Incoming, UpdateSettings, UpdateSource};
use molt_vm::{NativeCtx, NativeDef, Program, Reads, Value, Vm};

/// How long one run may take before the watchdog interrupts it.
const RUN_LIMIT: Duration = Duration::from_millis(50);
/// The most output kept from one run.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Source text → compile. What compiles must verify and survive a `.mbc` round trip; it then
/// runs (bounded) in the interpreter and with every function compiled, with the same output.
pub fn source(data: &[u8]) {
    big_stack(data, source_here)
}

fn source_here(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(program) = compile(text) else { return };
    if let Err(e) = molt_vm::verify::verify(&program) {
        panic!("the compiler's output does not verify: {e}");
    }
    let bytes = molt_vm::mbc::write(&program);
    match molt_vm::mbc::read(&bytes) {
        Ok(back) => assert!(molt_vm::mbc::write(&back) == bytes, "a .mbc round trip changed the program"),
        Err(e) => panic!("the compiler's output does not load back from .mbc: {e}"),
    }
    differential(&program, None);
}

/// Bytes → `.mbc` load and verify; a program that verifies runs (bounded) without panicking,
/// with the same output in both tiers.
pub fn mbc(data: &[u8]) {
    big_stack(data, mbc_here)
}

fn mbc_here(data: &[u8]) {
    mbc_bytes(data);
    // Most mutations break the checksum, the body length or the layout hash: the same bytes
    // resealed (as a careful forger would) reach the decoder and the verifier.
    if let Some(sealed) = reseal(data) {
        mbc_bytes(&sealed);
    }
}

/// `data` with a valid magic, format, body length and checksum, and the program version and
/// layout hash the body decodes to (when it decodes that far).
fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    use molt_vm::mbc::{HEADER_LEN, checksum};
    if data.len() < HEADER_LEN {
        return None;
    }
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| molt_vm::mbc::write(&compile("").expect("the empty program compiles")));
    let mut b = data.to_vec();
    b[..10].copy_from_slice(&template[..10]);
    let body_len = (b.len() - HEADER_LEN) as u64;
    b[22..30].copy_from_slice(&body_len.to_le_bytes());
    let sum = checksum(&b[HEADER_LEN..]);
    b[30..38].copy_from_slice(&sum.to_le_bytes());
    for _ in 0..2 {
        let Err(e) = molt_vm::mbc::read(&b) else { break };
        let m = e.message;
        if let Some(v) = m.strip_prefix("program version mismatch: ").and_then(|r| r.rsplit(' ').next()) {
            b[10..14].copy_from_slice(&v.parse::<u32>().ok()?.to_le_bytes());
        } else if let Some(h) = m.strip_prefix("layout hash mismatch: ").and_then(|r| r.rsplit(' ').next()) {
            b[14..22].copy_from_slice(&u64::from_str_radix(h, 16).ok()?.to_le_bytes());
        } else {
            break;
        }
    }
    Some(b)
}

fn mbc_bytes(data: &[u8]) {
    let Ok(program) = molt_vm::mbc::read(data) else { return };
    // What loads must write back to bytes that load to the same program.
    let bytes = molt_vm::mbc::write(&program);
    let back = molt_vm::mbc::read(&bytes).expect("a loaded program written back loads again");
    assert!(molt_vm::mbc::write(&back) == bytes, "a .mbc round trip changed the program");
    differential(&program, None);
}

/// The separator between the two versions in an update input.
pub const SEPARATOR: &str = "\n=====\n";

/// Two sources separated by `SEPARATOR`: the first runs, and takes the second as an update at
/// its first update point (plan, validate, apply or roll back, migrate frames); then, with
/// nothing running, the second is requested again against what runs then.
pub fn update(data: &[u8]) {
    big_stack(data, update_here)
}

fn update_here(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some((old, new)) = text.split_once(SEPARATOR) else { return };
    let (Some(v1), Some(v2)) = (compile(old), compile(new)) else { return };
    let _ = molt_vm::update::UpdatePlan::new(&v1, &v2, 1).to_string();
    differential(&v1, Some(&v2));
}

/// The running program a `control` input's update or undo is asked of: a type whose records
/// globals and locals share, and a loop with an update point (tests/dsu/identity_preserved).
const CONTROL_HOST: &str = include_str!("../tests/dsu/identity_preserved/v1.molt");

/// Bytes a client sends on the control socket → what the program's side makes of them
/// (`control::read_request`, as `server.rs` calls it: frames, the JSON request, for a push the
/// bytecode verified by `mbc::read`; a push whose bytecode is refused is also tried with that
/// frame resealed, as in `mbc`). A push or an undo is then asked, with the request's settings,
/// of a small running program at its update point, interpreted and with every function
/// compiled (the same output when neither run was cut short); then again with nothing
/// running, and `main` runs again: nothing may panic, and the VM must go on.
pub fn control(data: &[u8]) {
    big_stack(data, control_here)
}

fn control_here(data: &[u8]) {
    use crate::control::{Op, read_frame, read_request, write_frame};
    let received = match read_request(&mut &data[..]) {
        Ok(Some(r)) => r,
        Err(e) if e.starts_with("the pushed bytecode was refused") => {
            let mut rest = data;
            let (Ok(Some(head)), Ok(Some(body))) = (read_frame(&mut rest), read_frame(&mut rest)) else { return };
            let Some(sealed) = reseal(&body) else { return };
            let mut again = Vec::new();
            let framed = write_frame(&mut again, &head).and_then(|_| write_frame(&mut again, &sealed));
            match (framed, read_request(&mut &again[..])) {
                (Ok(()), Ok(Some(r))) => r,
                _ => return,
            }
        }
        _ => return,
    };
    // What the server would answer with must be writable.
    let _ = serde_json::to_vec(&received.request.to_json());
    let host = compile(CONTROL_HOST).expect("the control target's host program compiles");
    let settings = received.request.settings(&molt_vm::update::UpdateSettings::default());
    let asked = Ask { program: received.program, settings };
    let asks = match received.request.op {
        Op::Status => return,
        Op::Push => Asks(VecDeque::from([asked])),
        // An undo needs a version to go back to: the host updated to itself first.
        Op::Undo => Asks(VecDeque::from([Ask { program: Some(host.clone()), settings: None }, asked])),
    };
    differential_asked(&host, &asks);
}

fn compile(text: &str) -> Option<Program> {
    let out = crate::compile_str("fuzz.molt", text);
    match out.program {
        Some(p) if out.diagnostics.is_empty() => Some(p),
        _ => None,
    }
}

/// Runs `program` (taking `update` at its first update point) interpreted and with every
/// function compiled; when neither run was cut short and nothing read the clock, both printed
/// the same.
fn differential(program: &Program, update: Option<&Program>) {
    differential_asked(program, &update.map(Asks::version).unwrap_or_default())
}

/// `differential` with the requests `asks`, taken in turn at update points; then the last
/// one is asked again with nothing running (a version requested, or an undo) and `main`
/// runs again.
fn differential_asked(program: &Program, asks: &Asks) {
    let interpreted = run(program, asks, JitMode::Off);
    let Some(compiled) = run_jit(program, asks) else { return };
    let deterministic = !program.natives.iter().chain(asks.natives()).any(|n| n == "clock");
    if deterministic && !interpreted.interrupted && !compiled.interrupted {
        assert_eq!(
            String::from_utf8_lossy(&interpreted.output),
            String::from_utf8_lossy(&compiled.output),
            "the interpreter and the compiled tier printed different output"
        );
        assert_eq!(interpreted.error, compiled.error, "the interpreter and the compiled tier ended differently");
    }
}

struct Outcome {
    output: Vec<u8>,
    error: Option<String>,
    interrupted: bool,
}

#[derive(Clone, Default)]
struct Capture(Rc<RefCell<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut out = self.0.borrow_mut();
        let room = OUTPUT_LIMIT.saturating_sub(out.len());
        out.extend_from_slice(&b[..b.len().min(room)]);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run is asked to take at its update points, in order: new versions (or undos, with
/// no program), each with settings of its own or the VM's.
#[derive(Clone, Default)]
struct Asks(VecDeque<Ask>);

#[derive(Clone)]
struct Ask {
    program: Option<Program>,
    settings: Option<UpdateSettings>,
}

impl Asks {
    fn version(program: &Program) -> Asks {
        Asks(VecDeque::from([Ask { program: Some(program.clone()), settings: None }]))
    }

    fn natives(&self) -> impl Iterator<Item = &String> {
        self.0.iter().filter_map(|a| a.program.as_ref()).flat_map(|p| p.natives.iter())
    }
}

impl UpdateSource for Asks {
    fn next_update(&mut self) -> Option<Result<Program, String>> {
        self.next_request().and_then(|r| r.map(|i| i.program).transpose())
    }

    fn next_request(&mut self) -> Option<Result<Incoming, String>> {
        self.0.pop_front().map(|a| Ok(Incoming { program: a.program, settings: a.settings }))
    }

    fn has_more(&self) -> bool {
        !self.0.is_empty()
    }
}

fn no_wait(_: &mut NativeCtx, _: &[Value]) -> Result<Value, String> {
    Ok(Value::Nil)
}

fn fuzz_vm() -> Vm {
    let mut vm = crate::new_vm();
    vm.register_native(NativeDef { name: "sleep", f: no_wait, reads: Reads::World, task: None });
    vm.register_native(NativeDef { name: "read_line", f: no_wait, reads: Reads::World, task: None });
    vm.heap.limits.heap_bytes = 32 << 20;
    vm.heap.limits.string_bytes = 1 << 20;
    vm.heap.limits.list_items = 1 << 16;
    vm.heap.limits.map_entries = 1 << 16;
    vm
}

fn run_jit(program: &Program, asks: &Asks) -> Option<Outcome> {
    // Without a JIT on this machine there is nothing to compare.
    molt_jit::Jit::new().ok()?;
    Some(run(program, asks, JitMode::Always))
}

/// The stack a check runs on: `molt run`'s (the compiler, the printer and compiled code
/// recurse natively; it is reserved, not committed).
const STACK: usize = 1 << 30;

/// Runs `check` on a thread with `molt run`'s stack; its panic is this thread's.
fn big_stack(data: &[u8], check: fn(&[u8])) {
    let data = data.to_vec();
    let thread = std::thread::Builder::new().stack_size(STACK).spawn(move || check(&data));
    if let Err(panic) = thread.expect("a thread for the check").join() {
        std::panic::resume_unwind(panic);
    }
}

fn run(program: &Program, asks: &Asks, mode: JitMode) -> Outcome {
    let mut vm = fuzz_vm();
    let out = Capture::default();
    vm.out = Box::new(out.clone());
    if mode != JitMode::Off {
        if let Ok(jit) = molt_jit::Jit::new() {
            vm.jit = Some(Box::new(jit));
            vm.set_jit_mode(mode);
        }
    }
    if !asks.0.is_empty() {
        vm.set_update_source(Box::new(asks.clone()));
    }
    let signals = vm.signals.clone();
    let (stop, stopped) = channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if stopped.recv_timeout(RUN_LIMIT).is_err() {
            signals.interrupt();
            true
        } else {
            false
        }
    });
    let mut result = vm.run_program(program).err().map(|e| e.message);
    if let Some(last) = asks.0.back() {
        // With nothing running the update applies (or is refused) at once.
        let _ = match &last.program {
            Some(p) => vm.request_update(p.clone()),
            None => vm.request_undo(),
        };
        if result.is_none() {
            result = run_main_again(&mut vm).err();
        }
    }
    let _ = stop.send(());
    let interrupted = watchdog.join().unwrap_or(true);
    vm.flush();
    let output = out.0.borrow().clone();
    Outcome { output, error: result, interrupted }
}

/// Calls `main` of the version now running, if it has one.
fn run_main_again(vm: &mut Vm) -> Result<(), String> {
    let Some(main) = vm.func_slot("main") else { return Ok(()) };
    vm.call_slot(main, &[]).map(drop).map_err(|e| e.message)
}
