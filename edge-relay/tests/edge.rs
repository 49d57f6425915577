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

#[tokio::test]
async fn web_addresses_never_redirect_and_bad_ones_get_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("poll/abc")).unwrap();
    std::fs::write(web.join("poll/abc/index.html"), "<p>poll</p>").unwrap();
    std::fs::write(web.join("index.html"), "<p>home</p>").unwrap();
    let node = start_node(&dir.path().join("node"));
    let args = [&NO_LIMITS[..], &["--web-dir", web.to_str().unwrap()]].concat();
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        let request = client.get(format!("http://{}{}", relay.addr, path));
        async move { request.send().await.unwrap() }
    };

    for path in [
        // Protocol-relative: a redirect to `//poll/` would leave the site.
        "//poll".to_string(),
        "//poll/abc".to_string(),
        // A directory without its index, named without its slash.
        "/poll".to_string(),
        // Longer than any file name.
        format!("/{}", "a".repeat(300)),
        format!("/poll/{}", "b".repeat(256)),
        format!("/{}", "a/".repeat(600)),
    ] {
        let response = get(path.clone()).await;
        assert!(
            response.headers().get("location").is_none(),
            "{path}: redirected"
        );
        let (status, body) = read(response).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    // A browser navigating to a missing page gets a page, not JSON.
    let navigated = client
        .get(format!("http://{}/poll/deadbeef", relay.addr))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(navigated.status(), 404);
    assert_eq!(
        navigated.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(navigated.text().await.unwrap().contains("Page not found"));
    let page = get("/poll/abc".into()).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.text().await.unwrap(), "<p>poll</p>");
}

/// A stand-in for the browser build whose renderer runs `script` (sh).
fn fake_build(dir: &std::path::Path, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let build = dir.join("build");
    std::fs::create_dir_all(build.join("bin")).unwrap();
    std::fs::create_dir_all(build.join("assets/sw")).unwrap();
    for asset in ["bundle.js", "bundle.wasm", "sw/sw.js"] {
        std::fs::write(build.join("assets").join(asset), b"").unwrap();
    }
    let renderer = build.join("bin/votemesh-client");
    std::fs::write(&renderer, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&renderer, std::fs::Permissions::from_mode(0o755)).unwrap();
    build
}

/// Runs a relay that is expected not to start; returns its stderr.
fn relay_refuses(args: &[&str]) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_votemesh-relay"))
        .args(["--listen", "127.0.0.1:0", "--node", "http://127.0.0.1:9"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay started with {args:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no listening line");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn pages_are_never_rendered_over_a_directory_the_renderer_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let build = fake_build(dir.path(), "exit 1");
    let web = dir.path().join("home");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("notes.txt"), "mine").unwrap();
    let (build_arg, web_arg) = (build.to_str().unwrap(), web.to_str().unwrap());

    let error = relay_refuses(&["--pages", build_arg, "--web-dir", web_arg]);

    assert!(error.contains(".votemesh-site"), "{error}");
    assert!(error.contains(web_arg), "{error}");
    assert_eq!(
        std::fs::read_to_string(web.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&web).unwrap().count(), 1);

    // Not a browser build.
    let error = relay_refuses(&["--pages", web_arg, "--web-dir", web_arg]);
    assert!(error.contains("bin/votemesh-client"), "{error}");
    // A web dir that cannot be made.
    let blocked = web.join("notes.txt").join("site");
    let error = relay_refuses(&["--pages", build_arg, "--web-dir", blocked.to_str().unwrap()]);
    assert!(error.contains("web dir"), "{error}");
}

#[tokio::test]
async fn a_failed_rendering_leaves_no_scratch_file_and_its_warnings_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    // Keeps the site file it was given, names a poll it leaves out, fails.
    let script = format!(
        "cat \"$3\" > '{}.site' && echo \"$@\" > '{}'\n\
         echo 'warning: poll 00ff is not published: test reason' >&2\n\
         echo 'error: boom' >&2\nexit 1",
        record.display(),
        record.display()
    );
    let build = fake_build(dir.path(), &script);
    let parent = dir.path().join("www");
    std::fs::create_dir_all(&parent).unwrap();
    let web = parent.join("site");
    let node = start_node(&dir.path().join("node"));
    let poll = poll("rendered");
    node.create_poll(&poll).await;
    let log = dir.path().join("relay.log");
    let args = [
        &NO_LIMITS[..],
        &[
            "--pages",
            build.to_str().unwrap(),
            "--web-dir",
            web.to_str().unwrap(),
            "--publish-interval-secs",
            "3600",
        ],
    ]
    .concat();
    let _relay = start_relay(&[&node], &args, &log);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let logged = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("pages not rendered") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no rendering: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let args = std::fs::read_to_string(&record).unwrap();
    assert!(args.starts_with("publish --site "), "{args}");
    assert!(args.contains(&format!("--out {}", web.display())), "{args}");
    let site: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.site", record.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(site["polls"][0]["poll"]["id"], poll.id.to_string());
    assert!(
        logged.contains("poll 00ff is not published: test reason"),
        "{logged}"
    );
    assert!(logged.contains("boom"), "{logged}");
    let left: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["site".to_string()], "only the web dir is left");
}

#[tokio::test]
async fn a_poll_the_nodes_cannot_give_is_left_out_and_the_others_rendered() {
    use axum::routing::get;
    let dir = tempfile::tempdir().unwrap();
    let good = poll("given");
    let broken = poll("broken");
    // A node that lists three polls but gives one of them only: one listed id
    // is malformed, another's tally fails.
    let (good_json, good_id) = (serde_json::to_value(&good).unwrap(), good.id.to_string());
    let broken_id = broken.id.to_string();
    let list = json!([{ "id": good_id }, { "id": "not-an-id" }, { "id": broken_id }]);
    let tally = json!({ "poll": good_id, "counts": [1, 2, 3], "entries": 6, "digest": "00" });
    let app = axum::Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .route("/v1/polls", get(move || async move { axum::Json(list) }))
        .route(
            &format!("/v1/polls/{good_id}"),
            get(move || async move { axum::Json(good_json) }),
        )
        .route(
            &format!("/v1/polls/{good_id}/tally"),
            get(move || async move { axum::Json(tally) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let record = dir.path().join("site.json");
    let build = fake_build(dir.path(), &format!("cat \"$3\" > '{}'", record.display()));
    let web = dir.path().join("site");
    let log = dir.path().join("relay.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_votemesh-relay"));
    command
        .args(["--listen", "127.0.0.1:0", "--retries", "0"])
        .arg("--node")
        .arg(format!("http://{node_addr}"))
        // This stand-in node has no `GET /v1/node`: its key is pinned.
        .arg("--node-key")
        .arg(crdt::SecretKey::from_seed(&[6; 32]).public().to_string())
        .args([
            "--pages",
            build.to_str().unwrap(),
            "--web-dir",
            web.to_str().unwrap(),
        ])
        .args(["--publish-interval-secs", "3600"]);
    let _relay = spawn_relay(command, &log);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !record.exists() {
        assert!(std::time::Instant::now() < deadline, "no rendering");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let site: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let ids: Vec<&str> = site["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["poll"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![good_id.as_str()]);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("not-an-id"), "{logged}");
    assert!(logged.contains(&broken_id), "{logged}");
}

/// A relay process from `command`, killed when dropped (its stderr to `log`).
fn spawn_relay(mut command: std::process::Command, log: &std::path::Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let child = command
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
