//! The channel server over a real WebSocket, driven by a hand-written
//! client: the token is required, garbage is skipped, hello gets welcome,
//! pings get pongs, a resent event is acknowledged and stored once, any
//! frame refreshes when the agent was last heard, and an agent that says
//! nothing is pinged and then logged silent (its servers stay in rotation).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use usher_control_plane::manager::{
    api_routes, channel_route, AuthCheck, Manager, ManagerConfig, NoListener,
};
use usher_core::channel::{
    self, AgentMessage, Event, Hello, HostFacts, ManagerMessage, ServerInfo, PROTOCOL_VERSION,
};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_msg(ws: &mut Ws) -> ManagerMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            return channel::decode(&t).expect("valid frame");
        }
    }
}

/// `last_heard_age_secs` of one agent from `GET /api/v1/agents`.
async fn last_heard_age(m: &Manager, agent: &str) -> f64 {
    let auth: AuthCheck = Arc::new(|h| h == Some("Bearer admin"));
    let res = warp::test::request()
        .path("/api/v1/agents")
        .header("authorization", "Bearer admin")
        .reply(&api_routes(m.clone(), auth))
        .await;
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    v.as_array()
        .and_then(|l| l.iter().find(|r| r["agent_id"] == agent))
        .and_then(|r| r["last_heard_age_secs"].as_f64())
        .unwrap_or_else(|| panic!("no last_heard_age_secs for {agent}: {v}"))
}

fn event(seq: u64) -> String {
    channel::encode(&AgentMessage::Event(Event {
        seq,
        origin_id: "a1".into(),
        origin_name: "a1".into(),
        type_name: "test".into(),
        type_code: 1,
        text: "hello".into(),
        time_occurred_us: 1,
    }))
}

#[tokio::test]
async fn channel_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ManagerConfig {
        interval_ms: 50,
        ping_after_ms: 300,
        silent_after_ms: 900,
        flush_ms: 10,
        ..Default::default()
    };
    let m = Manager::open(dir.path(), cfg, Arc::new(NoListener))
        .await
        .expect("open");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let load = m.spawn(async {
        stop_rx.await.ok();
    });
    let (addr, server) = warp::serve(channel_route(m.clone())).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    let url = format!("ws://{addr}/api/v1/agent/channel");

    // No token, wrong token: refused with 401.
    for token in [None, Some("nope")] {
        let mut req = url.as_str().into_client_request().expect("request");
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }

    let mut req = url.as_str().into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", m.agent_token())
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    let hello = AgentMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        agent_id: "a1".into(),
        facts: HostFacts {
            host_id: "h1".into(),
            host_name: "host".into(),
            ..Default::default()
        },
        servers: vec![ServerInfo {
            name: "s1".into(),
            url: "http://127.0.0.1:1".into(),
            pid: None,
        }],
    });
    ws.send(Message::Text(channel::encode(&hello)))
        .await
        .expect("hello");
    assert_eq!(
        next_msg(&mut ws).await,
        ManagerMessage::Welcome {
            agent_id: "a1".into(),
            stored_seq: 0
        }
    );

    // Garbage is skipped; pings are answered; events acknowledged, resends stored once.
    ws.send(Message::Text("{not json".into()))
        .await
        .expect("garbage");
    ws.send(Message::Text(
        r#"{"v":99,"msg":{"type":"ping","nonce":1}}"#.into(),
    ))
    .await
    .expect("other version");
    ws.send(Message::Text(channel::encode(&AgentMessage::Ping {
        nonce: 42,
    })))
    .await
    .expect("ping");
    assert_eq!(next_msg(&mut ws).await, ManagerMessage::Pong { nonce: 42 });
    for seq in [1, 2, 1, 2, 3] {
        ws.send(Message::Text(event(seq))).await.expect("event");
    }
    let mut acks = Vec::new();
    while acks.len() < 5 {
        if let ManagerMessage::Ack { seq } = next_msg(&mut ws).await {
            acks.push(seq);
        }
    }
    assert_eq!(acks, vec![1, 2, 1, 2, 3]);
    let n: i64 = m
        .logdb()
        .read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM events WHERE agent_id = 'a1'",
                [],
                |r| r.get(0),
            )
        })
        .await
        .expect("count");
    assert_eq!(n, 3);
    assert_eq!(m.logdb().stored_seq("a1").await.expect("seq"), 3);

    // Any frame, even one that does not parse, counts as hearing the agent.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = last_heard_age(&m, "a1").await;
    assert!(before >= 0.2, "heard {before}s ago");
    ws.send(Message::Text("still here".into()))
        .await
        .expect("frame");
    let mut after = before;
    for _ in 0..50 {
        after = last_heard_age(&m, "a1").await;
        if after < 0.15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(after < 0.15, "heard {after}s ago after a frame");

    // Silence: the manager pings, then marks the agent's server failed.
    let mut pinged = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline && !pinged {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(100), ws.next()).await
        {
            pinged = matches!(
                channel::decode::<ManagerMessage>(&t),
                Ok(ManagerMessage::Ping { .. })
            );
        }
    }
    assert!(pinged, "a silent agent is pinged");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // …and logs it silent, but a silent agent is no evidence against its
    // server: s1 stays in rotation (missing data is not failure).
    let st = m.statuses();
    let s1 = st.iter().find(|s| s.server == "s1").expect("s1 known");
    assert!(!s1.failed, "a silent agent failed its server: {s1:?}");
    let mut silent_events = 0;
    for _ in 0..50 {
        let auth: AuthCheck = Arc::new(|h| h == Some("Bearer admin"));
        let res = warp::test::request()
            .path("/api/v1/events?type=agent_silent")
            .header("authorization", "Bearer admin")
            .reply(&api_routes(m.clone(), auth))
            .await;
        let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
        silent_events = v.as_array().map(Vec::len).unwrap_or(0);
        if silent_events > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(silent_events, 1, "one agent_silent event");

    // A reconnect is welcomed with what is already stored.
    drop(ws);
    let mut req = url.as_str().into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", m.agent_token())
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("reconnects");
    ws.send(Message::Text(channel::encode(&hello)))
        .await
        .expect("hello");
    assert_eq!(
        next_msg(&mut ws).await,
        ManagerMessage::Welcome {
            agent_id: "a1".into(),
            stored_seq: 3
        }
    );

    stop_tx.send(()).ok();
    load.await.expect("load loop ends");
}
