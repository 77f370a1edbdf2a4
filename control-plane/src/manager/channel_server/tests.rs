//! The channel over warp's test WebSocket: record batches as binary frames
//! are stored and acknowledged; frames that do not decode are skipped and
//! the connection stays; a hello of another version is refused with a reason.

use std::sync::Arc;

use usher_core::channel::{
    self, encode_records, AgentMessage, Hello, HostFacts, ManagerMessage, ServerInfo,
    PROTOCOL_VERSION,
};
use usher_core::{encode_batch, FieldMask, RequestRecord};
use warp::filters::ws::Message;
use warp::test::WsClient;

use super::channel_route;
use crate::manager::{Manager, ManagerConfig, NoListener};

async fn manager(dir: &std::path::Path) -> Manager {
    Manager::open(dir, ManagerConfig::default(), Arc::new(NoListener))
        .await
        .expect("open")
}

async fn connect(m: &Manager) -> WsClient {
    warp::test::ws()
        .path("/api/v1/agent/channel")
        .header("authorization", format!("Bearer {}", m.agent_token()))
        .handshake(channel_route(m.clone()))
        .await
        .expect("handshake")
}

fn hello(protocol: u32) -> Hello {
    Hello {
        protocol,
        agent_id: "a1".into(),
        facts: HostFacts {
            host_id: "h1".into(),
            host_name: "host".into(),
            ..Default::default()
        },
        servers: vec![ServerInfo {
            name: "web1".into(),
            url: "http://127.0.0.1:1".into(),
            pid: None,
        }],
    }
}

async fn next(ws: &mut WsClient) -> ManagerMessage {
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.recv())
        .await
        .expect("in time")
        .expect("message");
    channel::decode(msg.to_str().expect("text")).expect("frame")
}

#[tokio::test]
async fn record_batches_are_binary_frames_and_bad_frames_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manager(dir.path()).await;
    let mut ws = connect(&m).await;
    ws.send_text(channel::encode(&AgentMessage::Hello(hello(
        PROTOCOL_VERSION,
    ))))
    .await;
    assert!(matches!(
        next(&mut ws).await,
        ManagerMessage::Welcome { .. }
    ));

    let records = vec![
        RequestRecord {
            status: Some(200),
            ..Default::default()
        };
        2
    ];
    let batch = encode_batch(&records, FieldMask::ALL);
    let good = encode_records(1, "web1", &batch).expect("frame");
    // Cut, of another version, of another kind, not a batch at all: skipped.
    ws.send(Message::binary(good[..5].to_vec())).await;
    let mut v1 = good.clone();
    v1[0] = 1;
    ws.send(Message::binary(v1)).await;
    let mut kind = good.clone();
    kind[1] = b'X';
    ws.send(Message::binary(kind)).await;
    ws.send(Message::binary(Vec::new())).await;
    // The connection is still there: the good batch is stored and acknowledged.
    ws.send(Message::binary(good)).await;
    assert_eq!(next(&mut ws).await, ManagerMessage::Ack { seq: 1 });
    let (rows, status): (i64, i64) = m
        .logdb()
        .read(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(status) FROM requests WHERE agent_id = 'a1' AND server = 'web1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .expect("count");
    assert_eq!((rows, status), (2, 200));
    assert_eq!(m.logdb().stored_seq("a1").await.expect("seq"), 1);

    // A batch about a server a1 did not claim: refused, counted, and
    // still acknowledged (so the agent's spool moves on).
    let other = encode_records(2, "web2", &batch).expect("frame");
    ws.send(Message::binary(other)).await;
    assert_eq!(next(&mut ws).await, ManagerMessage::Ack { seq: 2 });
    assert_eq!(m.refused_count("a1"), 1);
    let rows: i64 = m
        .logdb()
        .read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM requests WHERE server = 'web2'",
                [],
                |r| r.get(0),
            )
        })
        .await
        .expect("count");
    assert_eq!(rows, 0);
}

/// Says `hello` (as text) over a real WebSocket; answers the close frame's
/// code and reason.
async fn refused(m: &Manager, hello: String) -> (u16, String) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message as TMessage};
    let (addr, server) = warp::serve(channel_route(m.clone())).bind_ephemeral(([127, 0, 0, 1], 0));
    let server = tokio::spawn(server);
    let mut req = format!("ws://{addr}/api/v1/agent/channel")
        .into_client_request()
        .expect("request");
    let auth = format!("Bearer {}", m.agent_token())
        .parse()
        .expect("header");
    req.headers_mut().insert("authorization", auth);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    ws.send(TMessage::Text(hello)).await.expect("hello");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("in time");
    server.abort();
    match answer {
        Some(Ok(TMessage::Close(Some(c)))) => (u16::from(c.code), c.reason.into_owned()),
        other => panic!("not a close frame: {other:?}"),
    }
}

#[tokio::test]
async fn a_hello_of_another_version_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manager(dir.path()).await;
    let text = channel::encode(&AgentMessage::Hello(hello(PROTOCOL_VERSION)));
    let v1 = text.replacen(&format!(r#""v":{PROTOCOL_VERSION}"#), r#""v":1"#, 1);
    let (code, reason) = refused(&m, v1).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "frame has protocol version 1, this side speaks 2");
    // A frame of this version whose hello names another protocol: refused too.
    let (code, reason) = refused(&m, channel::encode(&AgentMessage::Hello(hello(1)))).await;
    assert_eq!((code, reason.as_str()), (1008, "hello.protocol 1 is not 2"));
}
