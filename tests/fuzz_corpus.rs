//! Replays the fuzz corpus and every crash input kept in `fuzz/` (docs/fuzzing.md) with the
//! checks the fuzz targets make (`molt::fuzzing`), on stable, in plain `cargo test`: a bug the
//! fuzzer found stays fixed.

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>` and `fuzz/artifacts/<target>`;
/// returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [root.join("corpus").join(target), root.join("artifacts").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let name = f.display().to_string();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "fuzz input {name} fails its check (replay: cargo +nightly fuzz run {target} {name})");
            n += 1;
        }
    }
    n
}

#[test]
fn compile_corpus() {
    assert!(replay("compile", molt::fuzzing::source) > 100);
}

#[test]
fn mbc_corpus() {
    assert!(replay("mbc", molt::fuzzing::mbc) > 10);
}

#[test]
fn update_corpus() {
    assert!(replay("update", molt::fuzzing::update) > 50);
}

#[test]
fn control_corpus() {
    assert!(replay("control", molt::fuzzing::control) > 10);
}
