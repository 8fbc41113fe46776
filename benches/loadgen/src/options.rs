//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
molt-loadgen: N clients of a line-protocol key-value server (SET/GET/QUIT, examples/kv_server
and its peers) on 127.0.0.1, every reply checked, with updates pushed at set times.

usage: molt-loadgen [OPTIONS]
  --addr 127.0.0.1:PORT    the server (default 127.0.0.1:7070; only 127.0.0.1)
  --clients N              client connections, each a thread with its own keys (default 4)
  --requests N             requests per client at most (default 10000)
  --seconds S              stop every client after S seconds at most (default 10)
  --write-ratio R          the share of SETs among requests, 0..1 (default 0.5)
  --keys N                 keys per client: cI-k0 .. cI-k(N-1) (default 100)
  --key-prefix P           put P before every key (another run against the same server)
  --push AT_MS:SOCKET:FILE at AT_MS after the start run `MOLT push SOCKET FILE` (repeatable;
                           FILE may be --undo)
  --push-arg ARG           one more argument for every push (repeatable: --push-arg
                           --consistency --push-arg per-task)
  --molt PATH              the molt binary for pushes (default: molt)
  --window-ms MS           a push's window lasts until MS after it ends (default 200)
  --timeout-ms MS          a reply or connection slower than this is an error (default 5000)
  --seed N                 the random mix (default 1)
  --samples FILE           write every request as CSV: t_ms,latency_us,client,op,ok
  --json                   print the report as one JSON object
  -h, --help               this text

Each client uses its own keys and checks each GET against what it last wrote, so the server
must start without them (or give --key-prefix). A push runs `MOLT push SOCKET FILE [ARGS]`
and is timed from its start to its exit; its window is every request that overlaps from the
push's start to --window-ms after its end. After the load, every key a client wrote is read
back on a fresh connection: missing or wrong keys are reported.

Exit status: 0 every reply right, every written key found, every push ran and exited 0;
1 otherwise; 2 usage error or no connection to the server.";

#[derive(Debug, Clone)]
pub struct Push {
    pub at_ms: u64,
    pub socket: String,
    pub file: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub clients: usize,
    pub requests: u64,
    pub seconds: f64,
    pub write_ratio: f64,
    pub keys: usize,
    pub key_prefix: String,
    pub pushes: Vec<Push>,
    pub push_args: Vec<String>,
    pub molt: String,
    pub window_ms: u64,
    pub timeout_ms: u64,
    pub seed: u64,
    pub samples: Option<PathBuf>,
    pub json: bool,
}

/// What the command line asks for: a run, or the help text.
pub enum Parsed {
    Run(Box<Options>),
    Help,
}

fn number<T>(flag: &str, v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("{flag} takes a number from {lo} to {hi}, not '{v}'")),
    }
}

pub fn parse_push(v: &str) -> Result<Push, String> {
    let mut parts = v.splitn(3, ':');
    let (Some(at), Some(socket), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("--push takes AT_MS:SOCKET:FILE, not '{v}'"));
    };
    let at_ms = number("--push's AT_MS", at, 0u64, 3_600_000)?;
    if socket.is_empty() || file.is_empty() {
        return Err(format!("--push takes AT_MS:SOCKET:FILE, not '{v}'"));
    }
    Ok(Push { at_ms, socket: socket.to_string(), file: file.to_string() })
}

pub fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v.parse().map_err(|_| format!("--addr takes 127.0.0.1:PORT, not '{v}'"))?;
    if addr.ip() != std::net::Ipv4Addr::LOCALHOST || addr.port() == 0 {
        return Err(format!("--addr takes 127.0.0.1:PORT (a port above 0; only 127.0.0.1), not '{v}'"));
    }
    Ok(addr)
}

pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Options {
        addr: parse_addr("127.0.0.1:7070")?,
        clients: 4,
        requests: 10_000,
        seconds: 10.0,
        write_ratio: 0.5,
        keys: 100,
        key_prefix: String::new(),
        pushes: Vec::new(),
        push_args: Vec::new(),
        molt: "molt".to_string(),
        window_ms: 200,
        timeout_ms: 5000,
        seed: 1,
        samples: None,
        json: false,
    };
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if matches!(flag, "-h" | "--help") {
            return Ok(Parsed::Help);
        }
        if flag == "--json" {
            o.json = true;
            i += 1;
            continue;
        }
        let Some(v) = args.get(i + 1).map(String::as_str) else {
            return Err(if flag.starts_with('-') {
                format!("{flag} needs a value")
            } else {
                format!("unexpected argument '{flag}'")
            });
        };
        match flag {
            "--addr" => o.addr = parse_addr(v)?,
            "--clients" => o.clients = number(flag, v, 1usize, 1000)?,
            "--requests" => o.requests = number(flag, v, 1u64, 10_000_000)?,
            "--seconds" => o.seconds = number(flag, v, 0.01f64, 3600.0)?,
            "--write-ratio" => o.write_ratio = number(flag, v, 0.0f64, 1.0)?,
            "--keys" => o.keys = number(flag, v, 1usize, 1_000_000)?,
            "--key-prefix" => {
                if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!("--key-prefix takes a word without spaces, not '{v}'"));
                }
                o.key_prefix = v.to_string();
            }
            "--push" => o.pushes.push(parse_push(v)?),
            "--push-arg" => o.push_args.push(v.to_string()),
            "--molt" => o.molt = v.to_string(),
            "--window-ms" => o.window_ms = number(flag, v, 0u64, 600_000)?,
            "--timeout-ms" => o.timeout_ms = number(flag, v, 1u64, 600_000)?,
            "--seed" => o.seed = number(flag, v, 0u64, u64::MAX)?,
            "--samples" => o.samples = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option '{flag}'")),
        }
        i += 2;
    }
    o.pushes.sort_by_key(|p| p.at_ms);
    Ok(Parsed::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Parsed::Run(o)) =
            parse(&args("--addr 127.0.0.1:9 --clients 3 --push 500:/tmp/s:v2.molt --push 100:/tmp/s:--undo --json"))
        else {
            panic!("parses")
        };
        assert_eq!(o.addr.port(), 9);
        assert_eq!(o.clients, 3);
        assert!(o.json);
        assert_eq!(o.pushes[0].at_ms, 100);
        assert_eq!(o.pushes[0].file, "--undo");
        assert_eq!(o.pushes[1].file, "v2.molt");
    }

    #[test]
    fn errors() {
        for (a, want) in [
            ("--addr 10.0.0.1:80", "only 127.0.0.1"),
            ("--addr localhost", "127.0.0.1:PORT"),
            ("--clients 0", "from 1 to 1000"),
            ("--write-ratio 2", "from 0 to 1"),
            ("--push 5:/tmp/s", "AT_MS:SOCKET:FILE"),
            ("--push x:/tmp/s:f", "AT_MS"),
            ("--bogus 1", "unknown option"),
            ("--clients", "needs a value"),
        ] {
            let Err(e) = parse(&args(a)) else { panic!("{a} parses") };
            assert!(e.contains(want), "{a}: {e}");
        }
    }
}
