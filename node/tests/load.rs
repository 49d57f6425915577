//! Throughput and restart numbers. Ignored by default; run with
//! `cargo test -p votemesh-node --release --test load -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::{data_dir, poll, vote, Node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check; prints numbers"]
async fn group_commit_throughput_and_restart_time() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("load");
    node.create_poll(&poll).await;
    let singles: Vec<_> = (0..2_000).map(|n| vote(&poll, n, n % 3, 1)).collect();
    let batched: Vec<_> = (10_000..30_000).map(|n| vote(&poll, n, n % 3, 1)).collect();

    let started = Instant::now();
    let url = node.url(&format!("/v1/polls/{}/votes", poll.id));
    let mut tasks = Vec::new();
    for chunk in singles.chunks(singles.len() / 64) {
        let (client, url, chunk) = (node.client.clone(), url.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for v in chunk {
                let response = client.post(&url).json(&v).send().await.expect("post");
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let single_secs = started.elapsed().as_secs_f64();
    let (_, metrics) = node.get_text("/metrics").await;
    let groups = metric(&metrics, "votemesh_commit_groups_total");

    let started = Instant::now();
    for chunk in batched.chunks(1_000) {
        let (status, _) = node.batch(&poll, chunk).await;
        assert_eq!(status, 200);
    }
    let batch_secs = started.elapsed().as_secs_f64();
    node.kill_9();

    let started = Instant::now();
    let node = Node::start(&dir, &[]);
    let restart_secs = started.elapsed().as_secs_f64();
    let entries = node.tally(&poll).await["entries"].as_u64().unwrap();

    println!(
        "single votes, 64 concurrent clients: {} votes in {single_secs:.2}s = {:.0} votes/s, {groups} commit groups ({:.1} votes/group)",
        singles.len(),
        singles.len() as f64 / single_secs,
        singles.len() as f64 / groups.max(1.0)
    );
    println!(
        "batches of 1000: {} votes in {batch_secs:.2}s = {:.0} votes/s",
        batched.len(),
        batched.len() as f64 / batch_secs
    );
    println!("restart with {entries} entries: listening after {restart_secs:.2}s");
    assert_eq!(entries, 22_000);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}
