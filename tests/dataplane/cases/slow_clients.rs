//! Slow and silent clients cannot starve a server: request bodies have a deadline and take no
//! in-flight slot while they trickle in, HTTP/1 headers (and a new connection's first bytes)
//! have a deadline, and at the connection cap the quietest connection makes room, so a client
//! that talks — `/health`, ListStreams — is answered throughout.

use std::time::{Duration, Instant};

use shardline_tests::Server;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Opens `n` connections to `address` and writes `head` on each.
async fn open(address: &str, n: usize, head: &str) -> anyhow::Result<Vec<TcpStream>> {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(address).await?;
        if !head.is_empty() {
            tcp.write_all(head.as_bytes()).await?;
        }
        connections.push(tcp);
    }
    Ok(connections)
}

/// `GET /health` on a new connection, answered within `within`.
async fn health(address: &str, within: Duration) -> anyhow::Result<()> {
    let answer = tokio::time::timeout(within, async {
        let mut tcp = TcpStream::connect(address).await?;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    })
    .await
    .map_err(|_| anyhow::anyhow!("/health did not answer within {within:?}"))??;
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    Ok(())
}

/// Whether the server closed `tcp` (it reads end-of-file, or what is left of an answer then
/// end-of-file) within `within`; returns what it read.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut text = Vec::new();
    match tokio::time::timeout(within, tcp.read_to_end(&mut text)).await {
        Ok(_) => Some(String::from_utf8_lossy(&text).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn trickling_bodies_time_out_without_taking_in_flight_slots() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--max-in-flight", "16", "--body-timeout-ms", "3000"])?;
    let address = server.address().to_owned();
    // Full headers promising 100 bytes, then one: four times the in-flight slots.
    let head = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
                Authorization: AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=0\r\nX-Amz-Date: 1\r\n\
                Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{";
    let mut stalled = open(&address, 64, head).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = server.client();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), client.list_streams().send()).await??;
    assert!(started.elapsed() < Duration::from_secs(2));
    health(&address, Duration::from_secs(1)).await?;
    // The stalled requests get the retryable timeout error once their deadline passes.
    let answer = closed_within(&mut stalled[0], Duration::from_secs(10)).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeoutException"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn partial_headers_and_silent_connections_are_closed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--header-timeout-ms", "1000"])?;
    let address = server.address().to_owned();
    let mut partial = open(&address, 50, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar").await?;
    let mut silent = open(&address, 50, "").await?;
    let started = Instant::now();
    for tcp in partial.iter_mut().chain(silent.iter_mut()) {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        assert!(closed_within(tcp, left).await.is_some(), "a connection outlived the header timeout");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn at_the_connection_cap_the_quietest_connection_makes_room() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--max-connections", "100", "--header-timeout-ms", "60000"])?;
    let address = server.address().to_owned();
    // 150 connections that never say anything: more than the cap.
    let mut idle = open(&address, 150, "").await?;
    for _ in 0..20 {
        health(&address, Duration::from_secs(1)).await?;
    }
    server.client().list_streams().send().await?;
    // The first ones to go quiet were closed to make room; the newest are still open.
    let mut closed = 0;
    for tcp in &mut idle[..50] {
        closed += usize::from(closed_within(tcp, Duration::from_secs(2)).await.is_some());
    }
    assert_eq!(closed, 50, "the 50 oldest idle connections were closed");
    assert!(closed_within(&mut idle[149], Duration::from_millis(500)).await.is_none(), "the newest stays open");
    Ok(())
}

/// Forty clients each sending 8 MiB of a 12 MiB body and then stalling: the server holds at
/// most its request buffer of them, and small calls are still answered at once.
#[tokio::test]
async fn bodies_in_flight_are_bounded_in_bytes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--request-buffer-mib", "16", "--body-timeout-ms", "30000"])?;
    let address = server.address().to_owned();
    let before = server.peak_memory_bytes()?;
    let head = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\n\
                Authorization: AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=0\r\nX-Amz-Date: 1\r\n\
                Content-Type: application/x-amz-json-1.1\r\nContent-Length: 12582912\r\n\r\n";
    let mut senders = Vec::new();
    for _ in 0..40 {
        let mut tcp = TcpStream::connect(&address).await?;
        senders.push(tokio::spawn(async move {
            let chunk = vec![b' '; 8 << 20];
            let _ = tcp.write_all(head.as_bytes()).await;
            // Blocks once the server stops reading; the connection is held open.
            let _ = tokio::time::timeout(Duration::from_secs(8), tcp.write_all(&chunk)).await;
            tcp
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), server.client().list_streams().send()).await??;
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut held = Vec::new();
    for sender in senders {
        held.push(sender.await?);
    }
    let grown = server.peak_memory_bytes()?.saturating_sub(before);
    assert!(grown < 160 << 20, "40 stalled 8 MiB bodies grew the server by {} MiB", grown >> 20);
    Ok(())
}
