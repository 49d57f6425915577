//! A stand-in for the edge relay, for the outbox's browser tests: real HTTP
//! on a real socket, answering from a script chosen by the first path
//! segment, so one test can point `flush` at `{stub}/reject` and another at
//! `{stub}/ok`. Receipts and credentials are really signed (by fixed keys).
//!
//! | prefix      | `POST .../v1/polls/{id}/votes` answers                  |
//! | ----------- | ------------------------------------------------------- |
//! | `/ok`       | 200 with a valid receipt for the vote                   |
//! | `/forged`   | 200 with a receipt whose signature is broken            |
//! | `/mismatch` | 200 with a valid receipt for another entry              |
//! | `/stranger` | 200 with a valid receipt signed by a key not the node's |
//! | `/reject`   | 422 `bad_signature`                                     |
//! | `/busy`     | 429 `rate_limited`, `Retry-After: 120`                  |
//! | `/down`     | 503 `storage_unavailable`                               |
//! | `/html403`  | 403 with an HTML page, as a proxy's filter answers      |
//! | `/html413`  | 413 with an HTML page, as a proxy's body limit answers  |
//! | `/unknown`  | 422 JSON error with a code no node or relay sends       |
//! | `/early`    | 425 with an HTML page and `Retry-After: 30`             |
//!
//! `/v1/...` with no prefix behaves as `/ok/v1/...`, so a page served by the
//! stub (`GET` of any other path reads the directory given as the second
//! argument) can flush to its own origin, as the service worker does.
//! `GET /fixture/pending` returns a pending outbox record of a vote signed by
//! a fixed key, for the service worker's smoke test.
//!
//! Under any prefix, `.../challenge` hands out an 8-bit proof-of-work
//! challenge and `.../credential` checks the solution and issues a
//! credential signed with the registrar seed `[9; 32]`.
//!
//! Every answer allows any origin (CORS): the test page is served by
//! wasm-bindgen-test-runner from another port.
//!
//! ```sh
//! cargo run -p votemesh-outbox --example stub_relay -- 127.0.0.1:47391 [WEB_DIR]
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crdt::{
    Credential, EntryHash, GroupStatement, GroupTree, PollId, PublicKey, Receipt, SecretKey, Vote,
    VoteBody, VoteId,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const NODE_SEED: [u8; 32] = [5; 32];
/// Signs the `/stranger` receipts: a valid key, but not the node's.
const STRANGER_SEED: [u8; 32] = [6; 32];
const REGISTRAR_SEED: [u8; 32] = [9; 32];
const BITS: u8 = 8;
const MAX_BODY: usize = 64 * 1024;

struct Answer {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    }
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

fn html(status: u16, text: &str) -> Answer {
    Answer {
        status,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body: format!("<!doctype html><title>{status}</title><h1>{text}</h1>").into_bytes(),
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let web_dir = Arc::new(std::env::args().nth(2).map(PathBuf::from));
    let listener = TcpListener::bind(&addr)?;
    println!("listening on http://{}", listener.local_addr()?);

    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let web_dir = Arc::clone(&web_dir);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, web_dir.as_deref()) {
                eprintln!("stub relay: {e}");
            }
        });
    }
    Ok(())
}

fn serve(stream: TcpStream, web_dir: Option<&Path>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();

    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(MAX_BODY)];
    reader.read_exact(&mut body)?;

    let reply = match (method.as_str(), web_dir) {
        ("GET", Some(dir)) if !path.starts_with("/v1/") && !path.starts_with("/fixture/") => {
            file(dir, &path)
        }
        _ => route(&method, &path, &String::from_utf8_lossy(&body)),
    };
    respond(stream, reply)
}

fn respond(mut stream: TcpStream, reply: Answer) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
         connection: close\r\naccess-control-allow-origin: *\r\n\
         access-control-allow-methods: POST, GET, OPTIONS\r\n\
         access-control-allow-headers: content-type\r\n\
         access-control-expose-headers: retry-after\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()
}

