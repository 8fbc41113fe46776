//! Timings vary from run to run: tests compare outputs with them masked.

/// Replaces timings by `#`: digits (with an optional fraction) followed by `us` or `ms` as a
/// word (a space between allowed), and the digits after `_us":` in JSON.
pub fn mask(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_digit() || (b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            let rest = &text[i..];
            let after = rest.strip_prefix(' ').unwrap_or(rest);
            let unit = ["us", "ms"]
                .iter()
                .any(|u| after.starts_with(u) && !after[2..].chars().next().is_some_and(|c| c.is_alphanumeric()));
            let json = text[..start].ends_with("_us\":");
            if unit || json {
                out.push('#');
            } else {
                out.push_str(&text[start..i]);
            }
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}
