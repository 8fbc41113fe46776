//! One client: a connection, its own keys, a bounded run of checked requests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One request as measured: when it started (µs after the load's start) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t_us: u64,
    pub latency_us: u64,
    pub client: u32,
    pub write: bool,
    pub ok: bool,
}

/// What a client did.
#[derive(Debug, Default)]
pub struct ClientResult {
    pub samples: Vec<Sample>,
    pub wrong_replies: u64,
    pub connection_errors: u64,
    /// The first few error messages, for the report.
    pub messages: Vec<String>,
    /// For every key the client tried to write: the values a GET may return now (`None`:
    /// MISSING). More than one when a SET got no reply (it may or may not have been applied).
    pub model: HashMap<String, Vec<Option<String>>>,
}

const MAX_MESSAGES: usize = 10;
/// A client gives up after this many connection failures in a row.
const MAX_CONNECT_FAILURES: u32 = 5;

impl ClientResult {
    fn note(&mut self, msg: String) {
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(msg);
        }
    }
}

/// A small, fast, reproducible random number generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A line connection with timeouts.
pub struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        let reader = BufReader::new(s.try_clone()?);
        Ok(Conn { writer: s, reader })
    }

    /// Sends one request line and reads one reply line (without its newline).
    pub fn ask(&mut self, request: &str) -> std::io::Result<String> {
        let mut line = String::with_capacity(request.len() + 1);
        line.push_str(request);
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        let mut reply = String::new();
        // A reply is short; a runaway server line is cut off at 64 KiB (an error, not memory).
        let n = std::io::Read::take(&mut self.reader, 64 * 1024).read_line(&mut reply)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        if !reply.ends_with('\n') {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a reply line over 64 KiB"));
        }
        reply.pop();
        if reply.ends_with('\r') {
            reply.pop();
        }
        Ok(reply)
    }
}

/// The reply a GET may give for these possible states of a key.
pub fn get_reply_ok(reply: &str, allowed: &[Option<String>]) -> bool {
    allowed.iter().any(|a| match a {
        None => reply == "MISSING",
        Some(v) => reply.strip_prefix("VALUE ") == Some(v.as_str()),
    })
}

pub struct Plan {
    pub id: u32,
    pub addr: SocketAddr,
    pub requests: u64,
    pub keys: usize,
    pub key_prefix: String,
    pub write_ratio: f64,
    pub seed: u64,
    pub timeout: Duration,
    pub start: Instant,
    pub deadline: Instant,
}

