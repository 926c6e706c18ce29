//! A closed-loop HTTP/1.1 load generator that never sleeps.
//!
//! wrk blocks in `epoll_wait` whenever all its connections wait for the server. On this VM
//! every response that has to wake a sleeping client vCPU costs the *server* an inter-processor
//! interrupt (a `perf record` of the server shows 16–24 % of its samples in `sock_def_readable`
//! → `_raw_spin_unlock_irqrestore`), and the slower the server, the more often the client sleeps:
//! the artefact grows with the cost it is meant to measure. This client polls with a zero
//! timeout instead, so no response ever has to wake it, and every server is measured by its own
//! work. Requests are pre-rendered bytes, so a fresh token per request costs the client nothing
//! more than a fixed one, and the open route is the baseline for both.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Responses per second during the run (not counting the drain after it).
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Every response read, the ones in flight at the end included.
    pub requests: u64,
    pub non_2xx: u64,
}

/// One pre-rendered HTTP/1.1 request.
pub fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(token) = bearer {
        request.push_str("Authorization: Bearer ");
        request.push_str(token);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A pre-rendered `POST` with a form body.
pub fn post_form(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Connection {
    stream: TcpStream,
    request: usize,
    written: usize,
    sent_at: Instant,
    buffer: Vec<u8>,
    /// A request is out and its response not yet read.
    in_flight: bool,
}

/// Drives `connections` keep-alive connections to `addr` for `duration`, sending `requests`
/// in turn (each once, then from the start again), on the calling thread.
pub fn run(addr: SocketAddr, requests: &[Vec<u8>], connections: usize, duration: Duration) -> Run {
    assert!(!requests.is_empty());
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(connections * 2);
    let mut next = 0usize;
    let mut take = || {
        let index = next;
        next = (next + 1) % requests.len();
        index
    };
    let mut conns: Vec<Connection> = (0..connections)
        .map(|i| {
            let std = std::net::TcpStream::connect(addr).expect("connect");
            std.set_nodelay(true).unwrap();
            std.set_nonblocking(true).unwrap();
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            Connection {
                stream,
                request: take(),
                written: 0,
                sent_at: Instant::now(),
                buffer: Vec::with_capacity(4096),
                in_flight: true,
            }
        })
        .collect();
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let (mut done, mut non_2xx) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + duration;
    for conn in &mut conns {
        conn.sent_at = Instant::now();
        write_some(conn, requests);
    }
    let mut scratch = [0u8; 16 * 1024];
    let (mut in_window, mut window) = (0u64, None);
    // After the deadline no request is sent, and the ones in flight are read to the end: the
    // server then has answered exactly `requests` (which its own counters can be held to).
    let drain_limit = deadline + Duration::from_secs(10);
    while conns.iter().any(|conn| conn.in_flight) {
        let now = Instant::now();
        if window.is_none() && now >= deadline {
            window = Some(now - start);
            in_window = done;
        }
        assert!(
            now < drain_limit,
            "responses still missing 10 s after the run"
        );
        poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            if event.is_writable() {
                write_some(conn, requests);
            }
            if !event.is_readable() {
                continue;
            }
            loop {
                match conn.stream.read(&mut scratch) {
                    Ok(0) => panic!("the server closed a keep-alive connection"),
                    Ok(n) => conn.buffer.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            while let Some((status, length)) = complete_response(&conn.buffer) {
                conn.buffer.drain(..length);
                done += 1;
                non_2xx += u64::from(!(200..400).contains(&status));
                let elapsed = conn.sent_at.elapsed().as_nanos();
                latencies.push(u32::try_from(elapsed).unwrap_or(u32::MAX));
                conn.in_flight = window.is_none();
                if conn.in_flight {
                    conn.request = take();
                    conn.written = 0;
                    conn.sent_at = Instant::now();
                    write_some(conn, requests);
                }
            }
        }
    }
    let (in_window, window) = match window {
        Some(window) => (in_window, window),
        None => (done, start.elapsed()),
    };
    let secs = window.as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(latencies[index]) / 1e6
    };
    Run {
        rps: in_window as f64 / secs,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        requests: done,
        non_2xx,
    }
}

fn write_some(conn: &mut Connection, requests: &[Vec<u8>]) {
    let request = &requests[conn.request];
    while conn.written < request.len() {
        match conn.stream.write(&request[conn.written..]) {
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// `(status, bytes)` of the first whole response in `buffer`, if it holds one. Every server
/// here answers with `content-length`; anything else is a bench bug.
fn complete_response(buffer: &[u8]) -> Option<(u16, usize)> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buffer[..head_end]).expect("ASCII response head");
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut body = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                body = value.trim().parse::<usize>().ok();
            }
            assert!(
                !name.eq_ignore_ascii_case("transfer-encoding"),
                "chunked response"
            );
        }
    }
    let total = head_end + body.expect("content-length");
    (buffer.len() >= total).then_some((status, total))
}
