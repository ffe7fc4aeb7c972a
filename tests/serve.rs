//! The `stompede serve` binary's own settings: how many threads run the sessions.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ServerProcess, Tcp};
use stompede::protocol::{Command, Frame};

/// A message published on `server` reaches a subscriber on it.
async fn round_trip(server: &ServerProcess) {
    let mut subscriber = Tcp::connect(server.stomp, "subscriber").await;
    subscriber.subscribe("s", "/topic/workers", "auto").await;
    let mut publisher = Tcp::connect(server.stomp, "publisher").await;
    publisher
        .send_receipted(
            Frame::new(Command::Send)
                .header("destination", "/topic/workers")
                .body(b"hello".to_vec()),
            "sent",
        )
        .await;
    let message = subscriber.frame().await;
    assert_eq!(message.command, Command::Message, "{message:?}");
    assert_eq!(&message.body[..], b"hello");
}

#[tokio::test]
async fn the_workers_flag_sizes_the_runtime_that_serves_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    // One more than the default, so that the default cannot pass for it on any machine.
    let cores = std::thread::available_parallelism().unwrap().get();
    let wanted = (cores + 1).to_string();
    let chosen = ServerProcess::start_with(dir.path(), &["--workers", &wanted]);
    assert_eq!(
        chosen.listening["workers"],
        cores + 1,
        "{}",
        chosen.listening
    );
    round_trip(&chosen).await;
    drop(chosen);

    let default = ServerProcess::start(dir.path());
    assert_eq!(default.listening["workers"], cores, "{}", default.listening);
    round_trip(&default).await;
}
