//! How long one thread takes to wake another on this machine, after the
//! wakee has slept as long as a request's model call (the floor under every
//! thread hand-off of a server: the sidecar's request path has four).
//!
//! Two threads take turns: one computes for `--work-ms` (the other sleeps
//! in a blocking receive meanwhile, so its CPU may go idle), then sends the
//! current time; the latency is from that send to the receiver running.
//! Prints p50 / p99 / p99.9 / max in microseconds.
//!
//! ```text
//! cargo run --release -p bridgeml-serve --example wake_latency -- --work-ms 10 --rounds 2000
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

fn spin(d: Duration) {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn main() {
    let mut work = Duration::from_millis(10);
    let mut rounds = 2000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--work-ms" => work = Duration::from_secs_f64(v().parse::<f64>().unwrap() / 1000.0),
            "--rounds" => rounds = v().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    let (to_b, b_rx) = mpsc::channel::<Instant>();
    let (to_a, a_rx) = mpsc::channel::<Instant>();
    let b = std::thread::spawn(move || {
        let mut lat = Vec::new();
        while let Ok(sent) = b_rx.recv() {
            lat.push(sent.elapsed());
            spin(work);
            if to_a.send(Instant::now()).is_err() {
                break;
            }
        }
        lat
    });
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        spin(work);
        to_b.send(Instant::now()).unwrap();
        lat.push(a_rx.recv().unwrap().elapsed());
    }
    drop(to_b);
    lat.extend(b.join().unwrap());
    lat.sort();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    println!(
        "wakes {}: p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us (after {:.1} ms of work)",
        lat.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        work.as_secs_f64() * 1000.0
    );
}
