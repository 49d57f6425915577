//! Slow and half-open clients cannot hold the node: headers, bodies and
//! shutdown all have deadlines.

mod common;

use std::time::{Duration, Instant};

use common::{data_dir, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the node closes the connection; what it sent, and how long
/// that took. Panics if it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {limit:?}");
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_at_the_header_timeout() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &["--header-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(&node.addr).await.unwrap();

    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(10)).await;

    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    let (status, _) = node.get_text("/healthz").await;
    assert_eq!(status, 200, "the node still serves others");
}

#[tokio::test]
async fn a_half_sent_body_gets_408_at_the_body_timeout() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &["--body-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(&node.addr).await.unwrap();
    let head = "POST /v1/polls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"id\":";

    stream.write_all(head.as_bytes()).await.unwrap();
    let (reply, took) = read_until_closed(&mut stream, Duration::from_secs(10)).await;

    assert!(reply.starts_with("HTTP/1.1 408"), "reply: {reply:?}");
    assert!(reply.contains("body_timeout"), "reply: {reply:?}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}

#[tokio::test]
async fn sigterm_exits_within_the_deadline_despite_a_half_open_connection() {
    let (_guard, dir) = data_dir();
    let args = [
        "--header-timeout-secs",
        "120",
        "--shutdown-timeout-secs",
        "1",
    ];
    let mut node = Node::start(&dir, &args);
    let mut stream = TcpStream::connect(&node.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Let the node read the partial request before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let exited = node.terminate(Duration::from_secs(8));

    let status = exited.expect("the node exits within the shutdown deadline");
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
