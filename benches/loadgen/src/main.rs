//! molt-loadgen: drives a line-protocol key-value server (examples/kv_server, and the Python
//! and Erlang peers in benches/kv/peers) with N clients on 127.0.0.1, checks every reply,
//! optionally pushes updates into a Molt server at set times (`molt push SOCKET FILE`), and
//! reports throughput, latency (overall and around each push), errors, and whether every key a
//! client wrote is still there at the end. Every loop is bounded in count and in time.
//!
//! The protocol it speaks (the kv_server's v1, which later versions keep): `SET key value` ->
//! `OK`, `GET key` -> `VALUE value` or `MISSING`, `QUIT` -> `BYE`. Client I uses the keys
//! `cI-k0 ..`, so it knows what each GET must return: the value it last wrote, or MISSING.

mod client;
mod options;
mod push;

use client::{ClientResult, Plan, Sample};
use options::{Options, Parsed};
use push::PushRun;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Latency figures of a set of requests, in µs.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    requests: u64,
    errors: u64,
    p50: u64,
    p99: u64,
    max: u64,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency<'a>(samples: impl Iterator<Item = &'a Sample>) -> Latency {
    let mut errors = 0;
    let mut lat: Vec<u64> = samples
        .map(|s| {
            errors += u64::from(!s.ok);
            s.latency_us
        })
        .collect();
    lat.sort_unstable();
    Latency {
        requests: lat.len() as u64,
        errors,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or(0),
    }
}

struct Report {
    opts: Options,
    seconds: f64,
    results: Vec<ClientResult>,
    samples: Vec<Sample>,
    overall: Latency,
    pushes: Vec<(PushRun, Option<Latency>)>,
    keys: u64,
    missing: u64,
    wrong: u64,
    check_errors: u64,
    messages: Vec<String>,
}

impl Report {
    fn wrong_replies(&self) -> u64 {
        self.results.iter().map(|r| r.wrong_replies).sum()
    }
    fn connection_errors(&self) -> u64 {
        self.results.iter().map(|r| r.connection_errors).sum()
    }
    fn throughput(&self) -> f64 {
        if self.seconds > 0.0 { self.overall.requests as f64 / self.seconds } else { 0.0 }
    }
    fn pushes_failed(&self) -> usize {
        self.pushes.iter().filter(|(p, _)| p.status != Some(0)).count()
    }
    fn clean(&self) -> bool {
        self.wrong_replies() == 0
            && self.connection_errors() == 0
            && self.missing == 0
            && self.wrong == 0
            && self.check_errors == 0
            && self.pushes_failed() == 0
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn text(r: &Report) -> String {
    let o = &r.opts;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "molt-loadgen: {} clients on {}, {} requests each at most, {} s at most, {:.0}% writes, {} keys per client",
        o.clients,
        o.addr,
        o.requests,
        o.seconds,
        o.write_ratio * 100.0,
        o.keys
    );
    let _ = writeln!(s, "requests: {} in {:.3} s: {:.0} req/s", r.overall.requests, r.seconds, r.throughput());
    let _ = writeln!(
        s,
        "errors: {} (wrong replies {}, connection errors {})",
        r.wrong_replies() + r.connection_errors(),
        r.wrong_replies(),
        r.connection_errors()
    );
    let _ = writeln!(s, "latency: p50 {}, p99 {}, max {}", ms(r.overall.p50), ms(r.overall.p99), ms(r.overall.max));
    let per: Vec<usize> = r.results.iter().map(|c| c.samples.len()).collect();
    let _ = writeln!(
        s,
        "requests per client: min {}, max {} (fairness)",
        per.iter().min().unwrap_or(&0),
        per.iter().max().unwrap_or(&0)
    );
    for (i, (p, w)) in r.pushes.iter().enumerate() {
        let what = format!("push {} at {} ms: {} push {} {}", i + 1, p.push.at_ms, o.molt, p.push.socket, p.push.file);
        match (p.start_ms, p.end_ms) {
            (Some(a), Some(b)) => {
                let status = p.status.map_or("no exit status".to_string(), |c| format!("exit {c}"));
                let _ = writeln!(s, "{what}: {status}, ran {a:.1}..{b:.1} ms ({:.1} ms)", b - a);
                if let Some(w) = w {
                    let _ = writeln!(
                        s,
                        "  window to {} ms after: {} requests, {} errors, p50 {}, p99 {}, max {}",
                        o.window_ms,
                        w.requests,
                        w.errors,
                        ms(w.p50),
                        ms(w.p99),
                        ms(w.max)
                    );
                }
                if p.status != Some(0) {
                    for line in p.output.lines().take(10) {
                        let _ = writeln!(s, "  | {line}");
                    }
                }
            }
            _ => {
                let _ = writeln!(s, "{what}: {}", p.output);
            }
        }
    }
    let _ = writeln!(
        s,
        "final check: {} keys written, {} missing, {} wrong, {} not checked",
        r.keys, r.missing, r.wrong, r.check_errors
    );
    for m in &r.messages {
        let _ = writeln!(s, "  {m}");
    }
    let _ = write!(s, "{}", if r.clean() { "result: clean" } else { "result: FAILED" });
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_latency(l: &Latency) -> String {
    format!(
        r#"{{"requests":{},"errors":{},"p50_us":{},"p99_us":{},"max_us":{}}}"#,
        l.requests, l.errors, l.p50, l.p99, l.max
    )
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or("null".to_string(), |x| format!("{x:.3}"))
}

fn json(r: &Report) -> String {
    let o = &r.opts;
    let pushes: Vec<String> = r
        .pushes
        .iter()
        .map(|(p, w)| {
            format!(
                r#"{{"at_ms":{},"socket":{},"file":{},"start_ms":{},"end_ms":{},"exit_status":{},"window":{},"output":{}}}"#,
                p.push.at_ms,
                json_str(&p.push.socket),
                json_str(&p.push.file),
                json_opt(p.start_ms),
                json_opt(p.end_ms),
                p.status.map_or("null".to_string(), |c| c.to_string()),
                w.as_ref().map_or("null".to_string(), json_latency),
                json_str(&p.output)
            )
        })
        .collect();
    let messages: Vec<String> = r.messages.iter().map(|m| json_str(m)).collect();
    format!(
        concat!(
            r#"{{"addr":{},"clients":{},"requests_per_client":{},"max_seconds":{},"write_ratio":{},"keys_per_client":{},"#,
            r#""requests":{},"seconds":{:.6},"throughput_rps":{:.1},"wrong_replies":{},"connection_errors":{},"#,
            r#""latency":{},"per_client_requests":[{}],"window_ms":{},"pushes":[{}],"#,
            r#""final_check":{{"keys":{},"missing":{},"wrong":{},"not_checked":{}}},"clean":{},"messages":[{}]}}"#
        ),
        json_str(&o.addr.to_string()),
        o.clients,
        o.requests,
        o.seconds,
        o.write_ratio,
        o.keys,
        r.overall.requests,
        r.seconds,
        r.throughput(),
        r.wrong_replies(),
        r.connection_errors(),
        json_latency(&r.overall),
        r.results.iter().map(|c| c.samples.len().to_string()).collect::<Vec<_>>().join(","),
        o.window_ms,
        pushes.join(","),
        r.keys,
        r.missing,
        r.wrong,
        r.check_errors,
        r.clean(),
        messages.join(",")
    )
}

fn write_samples(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "t_ms,latency_us,client,op,ok")?;
    for s in samples {
        writeln!(
            f,
            "{:.3},{},{},{},{}",
            s.t_us as f64 / 1000.0,
            s.latency_us,
            s.client,
            if s.write { "SET" } else { "GET" },
            u8::from(s.ok)
        )?;
    }
    f.flush()
}

fn run(opts: Options) -> Result<Report, String> {
    let timeout = Duration::from_millis(opts.timeout_ms);
    // Is anybody there? Failing here is a usage problem (exit 2), not a load result.
    drop(client::Conn::open(opts.addr, timeout).map_err(|e| format!("cannot connect to {}: {e}", opts.addr))?);

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(opts.seconds);
    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (molt, extra, pushes, done) =
            (opts.molt.clone(), opts.push_args.clone(), opts.pushes.clone(), done.clone());
        std::thread::spawn(move || push::run_all(molt, extra, pushes, start, done))
    };
    let handles: Vec<_> = (0..opts.clients)
        .map(|i| {
            let plan = Plan {
                id: i as u32,
                addr: opts.addr,
                requests: opts.requests,
                keys: opts.keys,
                key_prefix: opts.key_prefix.clone(),
                write_ratio: opts.write_ratio,
                seed: opts.seed,
                timeout,
                start,
                deadline,
            };
            std::thread::spawn(move || client::run(plan))
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().map_err(|_| "a client thread panicked".to_string())?);
    }
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let runs = pusher.join().map_err(|_| "the push thread panicked".to_string())?;

