//! The start-up contract and the configuration layers.

mod common;

use common::{data_dir, Node};

#[tokio::test]
async fn a_fresh_node_is_healthy_ready_and_names_its_key() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);

    let (health, ok) = node.get_text("/healthz").await;
    let (ready, _) = node.get_text("/readyz").await;
    let (_, info) = node.get("/v1/node").await;
    let (_, metrics) = node.get_text("/metrics").await;

    assert_eq!((health, ok.as_str()), (200, "ok"));
    assert_eq!(ready, 200);
    assert_eq!(info["node"], node.key.as_str());
    assert!(
        metrics.contains("votemesh_votes_durable_total"),
        "{metrics}"
    );
    assert!(dir.join("node.key").exists());
}

#[tokio::test]
async fn flags_beat_env_and_env_beats_the_config_file() {
    let (guard, dir) = data_dir();
    let file = guard.path().join("node.toml");
    std::fs::write(&file, "max_batch = 1\nbody_limit = 100000\n").unwrap();
    let config = file.to_str().unwrap();
    let node = Node::start_with_env(
        &dir,
        &["--config", config, "--body-limit", "200000"],
        &[("VOTEMESH_MAX_BATCH", "2")],
    );
    let poll = common::poll("layers");
    node.create_poll(&poll).await;
    let votes: Vec<_> = (0..3).map(|n| common::vote(&poll, n, 0, 1)).collect();

    let (two, _) = node.batch(&poll, &votes[..2]).await;
    let (three, reply) = node.batch(&poll, &votes).await;
    let big = vec![b' '; 150_000];
    let (status, _) = node
        .post_raw(
            &format!("/v1/polls/{}/votes", poll.id),
            Some("application/json"),
            big,
        )
        .await;

    assert_eq!(two, 200, "env max_batch 2 beats the file's 1");
    assert_eq!(
        (three, reply["error"]["code"].as_str()),
        (413, Some("batch_too_large"))
    );
    assert_eq!(
        status, 400,
        "flag body limit 200000 beats the file's 100000"
    );
}
