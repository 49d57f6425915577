//! Edge protection: rate limits, size limits, malformed input, proof of
//! work before credentials, CORS and the web app's headers.

mod common;

use common::*;
use crdt::{Eligibility, SecretKey};
use serde_json::{json, Value};

#[tokio::test]
async fn an_address_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = ["--ip-rate", "1", "--ip-burst", "3"];
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));

    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            relay
                .client
                .get(relay.url("/healthz"))
                .send()
                .await
                .unwrap(),
        );
    }

    let refused = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == 200));
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let (_, body) = read(refused).await;
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn a_poll_over_its_rate_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = ["--poll-rate", "1", "--poll-burst", "2"];
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let poll = poll("busy");
    node.create_poll(&poll).await;

    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(relay.vote(&vote(&poll, i, 0, 1)).await.0);
    }

    assert_eq!(statuses, vec![200, 200, 429]);
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_json_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = [&NO_LIMITS[..], &["--body-limit", "2048"]].concat();
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let poll = poll("bad input");
    node.create_poll(&poll).await;
    let votes = format!("/v1/polls/{}/votes", poll.id);
    let post = |path: String, content_type: &'static str, body: Vec<u8>| {
        let request = relay
            .client
            .post(relay.url(&path))
            .header("content-type", content_type)
            .body(body);
        async move { read(request.send().await.unwrap()).await }
    };

    let cases = [
        (
            post(votes.clone(), "application/json", vec![b' '; 4096]).await,
            413,
            "body_too_large",
        ),
        (
            post(votes.clone(), "application/json", b"{not json".to_vec()).await,
            400,
            "invalid_json",
        ),
        (
            post(votes.clone(), "text/plain", b"{}".to_vec()).await,
            415,
            "unsupported_media_type",
        ),
        (
            post(
                "/v1/polls/xyz/votes".into(),
                "application/json",
                b"{}".to_vec(),
            )
            .await,
            400,
            "invalid_path",
        ),
        (
            post(
                format!("/v1/polls/{}/votes/batch", poll.id),
                "application/json",
                b"{\"votes\":3}".to_vec(),
            )
            .await,
            400,
            "invalid_json",
        ),
        (
            relay
                .get(&format!("/v1/polls/{}/events", "ab".repeat(32)))
                .await,
            404,
            "unknown_poll",
        ),
        (relay.get("/nowhere").await, 404, "not_found"),
    ];

    for (i, ((status, body), want_status, want_code)) in cases.into_iter().enumerate() {
        assert_eq!(status, want_status, "case {i}: {body}");
        assert_eq!(body["error"]["code"], want_code, "case {i}: {body}");
    }
}

/// A relay holding the registrar key of a credential poll.
async fn registrar_setup(dir: &std::path::Path) -> (Proc, Proc, crdt::Poll, SecretKey) {
    let registrar = SecretKey::from_seed(&[0x42; 32]);
    let key_file = dir.join("registrar.key");
    std::fs::write(&key_file, hex::encode(registrar.to_seed())).unwrap();
    let node = start_node(&dir.join("node"));
    let args = [
        &NO_LIMITS[..],
        &[
            "--pow-bits",
            "8",
            "--registrar-key",
            key_file.to_str().unwrap(),
        ],
    ]
    .concat();
    let relay = start_relay(&[&node], &args, &dir.join("relay.log"));
    let poll = poll_with(
        "members",
        Eligibility::Credential {
            registrar: registrar.public(),
        },
    );
    node.create_poll(&poll).await;
    (node, relay, poll, registrar)
}

async fn challenge(relay: &Proc, poll: &crdt::Poll) -> (String, u8) {
    let (status, body) = relay
        .post(&format!("/v1/polls/{}/challenge", poll.id), &json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["nonce"].as_str().unwrap().to_string(),
        body["bits"].as_u64().unwrap() as u8,
    )
}

fn solve(nonce: &str, voter: &crdt::PublicKey, bits: u8) -> String {
    let nonce: [u8; 16] = hex::decode(nonce).unwrap().try_into().unwrap();
    hex::encode(relay::solve(&nonce, voter, bits))
}

#[tokio::test]
async fn a_solved_challenge_buys_a_credential_the_node_accepts_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, relay, poll, registrar) = registrar_setup(dir.path()).await;
    let voter = voter(1);
    let path = format!("/v1/polls/{}/credential", poll.id);

    let (nonce, bits) = challenge(&relay, &poll).await;
    let request = json!({ "voter": voter.public(), "nonce": nonce, "solution": solve(&nonce, &voter.public(), bits) });
    let (status, body) = relay.post(&path, &request).await;
    assert_eq!(status, 200, "{body}");
    let credential: crdt::Credential = serde_json::from_value(body["credential"].clone()).unwrap();
    assert_eq!(credential.registrar, registrar.public());

    let (replayed, body) = relay.post(&path, &request).await;
    assert_eq!(
        (replayed, body["error"]["code"].clone()),
        (422, Value::from("unknown_challenge"))
    );

    let mut ballot = body_for(&poll, 1);
    ballot.credential = Some(credential);
    let (status, body) = relay.vote(&ballot.sign(&voter)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.tally(&poll).await["entries"], 1);
}

fn body_for(poll: &crdt::Poll, n: u32) -> crdt::VoteBody {
    body(poll, n, 0, 1)
}

