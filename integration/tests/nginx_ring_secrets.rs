//! Secrets at rest in the nginx module's record ring: the file is owner-only
//! (0600), and the shipped `nginx/web-server.conf` record line (`usher_record
//! all;`) does not record Cookie headers; naming `cookies` does.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use usher_agent::RingReader;
use usher_core::RequestRecord;
use usher_integration::{repo_root, DemoApp, Nginx};

/// The `usher_record` line of the shipped web server config.
fn shipped_record_line() -> String {
    let conf = std::fs::read_to_string(repo_root().join("nginx/web-server.conf"))
        .expect("nginx/web-server.conf");
    conf.lines()
        .map(str::trim)
        .find(|l| l.starts_with("usher_record "))
        .expect("the shipped config has a usher_record line")
        .to_string()
}

fn drain(reader: &mut RingReader, want: usize) -> Vec<RequestRecord> {
    let mut records = Vec::new();
    let start = std::time::Instant::now();
    while records.len() < want && start.elapsed() < Duration::from_secs(5) {
        reader.drain(|r| records.push(r));
        std::thread::sleep(Duration::from_millis(20));
    }
    records
}

#[test]
fn ring_is_owner_only_and_the_shipped_config_records_no_cookies() {
    let app = DemoApp::start("secrets", 0);
    let nginx = Nginx::start(
        "usher_ring {RING} 64k;",
        &format!(
            "usher_role server; usher_app shop; {}\n \
             location /named/ {{ usher_record all cookies; proxy_pass {url}; }}\n \
             location / {{ proxy_pass {url}; }}",
            shipped_record_line(),
            url = app.url()
        ),
    );
    let mode = std::fs::metadata(&nginx.ring)
        .expect("nginx created the ring file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "ring file mode {:o}", mode & 0o777);

    let mut reader = RingReader::open(&nginx.ring).expect("ring file");
    let r = nginx.get_with_cookie("/static.html", "usher_session=s3cret; a=1");
    assert_eq!(r.status, 200, "{}", r.body);
    let records = drain(&mut reader, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let rec = &records[0];
    assert_eq!(rec.cookies, None, "no cookie field under `all`: {rec:?}");
    assert!(
        !format!("{rec:?}").contains("s3cret"),
        "the cookie value is nowhere in the record: {rec:?}"
    );
    assert!(
        rec.user_agent.is_some() && rec.request_line.is_some(),
        "{rec:?}"
    );

    // An operator who wants cookie values names them.
    nginx.get_with_cookie("/named/static.html", "usher_session=s3cret");
    let records = drain(&mut reader, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].cookies.as_deref(),
        Some("usher_session=s3cret"),
        "{:?}",
        records[0]
    );
}