/// Runs one client to its end: `requests` requests or the deadline, whichever comes first,
/// then QUIT (which must answer BYE).
pub fn run(plan: Plan) -> ClientResult {
    let mut r = ClientResult::default();
    let mut rng = Rng::new(plan.seed ^ (u64::from(plan.id) << 32));
    let mut conn: Option<Conn> = None;
    let mut failures = 0u32;
    for i in 0..plan.requests {
        if Instant::now() >= plan.deadline {
            break;
        }
        if conn.is_none() {
            match Conn::open(plan.addr, plan.timeout) {
                Ok(c) => {
                    conn = Some(c);
                    failures = 0;
                }
                Err(e) => {
                    r.connection_errors += 1;
                    r.note(format!("client {}: connect to {}: {e}", plan.id, plan.addr));
                    failures += 1;
                    if failures >= MAX_CONNECT_FAILURES {
                        r.note(format!("client {}: gave up after {failures} failed connections", plan.id));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { break };
        let key = format!("{}c{}-k{}", plan.key_prefix, plan.id, rng.next() % plan.keys as u64);
        let write = rng.unit() < plan.write_ratio;
        let value = format!("v{}-{i}", plan.id);
        let request = if write { format!("SET {key} {value}") } else { format!("GET {key}") };
        if write {
            // Until the reply says OK, the key may hold the old or the new value.
            r.model.entry(key.clone()).or_insert_with(|| vec![None]).push(Some(value.clone()));
        }
        let t0 = Instant::now();
        let answer = c.ask(&request);
        let latency = t0.elapsed();
        let ok = match &answer {
            Ok(reply) if write => {
                if reply == "OK" {
                    r.model.insert(key, vec![Some(value)]);
                    true
                } else {
                    r.wrong_replies += 1;
                    r.note(format!("client {}: {request:?} -> {reply:?}, expected \"OK\"", plan.id));
                    false
                }
            }
            Ok(reply) => {
                let allowed = r.model.get(&key).cloned().unwrap_or_else(|| vec![None]);
                if get_reply_ok(reply, &allowed) {
                    if allowed.len() > 1 {
                        // The reply tells which SET was applied.
                        let now = if reply == "MISSING" { None } else { Some(reply["VALUE ".len()..].to_string()) };
                        r.model.insert(key, vec![now]);
                    }
                    true
                } else {
                    r.wrong_replies += 1;
                    r.note(format!("client {}: {request:?} -> {reply:?}, expected one of {allowed:?}", plan.id));
                    false
                }
            }
            Err(e) => {
                r.connection_errors += 1;
                r.note(format!("client {}: {request:?}: {e}", plan.id));
                conn = None;
                false
            }
        };
        r.samples.push(Sample {
            t_us: t0.duration_since(plan.start).as_micros() as u64,
            latency_us: latency.as_micros() as u64,
            client: plan.id,
            write,
            ok,
        });
    }
    if let Some(mut c) = conn {
        match c.ask("QUIT") {
            Ok(reply) if reply == "BYE" => {}
            Ok(reply) => {
                r.wrong_replies += 1;
                r.note(format!("client {}: \"QUIT\" -> {reply:?}, expected \"BYE\"", plan.id));
            }
            Err(e) => {
                r.connection_errors += 1;
                r.note(format!("client {}: \"QUIT\": {e}", plan.id));
            }
        }
    }
    r
}

/// The final check of one client's keys, on a fresh connection: (keys, missing, wrong,
/// connection errors, messages).
pub struct Check {
    pub keys: u64,
    pub missing: u64,
    pub wrong: u64,
    pub errors: u64,
    pub messages: Vec<String>,
}

pub fn check(
    addr: SocketAddr,
    timeout: Duration,
    deadline: Instant,
    id: u32,
    model: &HashMap<String, Vec<Option<String>>>,
) -> Check {
    let mut out = Check { keys: 0, missing: 0, wrong: 0, errors: 0, messages: Vec::new() };
    let mut keys: Vec<_> = model.iter().filter(|(_, v)| v.iter().any(Option::is_some)).collect();
    keys.sort();
    out.keys = keys.len() as u64;
    let mut conn = match Conn::open(addr, timeout) {
        Ok(c) => c,
        Err(e) => {
            out.errors = out.keys;
            out.messages.push(format!("final check of client {id}: connect to {addr}: {e}"));
            return out;
        }
    };
    for (n, (key, allowed)) in keys.iter().enumerate() {
        if Instant::now() >= deadline {
            out.errors += (keys.len() - n) as u64;
            out.messages.push(format!("final check of client {id}: out of time, {} keys unchecked", keys.len() - n));
            return out;
        }
        match conn.ask(&format!("GET {key}")) {
            Ok(reply) if get_reply_ok(&reply, allowed) => {}
            Ok(reply) if reply == "MISSING" => {
                out.missing += 1;
                if out.messages.len() < MAX_MESSAGES {
                    out.messages
                        .push(format!("final check of client {id}: {key} is missing, expected one of {allowed:?}"));
                }
            }
            Ok(reply) => {
                out.wrong += 1;
                if out.messages.len() < MAX_MESSAGES {
                    out.messages.push(format!(
                        "final check of client {id}: GET {key} -> {reply:?}, expected one of {allowed:?}"
                    ));
                }
            }
            Err(e) => {
                out.errors += (keys.len() - n) as u64;
                out.messages.push(format!("final check of client {id}: GET {key}: {e}"));
                return out;
            }
        }
    }
    let _ = conn.ask("QUIT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let allowed = vec![None, Some("v1-3".to_string())];
        assert!(get_reply_ok("MISSING", &allowed));
        assert!(get_reply_ok("VALUE v1-3", &allowed));
        assert!(!get_reply_ok("VALUE v1-4", &allowed));
        assert!(!get_reply_ok("OK", &allowed));
        assert!(!get_reply_ok("MISSING", &allowed[1..]));
    }

    #[test]
    fn rng_is_reproducible_and_spread() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut below_half = 0;
        for _ in 0..1000 {
            let x = a.unit();
            assert_eq!(x, b.unit());
            assert!((0.0..1.0).contains(&x));
            below_half += usize::from(x < 0.5);
        }
        assert!((400..600).contains(&below_half), "{below_half}");
    }
}