#[tokio::test]
async fn a_wrong_or_unknown_solution_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, relay, poll, _) = registrar_setup(dir.path()).await;
    let voter = voter(2).public();
    let path = format!("/v1/polls/{}/credential", poll.id);

    // Solved for another voter: the hash covers the key, so it fails here.
    let (nonce, bits) = challenge(&relay, &poll).await;
    let other = solve(&nonce, &self::voter(3).public(), bits);
    let wrong = relay
        .post(
            &path,
            &json!({ "voter": voter, "nonce": nonce, "solution": other }),
        )
        .await;
    let unknown = relay
        .post(
            &path,
            &json!({ "voter": voter, "nonce": "00".repeat(16), "solution": "00" }),
        )
        .await;
    let open = poll_with("open", Eligibility::Open);
    node.create_poll(&open).await;
    let not_here = relay
        .post(&format!("/v1/polls/{}/challenge", open.id), &json!({}))
        .await;

    // A failed try uses the nonce up.
    let again = relay
        .post(
            &path,
            &json!({ "voter": voter, "nonce": nonce, "solution": solve(&nonce, &voter, bits) }),
        )
        .await;

    let code = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_string());
    // The solution for voter 3 may, by chance, also fit voter 2 (1 in 2^bits).
    assert!(
        code(&wrong) == (422, "bad_solution".into()) || wrong.0 == 200,
        "{wrong:?}"
    );
    assert_eq!(code(&unknown), (422, "unknown_challenge".into()));
    assert_eq!(code(&not_here), (422, "not_issued_here".into()));
    assert_eq!(code(&again), (422, "unknown_challenge".into()));
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let plain = start_relay(&[&node], &[], &dir.path().join("plain.log"));
    let args = ["--cors-origin", "https://vote.example"];
    let open = start_relay(&[&node], &args, &dir.path().join("open.log"));
    let ask = |relay: &Proc, origin: &'static str| {
        let request = relay
            .client
            .get(relay.url("/healthz"))
            .header("origin", origin);
        async move {
            request
                .send()
                .await
                .unwrap()
                .headers()
                .get("access-control-allow-origin")
                .cloned()
        }
    };

    assert_eq!(ask(&plain, "https://vote.example").await, None);
    assert_eq!(ask(&open, "https://evil.example").await, None);
    assert_eq!(
        ask(&open, "https://vote.example").await.unwrap(),
        "https://vote.example"
    );
}

#[tokio::test]
async fn the_web_app_is_served_compressed_with_caching_headers_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    let page = "<!doctype html><title>poll</title>".repeat(20);
    std::fs::write(web.join("index.html"), &page).unwrap();
    std::fs::write(
        web.join("app.0123abcd.js"),
        "console.log('vote');\n".repeat(50),
    )
    .unwrap();
    std::fs::write(
        web.join("sw.js"),
        "self.addEventListener('fetch', () => {});\n".repeat(5),
    )
    .unwrap();
    // A build's precompressed copies are sent as they are.
    std::fs::write(web.join("app.0123abcd.wasm"), [0u8; 4096]).unwrap();
    std::fs::write(web.join("app.0123abcd.wasm.br"), b"precompressed brotli").unwrap();
    std::fs::write(web.join("app.0123abcd.wasm.gz"), b"precompressed gzip").unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = ["--web-dir", web.to_str().unwrap()];
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let get = |path: &'static str, encoding: &'static str| {
        let request = relay
            .client
            .get(relay.url(path))
            .header("accept-encoding", encoding);
        async move { request.send().await.unwrap() }
    };

    let index = get("/", "gzip").await;
    let asset = get("/app.0123abcd.js", "br").await;
    let worker = get("/sw.js", "identity").await;
    let missing = get("/nothing.js", "identity").await;

    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["cache-control"], "public, max-age=60");
    assert_eq!(index.headers()["content-encoding"], "gzip");
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(asset.headers()["content-encoding"], "br");
    assert_eq!(worker.headers()["service-worker-allowed"], "/");
    assert_eq!(worker.headers()["cache-control"], "no-cache");
    assert_eq!(missing.status(), 404);

    for (accepted, encoding, body) in [
        ("gzip, deflate, br", "br", &b"precompressed brotli"[..]),
        ("gzip", "gzip", &b"precompressed gzip"[..]),
    ] {
        let wasm = get("/app.0123abcd.wasm", accepted).await;
        assert_eq!(wasm.headers()["content-encoding"], encoding);
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        assert_eq!(wasm.headers()["vary"], "accept-encoding");
        assert_eq!(&wasm.bytes().await.unwrap()[..], body);
    }
}

#[tokio::test]
async fn metrics_count_answers_by_route_and_status_and_read_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = [
        "--ip-rate",
        "1000",
        "--ip-burst",
        "1000",
        "--poll-rate",
        "1",
        "--poll-burst",
        "1",
    ];
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let poll = poll("metrics");
    node.create_poll(&poll).await;
    let (first, _) = relay.vote(&vote(&poll, 7, 0, 1)).await;
    let (second, _) = relay.vote(&vote(&poll, 7, 1, 2)).await;
    assert_eq!(
        (first, second),
        (200, 429),
        "the second vote is over the poll's rate"
    );
    let missing = relay
        .client
        .get(relay.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let response = relay
        .client
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for line in [
        r#"votemesh_relay_http_requests_total{route="/v1/polls/{id}/votes",method="POST",status="200"} 1"#,
        r#"votemesh_relay_http_requests_total{route="/v1/polls/{id}/votes",method="POST",status="429"} 1"#,
        r#"votemesh_relay_http_requests_total{route="web",method="GET",status="404"} 1"#,
        "votemesh_relay_nodes_healthy 1",
        "votemesh_relay_live_subscribers 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}
