//! Size limits: how big one string, list or map may grow, and how many bytes the heap's live
//! data may take. Every place that builds a value proportional to its input checks them
//! *before* it allocates (the resulting size computed with checked arithmetic), so a program
//! that grows memory without bound ends with a runtime error instead of Rust's
//! allocation-failure abort (or the kernel's out-of-memory killer). docs/messages.md has the
//! decision and the messages.
//!
//! - A string: at most 1 GiB (`string_bytes`, UTF-8 bytes).
//! - A list: at most 2^27 items (2 GiB of values); a map: at most 2^24 entries. (V8 has the
//!   same orders: strings under 2^29 UTF-16 units, arrays under 2^27, maps 2^24 entries.)
//! - The heap: by default half the memory the process may use (the smallest of physical
//!   memory, the cgroup's limit and the address-space and data-size rlimits), at most 64 GiB
//!   (4 GiB when none of these can be read); `MOLT_MAX_HEAP` sets it (`512M`, `8G`, bytes).
//!
//! `MOLT_TEST_LIMITS` (`string=N,list=N,map=N`) lowers the three per-value limits, so tests
//! reach them without allocating gigabytes; it can only lower them.

use std::sync::OnceLock;

pub const KIB: usize = 1 << 10;
pub const MIB: usize = 1 << 20;
pub const GIB: usize = 1 << 30;

/// The longest string, in bytes.
pub const MAX_STRING_BYTES: usize = GIB;
/// The most items a list may hold.
pub const MAX_LIST_ITEMS: usize = 1 << 27;
/// The most entries a map may hold.
pub const MAX_MAP_ENTRIES: usize = 1 << 24;
/// The largest heap limit `MOLT_MAX_HEAP` may set (and the default's cap): below it, the
/// heap's 32-bit object handles cannot run out (every object is counted at 40 bytes or more).
pub const MAX_HEAP_BYTES: usize = 64 * GIB;
/// The smallest heap limit `MOLT_MAX_HEAP` may set (a program needs some heap to start).
pub const MIN_HEAP_BYTES: usize = MIB;
/// The heap limit when the machine's memory cannot be read.
pub const FALLBACK_HEAP_BYTES: usize = 4 * GIB;

pub const HEAP_ENV: &str = "MOLT_MAX_HEAP";
pub const TEST_ENV: &str = "MOLT_TEST_LIMITS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest string, in bytes.
    pub string_bytes: usize,
    /// The most items in one list.
    pub list_items: usize,
    /// The most entries in one map.
    pub map_entries: usize,
    /// The most bytes the heap's objects may take (an estimate, exact after a collection).
    pub heap_bytes: usize,
}

impl Default for Limits {
    /// The built-in limits, with the heap limit taken from the machine (not the environment).
    fn default() -> Limits {
        Limits {
            string_bytes: MAX_STRING_BYTES,
            list_items: MAX_LIST_ITEMS,
            map_entries: MAX_MAP_ENTRIES,
            heap_bytes: default_heap_bytes(),
        }
    }
}

impl Limits {
    /// The limits of this process: the defaults, changed by `MOLT_MAX_HEAP` and
    /// `MOLT_TEST_LIMITS`, read once. `Err`: a variable's value is invalid (the CLI reports it
    /// as a usage error before running anything; a VM then uses the defaults).
    pub fn from_env() -> Result<Limits, String> {
        static LIMITS: OnceLock<Result<Limits, String>> = OnceLock::new();
        LIMITS
            .get_or_init(|| {
                let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
                Limits::with_overrides(var(HEAP_ENV).as_deref(), var(TEST_ENV).as_deref())
            })
            .clone()
    }

    /// The limits a VM runs with: `from_env`, or the defaults when the environment is invalid.
    pub fn current() -> Limits {
        Limits::from_env().unwrap_or_default()
    }

    /// The defaults changed by the values of `MOLT_MAX_HEAP` and `MOLT_TEST_LIMITS`.
    pub fn with_overrides(heap: Option<&str>, test: Option<&str>) -> Result<Limits, String> {
        let mut limits = Limits::default();
        if let Some(text) = heap {
            let n = parse_size(text).ok_or_else(|| {
                format!("{HEAP_ENV}={text}: expected a size in bytes, or with K, M or G (`512M`, `8G`)")
            })?;
            if !(MIN_HEAP_BYTES..=MAX_HEAP_BYTES).contains(&n) {
                return Err(format!("{HEAP_ENV}={text}: the heap limit must be between 1M and 64G"));
            }
            limits.heap_bytes = n;
        }
        if let Some(text) = test {
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let bad = || format!("{TEST_ENV}={text}: expected `string=N,list=N,map=N` (sizes may only go down)");
                let (name, value) = part.split_once('=').ok_or_else(bad)?;
                let n = parse_size(value).filter(|&n| n > 0).ok_or_else(bad)?;
                let slot = match name.trim() {
                    "string" => &mut limits.string_bytes,
                    "list" => &mut limits.list_items,
                    "map" => &mut limits.map_entries,
                    _ => return Err(bad()),
                };
                *slot = n.min(*slot);
            }
        }
        Ok(limits)
    }

    /// Checks that a string of `len` bytes may be made; `what` names the operation
    /// ("concatenation", "join()").
    #[inline]
    pub fn string(&self, len: Option<usize>, what: &str) -> Result<usize, String> {
        match len {
            Some(n) if n <= self.string_bytes => Ok(n),
            Some(n) => Err(format!("string too long: {what} would make {n} bytes (limit {})", self.string_bytes)),
            None => Err(self.text_error(what)),
        }
    }

    /// Checks that a list of `len` items may be made.
    #[inline]
    pub fn list(&self, len: usize, what: &str) -> Result<(), String> {
        if len <= self.list_items {
            return Ok(());
        }
        Err(format!("list too long: {what} would make {len} items (limit {})", self.list_items))
    }

    /// The error for a map that would get `len` entries.
    pub fn map_error(&self, len: usize) -> String {
        format!("map too large: adding a key would make {len} entries (limit {})", self.map_entries)
    }

    /// The error for text (`str()`, `print`) that would pass the string limit.
    pub fn text_error(&self, what: &str) -> String {
        format!("string too long: {what} would make more than the limit of {} bytes", self.string_bytes)
    }

    /// The error when the heap's live data would pass the heap limit.
    pub fn heap_error(&self) -> String {
        format!("out of memory: the heap limit of {} bytes is reached (set {HEAP_ENV} to raise it)", self.heap_bytes)
    }
}

