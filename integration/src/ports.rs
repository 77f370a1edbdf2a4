//! Loopback ports: picking a free one and waiting for a listener.
//!
//! Every fixture binds 127.0.0.1 on a port from here, so tests running in
//! parallel (and other test binaries) do not collide.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released; small race accepted).
///
/// Ports come from 20000..32000, below Linux's ephemeral range (32768..):
/// a port from that range can be handed to an outgoing connection meanwhile,
/// and polling `connect` to such a port before its server listens can
/// connect the socket to itself (TCP simultaneous open) and "succeed".
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Different test processes start at different places; 7919 is prime
    // and does not divide SPAN, so the walk visits every port once.
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + seed.wrapping_add(n.wrapping_mul(7919)) % SPAN;
        let port = u16::try_from(port).expect("below 32000");
        if bindable(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {LOW}..{}", LOW + SPAN);
}

/// True when 127.0.0.1:`port` can be bound now.
pub fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// True when something accepts on 127.0.0.1:`port` (300 ms connect limit).
pub fn answers(port: u16) -> bool {
    connects(port, Duration::from_millis(300))
}

fn connects(port: u16, limit: Duration) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, limit).is_ok()
}

/// Waits until something accepts on `127.0.0.1:port`, or panics after `limit`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while !connects(port, Duration::from_millis(200)) {
        assert!(
            start.elapsed() < limit,
            "nothing listens on 127.0.0.1:{port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
