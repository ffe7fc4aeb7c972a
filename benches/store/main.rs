//! Durable-queue measurements: persistent SENDs with a RECEIPT awaited per message, from 1, 10
//! and 100 concurrent producers over TCP, and the restart time with N stored messages.
//!
//! `cargo bench --bench store -- [--messages N] [--producers 1,10,100] [--restart-messages N]
//! [--periodic]`; `--periodic` measures the `durability = "periodic"` mode, where a RECEIPT does
//! not wait for the disk.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompede::config::Durability;
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Version};
use stompede::{BrokerBuilder, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// The same allocator as the `stompede` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../common/args.rs"]
mod args;
use args::{flag, number as arg, numbers};

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        stomp: Some("127.0.0.1:0".parse().unwrap()),
        http: None,
        max_queue_messages: 2_000_000,
        max_queue_bytes: 4 << 30,
        durability: if flag("--periodic") {
            Durability::Periodic
        } else {
            Durability::Sync
        },
        ..Config::default()
    }
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    out: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Default::default()),
            out: BytesMut::new(),
        };
        client
            .send(Frame::new(Command::Connect).header("accept-version", "1.2"))
            .await;
        client.frame().await;
        client.decoder.set_version(Version::V1_2);
        client
    }

    async fn send(&mut self, frame: Frame) {
        encode(&frame, Version::V1_2, &mut self.out);
        self.stream.write_all(&self.out).await.unwrap();
        self.out.clear();
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(Decoded::Frame(f)) = self.decoder.decode(&mut self.buf).unwrap() {
                return f;
            }
            assert!(
                self.stream.read_buf(&mut self.buf).await.unwrap() > 0,
                "closed"
            );
        }
    }
}

/// Each producer sends `per_producer` persistent messages, awaiting each RECEIPT.
async fn persistent_sends(addr: SocketAddr, producers: usize, per_producer: usize) -> f64 {
    let body = vec![b'p'; 256];
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for i in 0..per_producer {
                    client
                        .send(
                            Frame::new(Command::Send)
                                .header("destination", "/queue/bench")
                                .header("persistent", "true")
                                .header("receipt", format!("{p}-{i}"))
                                .body(body.clone()),
                        )
                        .await;
                    let receipt = client.frame().await;
                    assert_eq!(receipt.command, Command::Receipt);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (producers * per_producer) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let messages = arg("--messages", 20_000);
        println!("| producers | persistent msgs/s (receipt awaited per message) |");
        println!("| --- | --- |");
        for producers in numbers("--producers", &[1, 10, 100]) {
            let dir = tempfile::tempdir().unwrap();
            let server = BrokerBuilder::new(config(dir.path())).start().await.unwrap();
            let addr = server.stomp_addr().unwrap();
            let per = (messages / producers).max(1);
            let rate = persistent_sends(addr, producers, per).await;
            println!("| {producers} | {rate:.0} |");
            println!("{{\"bench\":\"persistent_send\",\"producers\":{producers},\"msgs_per_s\":{rate:.0}}}");
            server.shutdown().await;
        }

        let stored = arg("--restart-messages", 1_000_000);
        let dir = tempfile::tempdir().unwrap();
        {
            let server = BrokerBuilder::new(config(dir.path())).start().await.unwrap();
            let addr = server.stomp_addr().unwrap();
            let fill = Instant::now();
            // 100 producers without per-message receipts: the fastest way to fill the store.
            let tasks: Vec<_> = (0..100)
                .map(|p| {
                    tokio::spawn(async move {
                        let mut client = Client::connect(addr).await;
                        let n = (stored / 100).max(1);
                        for i in 0..n {
                            let mut frame = Frame::new(Command::Send)
                                .header("destination", "/queue/restart")
                                .header("persistent", "true")
                                .body(vec![b'r'; 256]);
                            if i + 1 == n {
                                frame = frame.header("receipt", format!("last-{p}"));
                            }
                            client.send(frame).await;
                        }
                        assert_eq!(client.frame().await.command, Command::Receipt);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            eprintln!("stored {stored} messages in {:.1} s", fill.elapsed().as_secs_f64());
            server.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        {
            // Where restart time goes: opening sled, then reading the records.
            let t = Instant::now();
            let db = sled::open(dir.path().join("store")).unwrap();
            let messages = db.open_tree("messages").unwrap();
            let opened = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let loaded = messages.iter().filter(Result::is_ok).count();
            eprintln!(
                "sled open {opened:.2} s, load {loaded} records {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let server = BrokerBuilder::new(config(dir.path())).start().await.unwrap();
        let restart = started.elapsed().as_secs_f64();
        let depth = server.broker().queue_stats()[0].depth;
        assert_eq!(depth, stored, "restored depth");
        println!("| restart with {stored} stored messages | {restart:.2} s |");
        println!("{{\"bench\":\"restart\",\"messages\":{stored},\"seconds\":{restart:.3}}}");
        server.shutdown().await;
    });
}
