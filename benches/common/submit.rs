//! Durable job submissions over STOMP, as a separate client sends them: one TCP connection per
//! caller, each SEND to `/app/jobs` awaiting its RECEIPT before the next.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One caller: `count` submissions of a one-chunk `job_type` job as `user`.
pub async fn submitter(
    addr: SocketAddr,
    user: String,
    job_type: &'static str,
    count: usize,
    delay: Option<u64>,
) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut decoder = Decoder::new(Default::default());
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let connect = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("login", user.as_str());
    encode(&connect, Version::V1_2, &mut out);
    stream.write_all(&out).await.unwrap();
    out.clear();
    let next = async |stream: &mut TcpStream, buf: &mut BytesMut, decoder: &mut Decoder| loop {
        if let Some(Decoded::Frame(f)) = decoder.decode(buf).unwrap() {
            return f;
        }
        assert!(stream.read_buf(buf).await.unwrap() > 0, "closed");
    };
    next(&mut stream, &mut buf, &mut decoder).await;
    decoder.set_version(Version::V1_2);
    for i in 0..count {
        let mut frame = Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", job_type)
            .header("receipt", i.to_string())
            .body(r#"{"chunks":1}"#);
        if let Some(delay) = delay {
            frame = frame.header("delay", delay.to_string());
        }
        encode(&frame, Version::V1_2, &mut out);
        stream.write_all(&out).await.unwrap();
        out.clear();
        let reply = next(&mut stream, &mut buf, &mut decoder).await;
        assert_eq!(reply.command, Command::Receipt, "{reply:?}");
    }
}

/// `total` submissions from `clients` callers at once; submissions per second.
pub async fn submissions(
    addr: SocketAddr,
    job_type: &'static str,
    total: usize,
    clients: usize,
    delay: Option<u64>,
) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(submitter(
                addr,
                format!("user{c}"),
                job_type,
                total / clients,
                delay,
            ))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (total / clients * clients) as f64 / started.elapsed().as_secs_f64()
}