fn route(method: &str, path: &str, body: &str) -> Answer {
    if method == "OPTIONS" {
        return Answer {
            status: 204,
            content_type: "text/plain",
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    if method == "GET" && path == "/health" {
        return answer(200, json!({"ok": true}));
    }
    if method == "GET" && path == "/fixture/pending" {
        return answer(200, pending_fixture());
    }
    let mut segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"v1") {
        segments.insert(0, "ok");
    }
    let [mode, "v1", "polls", poll, action] = segments[..] else {
        return error(404, "not_found", "no such path");
    };
    let Ok(poll) = poll.parse::<PollId>() else {
        return error(400, "invalid_poll_id", "poll id is not 32 bytes of hex");
    };
    match (method, action) {
        ("POST", "votes") => vote(mode, poll, body),
        ("POST", "challenge") => answer(
            201,
            json!({"nonce": hex::encode(nonce()), "bits": BITS, "expires_in_ms": 60_000}),
        ),
        ("POST", "credential") => credential(poll, body),
        _ => error(404, "not_found", "no such path"),
    }
}

fn vote(mode: &str, poll: PollId, body: &str) -> Answer {
    let vote: Vote = match serde_json::from_str(body) {
        Ok(vote) => vote,
        Err(e) => return error(400, "invalid_json", &e.to_string()),
    };
    let node = SecretKey::from_seed(&NODE_SEED);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stored = |receipt: Receipt| answer(200, json!({"receipt": receipt, "status": "stored"}));

    // A group receipt of `signer`: the vote in a group with two other entries.
    let receipt_of = |signer: &SecretKey, entry: EntryHash| {
        let mut group = vec![entry, EntryHash([0x11; 32]), EntryHash([0xee; 32])];
        group.sort();
        let tree = GroupTree::new(&group).expect("distinct hashes");
        let index = tree.position(&entry).expect("in the group");
        GroupStatement::sign(signer, poll, &tree, now)
            .receipt(&tree, index)
            .expect("the statement's own tree")
    };
    let receipt = |entry: EntryHash| receipt_of(&node, entry);

    match mode {
        "ok" => stored(receipt(vote.hash())),
        "forged" => {
            let mut receipt = receipt(vote.hash());
            receipt.signature.0[10] ^= 0x40;
            stored(receipt)
        }
        "mismatch" => stored(receipt(EntryHash([0; 32]))),
        "stranger" => {
            let stranger = SecretKey::from_seed(&STRANGER_SEED);
            stored(receipt_of(&stranger, vote.hash()))
        }
        "html403" => html(403, "Access denied by the gateway"),
        "html413" => html(413, "Request entity too large"),
        "unknown" => error(422, "policy_violation", "a code no node sends"),
        "early" => Answer {
            headers: vec![("retry-after", "30".into())],
            ..html(425, "Too early")
        },
        "reject" => error(422, "bad_signature", "vote signature does not verify"),
        "busy" => Answer {
            headers: vec![("retry-after", "120".into())],
            ..error(429, "rate_limited", "too many requests")
        },
        "down" => error(503, "storage_unavailable", "storage is unavailable"),
        _ => error(404, "not_found", "unknown stub mode"),
    }
}

fn credential(poll: PollId, body: &str) -> Answer {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return error(400, "invalid_json", "not json");
    };
    let field = |name: &str| request[name].as_str().unwrap_or("").to_string();
    let voter = match field("voter").parse::<PublicKey>() {
        Ok(voter) => voter,
        Err(e) => return error(400, "invalid_json", &e.to_string()),
    };
    let (Ok(nonce), Ok(solution)) = (hex::decode(field("nonce")), hex::decode(field("solution")))
    else {
        return error(400, "invalid_json", "nonce and solution must be hex");
    };

    let hash = Sha256::new()
        .chain_update(&nonce)
        .chain_update(voter.as_bytes())
        .chain_update(&solution)
        .finalize();
    if !outbox::leading_zero_bits(&hash, BITS) {
        return error(422, "bad_solution", "not enough leading zero bits");
    }
    let registrar = SecretKey::from_seed(&REGISTRAR_SEED);
    answer(
        200,
        json!({"credential": Credential::issue(&registrar, poll, voter)}),
    )
}

/// A nonce that differs per call: the stub does not track challenges.
fn nonce() -> [u8; 16] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    now.to_le_bytes()
}

/// A pending record of a vote by the voter seed `[3; 32]`, trusting the
/// stub's node key.
fn pending_fixture() -> Value {
    let voter = SecretKey::from_seed(&[3; 32]);
    let vote = VoteBody {
        poll: PollId([7; 32]),
        voter: voter.public(),
        choice: 1,
        seq: 1,
        vote_id: VoteId::from_bytes([4; 16]),
        cast_at: 1_000,
        credential: None,
    }
    .sign(&voter);
    let node = SecretKey::from_seed(&NODE_SEED).public();
    serde_json::to_value(outbox::Record::pending(vote, &[node])).unwrap_or(Value::Null)
}

/// A file of the web directory; `/` is `index.html`.
fn file(dir: &Path, path: &str) -> Answer {
    let path = path.split('?').next().unwrap_or("");
    let relative = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let relative = Path::new(relative);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return error(400, "bad_path", "path must stay inside the web directory");
    }
    let Ok(body) = std::fs::read(dir.join(relative)) else {
        return error(404, "not_found", "no such file");
    };
    let content_type = match relative.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    Answer {
        status: 200,
        content_type,
        headers: Vec::new(),
        body,
    }
}
