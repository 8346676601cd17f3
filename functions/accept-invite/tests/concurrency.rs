//! Exactly-once acceptance under concurrency, and the sequential DynamoDB round trips of GET and POST.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

async fn fifty_users_one_invite(env: Env) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let h = env.handler.clone();
        tasks.push(tokio::spawn(async move {
            h.handle_api(&request("POST", "acme", "10", TOKEN, Some(claims(&format!("u{i}"))))).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status != 204 {
            // A loser whose read came before the winner's commit fails in the transaction ("unable"); one
            // whose read came after sees an accepted member and gets Sentry's "member already exists".
            // Either way nothing is written for it.
            assert_eq!(r.status, 400);
            let details = r.json_body()["details"].as_str().unwrap().to_owned();
            assert!(
                ["unable to accept organization invite", "member already exists"].contains(&details.as_str()),
                "{details}"
            );
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
    let m = env.member(10).await.unwrap();
    let winner = m.user_id.clone().expect("bound");
    assert_eq!(env.memberships(&winner).await.len(), 1);
    let mut bound = 0;
    for i in 0..50 {
        bound += env.memberships(&format!("u{i}")).await.len();
    }
    assert_eq!(bound, 1, "one bound member");
    assert_eq!(audit_entries(&env.org_items(1, "AUDIT#").await).len(), 1, "one audit entry");
    assert_eq!(env.org_items(1, "JOINED#").await.len(), 1, "one member_joined");
}

async fn one_user_two_invites(env: Env) {
    let (h1, h2) = (env.handler.clone(), env.handler.clone());
    let a = tokio::spawn(async move {
        h1.handle_api(&request("POST", "acme", "10", TOKEN, Some(claims("42")))).await
    });
    let b = tokio::spawn(async move {
        h2.handle_api(&request("POST", "acme", "13", "abcd", Some(claims("42")))).await
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 400]);
    let loser = if a.status == 400 { &a } else { &b };
    assert_details(loser, 400, "member already exists");
    assert_eq!(env.memberships("42").await.len(), 1, "exactly one membership in the org");
    let (m10, m13) = (env.member(10).await, env.member(13).await);
    let accepted: Vec<_> = [m10, m13].into_iter().flatten().filter(|m| m.user_id.is_some()).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(audit_entries(&env.org_items(1, "AUDIT#").await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_users_one_invite_memory() {
    let env = memory_env().await;
    seed(&env, base_seed()).await;
    fifty_users_one_invite(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_users_one_invite_dynamodb() {
    let Some(env) = dynamo_env("fifty_users_one_invite_dynamodb").await else { return };
    seed(&env, base_seed()).await;
    fifty_users_one_invite(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_two_invites_memory() {
    let env = memory_env().await;
    seed(&env, base_seed()).await;
    one_user_two_invites(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_two_invites_dynamodb() {
    let Some(env) = dynamo_env("one_user_two_invites_dynamodb").await else { return };
    seed(&env, base_seed()).await;
    one_user_two_invites(env).await;
}

/// Sequential DynamoDB round trips, counted by the SDK interceptor: GET 1 (org + invite batch read
/// concurrent with the caller's partition query), POST 2 (that read, then one transaction).
#[tokio::test]
async fn round_trips_dynamodb() {
    let Some(env) = dynamo_env("round_trips_dynamodb").await else { return };
    seed(&env, base_seed()).await;
    let rec = env.recorder.clone().unwrap();

    rec.reset();
    assert_eq!(env.call("GET", "secure", "20", TOKEN, Some(claims("42"))).await.status, 200);
    assert_eq!(rec.sequential_round_trips(), 1, "{:?}", rec.operations());
    assert_eq!(rec.operations().len(), 2);

    rec.reset();
    assert_eq!(env.call("GET", "acme", "10", TOKEN, None).await.status, 200);
    assert_eq!(rec.sequential_round_trips(), 1);
    assert_eq!(rec.operations(), ["BatchGetItem"]);

    rec.reset();
    assert_eq!(env.call("POST", "acme", "10", TOKEN, Some(claims("42"))).await.status, 204);
    assert_eq!(rec.sequential_round_trips(), 2, "{:?}", rec.operations());
    let mut ops = rec.operations();
    ops.sort();
    assert_eq!(ops, ["BatchGetItem", "Query", "TransactWriteItems"]);

    // "Member already exists": read, then the conditional delete of the pending invite.
    seed(
        &env,
        json!({"members": [{"id": 15, "organization_id": 1, "email": "y@example.com", "token": TOKEN}]}),
    )
    .await;
    rec.reset();
    assert_details(
        &env.call("POST", "acme", "15", TOKEN, Some(claims("42"))).await,
        400,
        "member already exists",
    );
    assert_eq!(rec.sequential_round_trips(), 2);
}
