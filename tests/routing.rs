//! Destinations end to end over TCP: topics and patterns, queues with acks and prefetch, user
//! destinations, transactions, `/app/` handlers and the in-process client.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{error_message, Tcp, TestServer};
use stompede::protocol::{Command, Frame, Headers};
use stompede::{AppError, AppRequest, BrokerBuilder};

fn send(destination: &str, body: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", destination)
        .body(body.to_owned())
}

const QUIET: Duration = Duration::from_millis(200);

#[tokio::test]
async fn topic_patterns_match_one_or_many_segments() {
    let server = TestServer::start().await;
    let mut all = Tcp::connect(server.stomp(), "a").await;
    all.subscribe("all", "/topic/prices/**", "auto").await;
    let mut one = Tcp::connect(server.stomp(), "b").await;
    one.subscribe("one", "/topic/prices/*", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send_receipted(send("/topic/prices/1", "a"), "1")
        .await;
    publisher
        .send_receipted(send("/topic/prices/1/chunks", "b"), "2")
        .await;
    publisher
        .send_receipted(send("/topic/other", "c"), "3")
        .await;
    let got: Vec<_> = all.frames(2).await.iter().map(|f| f.body.clone()).collect();
    assert_eq!(got, ["a", "b"]);
    let first = one.frame().await;
    assert_eq!(&first.body[..], b"a");
    assert_eq!(first.get("destination"), Some("/topic/prices/1"));
    assert_eq!(first.get("subscription"), Some("one"));
    assert!(one.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn custom_headers_travel_and_send_only_headers_do_not() {
    let server = TestServer::start().await;
    let mut sub = Tcp::connect(server.stomp(), "a").await;
    sub.subscribe("s", "/topic/h", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send_receipted(
            send("/topic/h", "{}")
                .header("content-type", "application/json")
                .header("x-trace", "abc"),
            "r",
        )
        .await;
    let message = sub.frame().await;
    assert_eq!(message.get("x-trace"), Some("abc"));
    assert_eq!(message.get("content-type"), Some("application/json"));
    assert_eq!(message.get("receipt"), None);
    assert!(message.get("message-id").is_some());
    assert_eq!(
        message.get("ack"),
        None,
        "auto subscriptions carry no ack header"
    );
}

#[tokio::test]
async fn queue_consumers_compete_round_robin() {
    let server = TestServer::start().await;
    let mut a = Tcp::connect(server.stomp(), "a").await;
    a.subscribe("s", "/queue/work", "auto").await;
    let mut b = Tcp::connect(server.stomp(), "b").await;
    b.subscribe("s", "/queue/work", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    for i in 0..6 {
        publisher
            .send_receipted(send("/queue/work", &i.to_string()), "r")
            .await;
    }
    let at_a: Vec<_> = a.frames(3).await.iter().map(|f| f.body.clone()).collect();
    let at_b: Vec<_> = b.frames(3).await.iter().map(|f| f.body.clone()).collect();
    assert_eq!(at_a, ["0", "2", "4"]);
    assert_eq!(at_b, ["1", "3", "5"]);
}

#[tokio::test]
async fn messages_wait_on_a_queue_for_a_consumer() {
    let server = TestServer::start().await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send_receipted(send("/queue/later", "kept"), "r")
        .await;
    let stats = server.server.broker().queue_stats();
    assert_eq!(stats[0].depth, 1);
    let mut consumer = Tcp::connect(server.stomp(), "c").await;
    consumer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "s")
                .header("destination", "/queue/later"),
        )
        .await;
    assert_eq!(&consumer.frame().await.body[..], b"kept");
}

#[tokio::test]
async fn client_individual_ack_and_nack_redelivers() {
    let server = TestServer::start().await;
    let mut consumer = Tcp::connect(server.stomp(), "c").await;
    consumer
        .subscribe("s", "/queue/ci", "client-individual")
        .await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send_receipted(send("/queue/ci", "one"), "1")
        .await;
    publisher
        .send_receipted(send("/queue/ci", "two"), "2")
        .await;
    let first = consumer.frame().await;
    let second = consumer.frame().await;
    let ack_two = second.get("ack").unwrap().to_owned();
    consumer
        .send_receipted(Frame::new(Command::Ack).header("id", ack_two), "a")
        .await;
    let before = consumer
        .send_until_receipt(
            Frame::new(Command::Nack).header("id", first.get("ack").unwrap()),
            "n",
        )
        .await;
    let again = match before.into_iter().next() {
        Some(frame) => frame,
        None => consumer.frame().await,
    };
    assert_eq!(&again.body[..], b"one");
    assert_eq!(again.get("redelivered"), Some("true"));
    assert_eq!(again.get("message-id"), first.get("message-id"));
    // Acknowledging twice is an error: the id is no longer held.
    consumer
        .send(
            Frame::new(Command::Ack)
                .header("id", second.get("ack").unwrap())
                .header("receipt", "x"),
        )
        .await;
    let frames = consumer.until_closed().await;
    assert!(error_message(&frames[0]).contains("unknown ack id"));
    assert_eq!(frames[0].get("receipt-id"), Some("x"));
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let server = TestServer::start().await;
    let mut consumer = Tcp::connect(server.stomp(), "c").await;
    consumer.subscribe("s", "/queue/cum", "client").await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    for i in 0..3 {
        publisher
            .send_receipted(send("/queue/cum", &i.to_string()), "r")
            .await;
    }
    let frames = consumer.frames(3).await;
    consumer
        .send_receipted(
            Frame::new(Command::Ack).header("id", frames[1].get("ack").unwrap()),
            "a",
        )
        .await;
    let stats = &server.server.broker().queue_stats()[0];
    assert_eq!(stats.unacked, 1, "{stats:?}");
    // Disconnecting returns the last one.
    drop(consumer);
    let mut next = Tcp::connect(server.stomp(), "n").await;
    next.send(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/cum"),
    )
    .await;
    let back = next.frame().await;
    assert_eq!(&back.body[..], b"2");
    assert_eq!(back.get("redelivered"), Some("true"));
    assert!(next.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn prefetch_bounds_unacknowledged_messages() {
    let server = TestServer::start().await;
    let mut consumer = Tcp::connect(server.stomp(), "c").await;
    consumer
        .send_receipted(
            Frame::new(Command::Subscribe)
                .header("id", "s")
                .header("destination", "/queue/pf")
                .header("ack", "client-individual")
                .header("prefetch-count", "2"),
            "sub",
        )
        .await;
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    for i in 0..5 {
        publisher
            .send_receipted(send("/queue/pf", &i.to_string()), "r")
            .await;
    }
    let held = consumer.frames(2).await;
    assert!(
        consumer.maybe_frame(QUIET).await.is_none(),
        "prefetch exceeded"
    );
    consumer
        .send(Frame::new(Command::Ack).header("id", held[0].get("ack").unwrap()))
        .await;
    assert_eq!(&consumer.frame().await.body[..], b"2");
    assert!(consumer.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn user_destinations_reach_every_session_of_that_user_only() {
    let server = TestServer::start().await;
    let mut alice1 = Tcp::connect(server.stomp(), "alice").await;
    alice1.subscribe("p", "/user/queue/inbox", "auto").await;
    let mut alice2 = Tcp::connect(server.stomp(), "alice").await;
    alice2.subscribe("p", "/user/queue/inbox", "auto").await;
    let mut bob = Tcp::connect(server.stomp(), "bob").await;
    bob.subscribe("p", "/user/queue/inbox", "auto").await;
    let mut system = Tcp::connect(server.stomp(), "alice").await;
    system
        .send_receipted(send("/user/alice/queue/inbox", "50%"), "r")
        .await;
    for session in [&mut alice1, &mut alice2] {
        let message = session.frame().await;
        assert_eq!(&message.body[..], b"50%");
        assert_eq!(message.get("destination"), Some("/user/queue/inbox"));
    }
    assert!(bob.maybe_frame(QUIET).await.is_none());
    // By default, bob may not write to alice's destinations.
    bob.send(send("/user/alice/queue/inbox", "spoof")).await;
    let frames = bob.until_closed().await;
    assert!(error_message(&frames[0]).contains("may not send"));
    assert!(alice1.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn transactions_apply_on_commit_only() {
    let server = TestServer::start().await;
    let mut sub = Tcp::connect(server.stomp(), "s").await;
    sub.subscribe("s", "/queue/tx", "client-individual").await;
    let mut client = Tcp::connect(server.stomp(), "c").await;
    client
        .send_receipted(Frame::new(Command::Begin).header("transaction", "t1"), "b")
        .await;
    client
        .send_receipted(send("/queue/tx", "in-tx").header("transaction", "t1"), "s")
        .await;
    assert!(
        sub.maybe_frame(QUIET).await.is_none(),
        "delivered before COMMIT"
    );
    client
        .send_receipted(Frame::new(Command::Commit).header("transaction", "t1"), "c")
        .await;
    let message = sub.frame().await;
    assert_eq!(&message.body[..], b"in-tx");

    client
        .send_receipted(Frame::new(Command::Begin).header("transaction", "t2"), "b")
        .await;
    client
        .send_receipted(
            send("/queue/tx", "aborted").header("transaction", "t2"),
            "s",
        )
        .await;
    client
        .send_receipted(Frame::new(Command::Abort).header("transaction", "t2"), "a")
        .await;
    assert!(
        sub.maybe_frame(QUIET).await.is_none(),
        "aborted send delivered"
    );

    // An ACK inside a transaction takes effect on commit.
    sub.send_receipted(Frame::new(Command::Begin).header("transaction", "ta"), "b")
        .await;
    sub.send_receipted(
        Frame::new(Command::Ack)
            .header("id", message.get("ack").unwrap())
            .header("transaction", "ta"),
        "a",
    )
    .await;
    assert_eq!(server.server.broker().queue_stats()[0].unacked, 1);
    sub.send_receipted(Frame::new(Command::Commit).header("transaction", "ta"), "c")
        .await;
    assert_eq!(server.server.broker().queue_stats()[0].unacked, 0);

    client
        .send(Frame::new(Command::Commit).header("transaction", "nope"))
        .await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("unknown transaction"));
}

#[tokio::test]
async fn app_destinations_go_to_registered_handlers() {
    let (config, _dir) = common::test_config();
    let server = BrokerBuilder::new(config)
        .app_handler("/app/echo", |request: AppRequest| async move {
            if request.body.is_empty() {
                return Err(AppError::new("empty echo"));
            }
            let reply = format!("/user/{}/queue/echo", request.user);
            let message = request
                .broker
                .message(reply.into(), &Headers::new(), request.body, true);
            request
                .broker
                .publish(&request.user, message)
                .await
                .map_err(|e| AppError::new(e.to_string()))
        })
        .start()
        .await
        .unwrap();
    let addr = server.stomp_addr().unwrap();
    let mut client = Tcp::connect(addr, "ann").await;
    client.subscribe("e", "/user/queue/echo", "auto").await;
    // The handler's reply is published before the SEND's RECEIPT goes out.
    let before = client
        .send_until_receipt(send("/app/echo", "ping"), "r")
        .await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(&before[0].body[..], b"ping");

    client.send(send("/app/echo", "")).await;
    let frames = client.until_closed().await;
    assert_eq!(error_message(&frames[0]), "empty echo");

    let mut other = Tcp::connect(addr, "ann").await;
    other.send(send("/app/unknown", "x")).await;
    let frames = other.until_closed().await;
    assert!(error_message(&frames[0]).contains("no handler"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_local_client_publishes_and_subscribes_in_process() {
    let server = TestServer::start().await;
    let local = server.server.local_client("system");
    let subscription = local.subscribe("/topic/local/**").unwrap();
    let mut remote = Tcp::connect(server.stomp(), "r").await;
    remote.subscribe("s", "/topic/local/x", "auto").await;
    let before = remote
        .send_until_receipt(send("/topic/local/x", "from socket"), "r")
        .await;
    assert_eq!(&before[0].body[..], b"from socket");
    let message = subscription.next().await.unwrap();
    assert_eq!(&message.body[..], b"from socket");
    local
        .send("/topic/local/x", Headers::new(), "from process")
        .await
        .unwrap();
    assert_eq!(&remote.frame().await.body[..], b"from process");
}

#[tokio::test]
async fn nobody_but_the_server_publishes_on_server_owned_destinations() {
    let server = TestServer::start().await;
    let mut watcher = Tcp::connect(server.stomp(), "ann").await;
    watcher.subscribe("p", "/user/queue/progress", "auto").await;
    // Job events, statistics and every user's progress, jobs and errors queues are the
    // server's: a forged JOB_COMPLETED is refused, the job's owner's own queue included.
    for (user, destination) in [
        ("mallory", "/topic/jobs/01JFAKEJOBID"),
        ("mallory", "/topic/jobs/01JFAKEJOBID/chunks"),
        ("mallory", "/topic/stats"),
        ("mallory", "/user/ann/queue/progress"),
        ("ann", "/user/ann/queue/progress"),
        ("ann", "/user/ann/queue/jobs"),
        ("ann", "/user/ann/queue/errors"),
    ] {
        let mut forger = Tcp::connect(server.stomp(), user).await;
        forger
            .send(
                send(destination, r#"{"event":"JOB_COMPLETED"}"#)
                    .header("event", "JOB_COMPLETED")
                    .header("receipt", "r"),
            )
            .await;
        let frames = forger.until_closed().await;
        let message = error_message(&frames[0]);
        assert!(message.contains("server-owned"), "{destination}: {message}");
        assert_eq!(frames[0].get("receipt-id"), Some("r"));
    }
    assert!(watcher.maybe_frame(QUIET).await.is_none());
    // The in-process client goes through the same door.
    let local = server.server.local_client("ann");
    let refused = local
        .send("/user/ann/queue/progress", Headers::new(), "forged")
        .await;
    assert!(
        refused.unwrap_err().to_string().contains("server-owned"),
        "local client was let through"
    );
    assert!(watcher.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn a_local_client_is_held_to_the_acl_when_it_subscribes() {
    let server = TestServer::with(|config| {
        config.acl = vec![stompede::config::AclRule {
            user: "intern".into(),
            destination: "/queue/payroll".into(),
            read: false,
            write: true,
        }];
    })
    .await;
    let intern = server.server.local_client("intern");
    let refused = intern.subscribe("/queue/payroll").unwrap_err();
    assert!(
        refused.to_string().contains("may not subscribe"),
        "{refused}"
    );
    let accountant = server.server.local_client("accountant");
    assert!(accountant.subscribe("/queue/payroll").is_ok());
}
