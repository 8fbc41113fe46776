//! The compiler never panics, whatever the source: thousands of mutations of the tests/lang
//! programs (deleted spans, inserted tokens, swapped characters, truncations) are compiled
//! in-process. Every program it accepts must pass the bytecode verifier and survive an `.mbc`
//! round trip unchanged.

use std::path::Path;

/// xorshift64*: a seeded generator, so a failure can be reproduced from its case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Inserted by the mutator: every keyword (from the lexer) and these other tokens and
/// troublemakers.
const OTHER_TOKENS: &[&str] = &[
    "update \"x\"",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    ":",
    ".",
    "..",
    "=",
    "+=",
    "==",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "0",
    "9223372036854775808",
    "1.5e300",
    "\"s\"",
    "\"\\q\"",
    "\"unterminated",
    "x",
    "main",
    "print",
    "T { }",
    "fn(a) { }",
    "$",
    "\u{1F600}",
    "\n",
    "//",
    "0x",
    "1_",
];

fn token(rng: &mut Rng) -> &'static str {
    let kw = molt_compiler::lexer::KEYWORDS;
    let i = rng.below(kw.len() + OTHER_TOKENS.len());
    if i < kw.len() { kw[i] } else { OTHER_TOKENS[i - kw.len()] }
}

fn mutate(src: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = chars.clone();
    for _ in 0..1 + rng.below(3) {
        let n = out.len();
        match rng.below(5) {
            0 if n > 0 => {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(20)).min(n);
                out.drain(a..b);
            }
            1 => {
                let at = rng.below(n + 1);
                let tok = token(rng);
                for (i, c) in format!(" {tok} ").chars().enumerate() {
                    out.insert(at + i, c);
                }
            }
            2 if n > 1 => {
                let (a, b) = (rng.below(n), rng.below(n));
                out.swap(a, b);
            }
            3 => out.truncate(rng.below(n + 1)),
            _ => {
                // Duplicate a span (nesting, repeated items).
                if n > 0 {
                    let a = rng.below(n);
                    let b = (a + rng.below(40)).min(n);
                    let span: Vec<char> = out[a..b].to_vec();
                    for (i, c) in span.into_iter().enumerate() {
                        out.insert(b + i, c);
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Runs a program for at most ~20 ms (the interrupt flag stops loops), output discarded:
/// runtime errors are fine, panics are not.
fn run_briefly(p: &molt_vm::Program) {
    let mut vm = molt::new_vm();
    vm.out = Box::new(std::io::sink());
    let signals = vm.signals.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let timer = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            if done2.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
        }
        signals.interrupt();
    });
    let _ = vm.run_program(p);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = timer.join();
}

#[test]
fn mutated_sources_never_panic_and_accepted_ones_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lang");
    let mut sources: Vec<(String, String)> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "molt"))
        .filter_map(|e| Some((e.path().display().to_string(), std::fs::read_to_string(e.path()).ok()?)))
        .collect();
    sources.sort();
    assert!(sources.len() > 100);
    let cases: usize = std::env::var("MOLT_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..cases {
        let (name, src) = &sources[rng.below(sources.len())];
        let text = mutate(src, &mut rng);
        let out = molt::compile_str("fuzz.molt", &text);
        match out.program {
            Some(p) if out.diagnostics.is_empty() => {
                accepted += 1;
                if let Err(e) = molt_vm::verify::verify(&p) {
                    panic!(
                        "case {case} (from {name}): the compiler produced unverifiable code: {e}\n--- source\n{text}"
                    );
                }
                let back = molt_vm::mbc::read(&molt_vm::mbc::write(&p)).expect("round trip");
                assert!(back == p, "case {case}: .mbc round trip changed the program");
                if !text.contains("read_line") && !text.contains("sleep") {
                    run_briefly(&p);
                }
            }
            _ => {
                rejected += 1;
                assert!(!out.diagnostics.is_empty(), "case {case}: no program and no diagnostic\n{text}");
                // Rendering must not panic either (spans inside the files).
                let _ = molt::diagnostics::render_plain(&out.files, &out.diagnostics);
            }
        }
    }
    assert!(accepted > 0 && rejected > 0, "accepted {accepted}, rejected {rejected}");
}
