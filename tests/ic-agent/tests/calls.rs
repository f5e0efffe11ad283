//! Update calls: the synchronous v4 path (`/api/v4/canister/<id>/call`
//! answering 200 with a certificate) and the polling path (202, then
//! `read_state` of `request_status` until the reply is certified).

use std::time::{Duration, Instant};

use candid::Encode;
use ic_agent::agent::{CallResponse, RequestStatusResponse};
use ww_ic_agent_suite::{Exchange, Node, counter, decode, deploy_counter, ed25519};

/// The bound on every wait in these tests: an answer later than this is a hang.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn updates_are_answered_synchronously_and_seen_by_queries() {
    let node = Node::start();
    let (agent, recorder) = node.recorded_agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    let before = recorder.exchanges().len();

    let reply = agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    assert_eq!(decode::<u64>("inc", &reply), 1);
    let reply = agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    assert_eq!(decode::<u64>("inc", &reply), 2);

    // Each update was one v4 call answered 200 (the certificate in the
    // answer): no 202, no read_state polling.
    let updates = recorder.exchanges()[before..].to_vec();
    let v4 = Exchange { method: "POST".into(), path: format!("/api/v4/canister/{id}/call"), status: 200 };
    assert_eq!(updates, vec![v4.clone(), v4], "the requests of two updates");

    assert_eq!(counter(&agent, id).await, 2, "the query sees both increments");
}

/// `call()` (no waiting) on the sync path gives the reply with its certificate.
#[tokio::test]
async fn a_quick_update_returns_its_certified_reply_without_polling() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let id = deploy_counter(&agent).await;
    let response = agent.update(&id, "inc").with_arg(Encode!().unwrap()).call().await.expect("inc");
    match response {
        CallResponse::Response((reply, certificate)) => {
            assert_eq!(decode::<u64>("inc", &reply), 1);
            agent.verify(&certificate, id).expect("the call's certificate verifies against the root key");
        }
        CallResponse::Poll(rid) => panic!("inc was answered 202 (request {rid}) instead of synchronously"),
    }
}

/// A call that outlives `--http-sync-wait-ms` is answered 202 and its status
/// is certified as received or processing; once `release`d by another
/// sender, polling `read_state` gives the reply.
#[tokio::test]
async fn a_call_outliving_the_sync_wait_is_answered_202_and_polled_to_its_reply() {
    let node = Node::start_with(&["--http-sync-wait-ms", "200"]);
    let agent = node.agent(ed25519(3)).await;
    let other = node.agent(ed25519(4)).await;
    let id = deploy_counter(&agent).await;

    let start = Instant::now();
    let response = tokio::time::timeout(PATIENCE, agent.update(&id, "slow").with_arg(Encode!().unwrap()).call())
        .await
        .expect("the call is answered")
        .expect("slow");
    let rid = match response {
        CallResponse::Poll(rid) => rid,
        CallResponse::Response((reply, _)) => panic!("slow was answered before it was released: {reply:02x?}"),
    };
    // 10 s is the default wait: well under it means the flag was honoured.
    assert!(start.elapsed() < Duration::from_secs(5), "202 after {:?} with --http-sync-wait-ms 200", start.elapsed());

    let (status, _) = agent.request_status_raw(&rid, id).await.expect("read_state of request_status");
    assert!(
        matches!(status, RequestStatusResponse::Received | RequestStatusResponse::Processing),
        "the held call's status is {status:?}"
    );

    other.update(&id, "release").with_arg(Encode!().unwrap()).call_and_wait().await.expect("release");
    let (reply, certificate) =
        tokio::time::timeout(PATIENCE, agent.wait(&rid, id)).await.expect("polling ends").expect("slow's reply");
    assert_eq!(decode::<u64>("slow", &reply), 1);
    agent.verify(&certificate, id).expect("the polled certificate verifies");
}

/// `call_and_wait` itself falls back to polling after a 202: the reply comes
/// once another agent releases the call it is waiting on.
#[tokio::test]
async fn call_and_wait_polls_read_state_after_a_202() {
    let node = Node::start_with(&["--http-sync-wait-ms", "200"]);
    let (agent, recorder) = node.recorded_agent(ed25519(5)).await;
    let other = node.agent(ed25519(6)).await;
    let id = deploy_counter(&agent).await;
    let call_path = format!("/api/v4/canister/{id}/call");
    let read_state_path = format!("/api/v3/canister/{id}/read_state");
    let before = recorder.exchanges().len();

    let waiter = agent.update(&id, "slow").with_arg(Encode!().unwrap()).call_and_wait();
    let releaser = async {
        // Release only once the waiter got its 202 and polls.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = recorder.exchanges()[before..].to_vec();
            let accepted = seen.iter().position(|x| x.path == call_path && x.status == 202);
            if accepted.is_some_and(|at| seen[at..].iter().any(|x| x.path == read_state_path)) {
                break;
            }
            assert!(Instant::now() < deadline, "no 202 then read_state within {PATIENCE:?}: {seen:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        other.update(&id, "release").with_arg(Encode!().unwrap()).call_and_wait().await.expect("release");
    };
    let (reply, ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(waiter, releaser) }).await.expect("slow ends");
    assert_eq!(decode::<u64>("slow", &reply.expect("slow")), 1);
    let done = agent.query(&id, "slow_done").with_arg(Encode!().unwrap()).call().await.expect("slow_done");
    assert_eq!(decode::<u64>("slow_done", &done), 1);
}