/// The error when the system refuses an allocation of `bytes` (a `try_reserve` failed).
pub fn refused(bytes: usize) -> String {
    format!("out of memory: the system refused an allocation of {bytes} bytes")
}

/// `123`, `64K`, `512M`, `8G`, `1T` (powers of 1024; an optional `B` or `iB` after the
/// letter; any case).
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").or_else(|| t.strip_suffix('B')).unwrap_or(&t);
    let (digits, unit) = match t.char_indices().last()? {
        (i, 'K') => (&t[..i], KIB),
        (i, 'M') => (&t[..i], MIB),
        (i, 'G') => (&t[..i], GIB),
        (i, 'T') => (&t[..i], GIB << 10),
        _ => (t, 1),
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// Half the memory this process may use (see the module's comment), read once.
fn default_heap_bytes() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| match available_memory() {
        Some(m) => (m / 2).clamp(MIN_HEAP_BYTES, MAX_HEAP_BYTES),
        None => FALLBACK_HEAP_BYTES,
    })
}

/// The smallest of physical memory, the cgroup's memory limit and the address-space and
/// data-size rlimits (Linux; `None` elsewhere or when none can be read).
fn available_memory() -> Option<usize> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut found: Vec<usize> = Vec::new();
    if let Some(info) = read("/proc/meminfo") {
        // `MemTotal:       24683876 kB`
        let kb = info.lines().find_map(|l| l.strip_prefix("MemTotal:")).unwrap_or("");
        if let Some(n) = kb.trim().strip_suffix("kB").and_then(|n| n.trim().parse::<usize>().ok()) {
            found.push(n.saturating_mul(KIB));
        }
    }
    // cgroup v2, then v1 (a v1 "no limit" is a huge number, harmless here).
    for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
        if let Some(n) = read(path).and_then(|t| t.trim().parse::<usize>().ok()) {
            found.push(n);
        }
    }
    // `Max address space         unlimited            unlimited            bytes`
    if let Some(limits) = read("/proc/self/limits") {
        for l in limits.lines() {
            if let Some(rest) = l.strip_prefix("Max address space").or_else(|| l.strip_prefix("Max data size")) {
                if let Some(n) = rest.split_whitespace().next().and_then(|s| s.parse::<usize>().ok()) {
                    found.push(n);
                }
            }
        }
    }
    found.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 * KIB));
        assert_eq!(parse_size("512m"), Some(512 * MIB));
        assert_eq!(parse_size("8G"), Some(8 * GIB));
        assert_eq!(parse_size("8GiB"), Some(8 * GIB));
        assert_eq!(parse_size("8gb"), Some(8 * GIB));
        assert_eq!(parse_size(" 2G "), Some(2 * GIB));
        for bad in ["", "G", "-1", "1.5G", "lots", "1X", "99999999999999999999999", "16777216T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn overrides() {
        let l = Limits::with_overrides(Some("64M"), Some("string=100, list=10,map=5")).unwrap();
        assert_eq!((l.heap_bytes, l.string_bytes, l.list_items, l.map_entries), (64 * MIB, 100, 10, 5));
        // The test limits only go down.
        let l = Limits::with_overrides(None, Some("string=8G")).unwrap();
        assert_eq!(l.string_bytes, MAX_STRING_BYTES);
        assert!(Limits::with_overrides(Some("100G"), None).is_err());
        assert!(Limits::with_overrides(Some("1K"), None).is_err());
        assert!(Limits::with_overrides(Some("x"), None).is_err());
        assert!(Limits::with_overrides(None, Some("strings=1")).is_err());
        assert!(Limits::with_overrides(None, Some("string=0")).is_err());
        let d = Limits::default();
        assert!((MIN_HEAP_BYTES..=MAX_HEAP_BYTES).contains(&d.heap_bytes));
    }

    #[test]
    fn messages() {
        let l = Limits::default();
        assert_eq!(
            l.string(Some(2 * GIB), "concatenation").unwrap_err(),
            "string too long: concatenation would make 2147483648 bytes (limit 1073741824)"
        );
        assert_eq!(l.string(Some(GIB), "concatenation"), Ok(GIB));
        assert_eq!(
            l.list(MAX_LIST_ITEMS + 1, "push()").unwrap_err(),
            "list too long: push() would make 134217729 items (limit 134217728)"
        );
    }
}
