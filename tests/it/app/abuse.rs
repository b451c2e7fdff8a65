//! The webhook server under abuse and at shutdown, through its real accept loop: slow clients are
//! cut off by the read timeouts, unauthenticated bodies are capped in bulk, bad event names never
//! become metric series, and SIGTERM stops the process within its grace period whatever idle
//! clients do, while a backlog stays queued for the next replica.

use std::time::{Duration, Instant};

use guardrail::settings::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn limits() -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 64,
        max_unverified_bytes: 1024 * 1024,
    }
}

/// The service's router behind the real accept loop; returns its address and the close switch.
async fn listen(
    h: &Harness,
    limits: ServerLimits,
) -> (String, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (close, closed) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(guardrail::server::listen::serve(listener, h.service.router(), limits, closed));
    (addr, close, task)
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    if read.is_err() {
        eprintln!("not closed; read so far: {:?}", String::from_utf8_lossy(&out));
    }
    read.ok().map(|_| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let h = Harness::new().await;
    let (addr, _close, _task) = listen(&h, limits()).await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n").await.unwrap();
    assert!(read_to_close(&mut slow, Duration::from_secs(10)).await.is_some(), "closed by the header timeout");
}

/// The body limits live in the router's state: set them as `serve` would.
async fn limited() -> Harness {
    Harness::with_args(&["--body-timeout-seconds", "1", "--max-unverified-bytes", "1048576"]).await
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408_and_nothing_is_stored() {
    let h = limited().await;
    let (addr, _close, _task) = listen(&h, limits()).await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":").await.unwrap();
    let answer = read_to_close(&mut slow, Duration::from_secs(10)).await.expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(h.service.app.queue.delivery_count().await.unwrap(), 0);
}

#[tokio::test]
async fn unsigned_bodies_are_not_held_in_bulk() {
    let h = limited().await;
    let (addr, _close, _task) = listen(&h, limits()).await;
    // One client holds 800 KB of unauthenticated body open (it sends half and waits).
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 800000\r\n\r\n").await.unwrap();
    first.write_all(&vec![b' '; 400_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A second one would take the total over the 1 MiB cap: refused at once, nothing stored.
    let mut second = TcpStream::connect(&addr).await.unwrap();
    second
        .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 600000\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut second, Duration::from_secs(10)).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // A body over GitHub's 25 MB is refused from its Content-Length.
    let mut huge = TcpStream::connect(&addr).await.unwrap();
    huge.write_all(
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut huge, Duration::from_secs(10)).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(h.service.app.queue.delivery_count().await.unwrap(), 0);
    // Once the first client is gone, its reservation is given back: a signed delivery goes through.
    drop(first);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = b"{\"zen\":\"ok\",\"hook_id\":1}".to_vec();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/github"))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "after-abuse")
        .header("X-Hub-Signature-256", crate::fake_github::sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

#[tokio::test]
async fn event_names_do_not_become_metric_labels() {
    let h = Harness::new().await;
    let payload = serde_json::json!({"zen": "hi"});
    // Signed and unsigned deliveries with made-up event names.
    for i in 0..5 {
        h.deliver(&format!("made-up-event-{i}"), &payload).await;
        h.deliver_as(&format!("unsigned-event-{i}"), &format!("u{i}"), &payload, "wrong secret").await;
    }
    let (_, metrics) = h.get("/metrics").await;
    assert!(!metrics.contains("made-up-event") && !metrics.contains("unsigned-event"), "{metrics}");
    assert!(metrics.contains("event=\"other\""), "{metrics}");
    assert!(metrics.contains("event=\"unverified\""), "{metrics}");
}

#[tokio::test]
async fn closing_does_not_wait_for_idle_clients() {
    let h = Harness::new().await;
    let (addr, close, task) = listen(&h, ServerLimits { header_timeout: Duration::from_secs(60), ..limits() }).await;
    let _idle: Vec<TcpStream> = futures_connect(&addr, 5).await;
    // A keep-alive client that finished one request and stays.
    let mut keep = TcpStream::connect(&addr).await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = keep.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    close.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("closed despite idle clients").unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(TcpStream::connect(&addr).await.is_err(), "no longer accepting");
}

async fn futures_connect(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TcpStream::connect(addr).await.unwrap());
    }
    out
}

#[tokio::test]
async fn sigterm_finishes_only_the_job_in_hand_and_keeps_storing_webhooks() {
    let h = Harness::with_args(&["--workers", "1", "--shutdown-grace-seconds", "5"]).await;
    for n in 60..65 {
        h.pull(n, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
        h.deliver("pull_request", &h.gh.pull_request("opened", REPO, n)).await;
    }
    // Slow GitHub answers keep the job in hand for a while.
    h.gh.set_latency(Duration::from_millis(150));
    let replica = h.replica().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (term, termed) = tokio::sync::oneshot::channel::<()>();
    let queue = replica.app.queue.clone();
    let serving = tokio::spawn(replica.serve(listener, async move {
        let _ = termed.await;
    }));
    // SIGTERM once a job is in hand.
    while queue.running().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    term.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::new();
    let ready = client.get(format!("http://{addr}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready while draining");
    // A webhook that arrives while draining is still stored.
    h.pull(65, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    let body = serde_json::to_vec(&h.gh.pull_request("opened", REPO, 65)).unwrap();
    let stored = client
        .post(format!("http://{addr}/webhooks/github"))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "while-draining")
        .header("X-Hub-Signature-256", crate::fake_github::sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status().as_u16(), 202);
    tokio::time::timeout(Duration::from_secs(15), serving)
        .await
        .expect("stopped within the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    let states: Vec<String> = queue.jobs().await.unwrap().into_iter().map(|j| j.1).collect();
    // The job in hand finished or was handed back; the backlog was not run; nothing is left running.
    let done = states.iter().filter(|s| *s == "done").count();
    assert!(done <= 1, "only the job in hand: {states:?}");
    assert_eq!(states.iter().filter(|s| *s == "queued").count(), 6 - done, "the backlog stays queued: {states:?}");
    // The next replica does the rest.
    h.gh.set_latency(Duration::ZERO);
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO).len(), 6);
    h.finish().await;
}