    let mut samples: Vec<Sample> = results.iter().flat_map(|r| r.samples.iter().copied()).collect();
    samples.sort_by_key(|s| s.t_us);
    let overall = latency(samples.iter());
    let pushes = runs
        .into_iter()
        .map(|p| {
            let w = match (p.start_ms, p.end_ms) {
                (Some(a), Some(b)) => {
                    let (lo, hi) = ((a * 1000.0) as u64, ((b + opts.window_ms as f64) * 1000.0) as u64);
                    // A request belongs to the window when it overlaps it.
                    Some(latency(samples.iter().filter(|s| s.t_us <= hi && s.t_us + s.latency_us >= lo)))
                }
                _ => None,
            };
            (p, w)
        })
        .collect();

    let mut messages: Vec<String> = results.iter().flat_map(|r| r.messages.iter().cloned()).take(20).collect();
    let (mut keys, mut missing, mut wrong, mut check_errors) = (0, 0, 0, 0);
    let check_deadline = Instant::now() + Duration::from_secs(60);
    for (i, r) in results.iter().enumerate() {
        let c = client::check(opts.addr, timeout, check_deadline, i as u32, &r.model);
        keys += c.keys;
        missing += c.missing;
        wrong += c.wrong;
        check_errors += c.errors;
        messages.extend(c.messages.into_iter().take(5));
    }
    Ok(Report { opts, seconds, results, samples, overall, pushes, keys, missing, wrong, check_errors, messages })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match options::parse(&args) {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Help) => {
            println!("{}", options::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("molt-loadgen: {e}\n(molt-loadgen --help for the options)");
            std::process::exit(2);
        }
    };
    let report = match run(opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("molt-loadgen: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &report.opts.samples {
        if let Err(e) = write_samples(path, &report.samples) {
            eprintln!("molt-loadgen: cannot write the samples to {}: {e}", path.display());
            std::process::exit(2);
        }
    }
    if report.opts.json {
        println!("{}", json(&report));
    } else {
        println!("{}", text(&report));
    }
    std::process::exit(if report.clean() { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn json_strings() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
