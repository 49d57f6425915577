//! A vote acknowledged is a vote on disk.

mod common;

use common::{data_dir, poll, replica, vote, Node};

#[tokio::test]
async fn acked_votes_survive_kill_9_and_restart() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let key = node.key.clone();
    let poll = poll("crash");
    node.create_poll(&poll).await;
    let votes: Vec<_> = (0..300).map(|n| vote(&poll, n, n % 3, 1)).collect();

    let (status, reply) = node.batch(&poll, &votes).await;
    assert_eq!(status, 200, "{reply}");
    node.kill_9();

    let node = Node::start(&dir, &[]);
    assert_eq!(node.key, key, "the node key changed across restart");
    let local = replica(&poll, &votes);
    let tally = node.tally(&poll).await;
    assert_eq!(tally["entries"], 300);
    assert_eq!(tally["digest"], local.digest().to_string());
    let acked = reply["results"].as_array().unwrap();
    for (v, result) in votes.iter().zip(acked) {
        let (status, held) = node
            .get(&format!("/v1/polls/{}/entries/{}", poll.id, v.hash()))
            .await;
        assert_eq!(status, 200, "entry {} lost: {held}", v.hash());
        assert_eq!(held["receipt"], result["receipt"]);
    }
}

#[tokio::test]
async fn an_unknown_entry_is_404() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("absent");
    node.create_poll(&poll).await;

    let (status, body) = node
        .get(&format!(
            "/v1/polls/{}/entries/{}",
            poll.id,
            "ab".repeat(32)
        ))
        .await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_entry");
}
