//! Contract suite for the table engine ([`shared::storage::table::Table`]): the in-memory adapter and
//! DynamoDB Local must agree on conditions, transactions, updates, queries and races.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::MemoryTable;
use shared::storage::item::{Item, ItemExt, Key, Val, item};
use shared::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};
use shared::testing::aws_env;

fn it(pk: &str, sk: &str, attrs: &[(&str, Val)]) -> Item {
    let mut i = item(&Key::new(pk, sk));
    for (k, v) in attrs {
        i.insert((*k).to_owned(), v.clone());
    }
    i
}

async fn contract(t: Arc<dyn Table>) {
    let k1 = Key::new("P#1", "A");
    // Conditional create: first wins, second fails, nothing overwritten.
    let put =
        |v: i64| WriteOp::Put { item: it("P#1", "A", &[("v", Val::N(v))]), cond: Some(Cond::NotExists) };
    assert_eq!(t.transact(vec![put(1)]).await.unwrap(), TxOutcome::Committed);
    assert_eq!(t.transact(vec![put(2)]).await.unwrap(), TxOutcome::ConditionFailed { failed: vec![true] });
    assert_eq!(t.get(&k1).await.unwrap().unwrap().n("v").unwrap(), 1);

    // A transaction whose check fails writes nothing and says which op failed.
    let out = t
        .transact(vec![
            WriteOp::Put { item: it("P#1", "B", &[]), cond: Some(Cond::NotExists) },
            WriteOp::Check { key: k1.clone(), cond: Cond::eq("v", 99i64) },
            WriteOp::Delete { key: Key::new("P#1", "C"), cond: None },
        ])
        .await
        .unwrap();
    assert_eq!(out, TxOutcome::ConditionFailed { failed: vec![false, true, false] });
    assert!(t.get(&Key::new("P#1", "B")).await.unwrap().is_none());

    // The same transaction with a true check commits everything.
    let out = t
        .transact(vec![
            WriteOp::Put { item: it("P#1", "B", &[("s", "x".into())]), cond: Some(Cond::NotExists) },
            WriteOp::Check {
                key: k1.clone(),
                cond: Cond::And(vec![Cond::eq("v", 1i64), Cond::Gt("v".into(), 0), Cond::Lt("v".into(), 2)]),
            },
            WriteOp::Update {
                key: Key::new("P#1", "C"),
                update: Update::default().set("s", "y").add("n", 2).set_if_absent("first", 5i64),
                cond: Some(Cond::Or(vec![Cond::NotExists, Cond::attr_exists("s")])),
            },
        ])
        .await
        .unwrap();
    assert!(out.committed());

    // Updates: ADD accumulates, if_not_exists keeps the first value, REMOVE drops attributes.
    let after = t
        .update_returning(
            Key::new("P#1", "C"),
            Update::default().add("n", 3).set_if_absent("first", 9i64).remove("s"),
            Some(Cond::Exists),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.n("n").unwrap(), 5);
    assert_eq!(after.n("first").unwrap(), 5);
    assert!(after.opt_s("s").is_none());
    assert!(
        t.update_returning(Key::new("P#1", "Z"), Update::default().add("n", 1), Some(Cond::Exists))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.get(&Key::new("P#1", "Z")).await.unwrap().is_none(),
        "a failed conditional update creates nothing"
    );

    // Lists, maps, booleans round-trip.
    let mut m = std::collections::BTreeMap::new();
    m.insert("a".to_owned(), Val::L(vec![Val::N(1), Val::S("two".into()), Val::Bool(true)]));
    let rich = it("P#2", "R", &[("m", Val::M(m.clone())), ("flag", Val::Bool(true)), ("neg", Val::N(-7))]);
    assert!(t.transact(vec![WriteOp::Put { item: rich.clone(), cond: None }]).await.unwrap().committed());
    assert_eq!(t.get(&Key::new("P#2", "R")).await.unwrap().unwrap(), rich);

    // Query by partition and prefix, in sort-key order; get_many keeps the order of the keys.
    let q = t.query("P#1", None).await.unwrap();
    assert_eq!(q.iter().map(|i| i.s("sk").unwrap().to_owned()).collect::<Vec<_>>(), ["A", "B", "C"]);
    let q = t.query("P#1", Some("B")).await.unwrap();
    assert_eq!(q.len(), 1);
    let got = t.get_many(&[Key::new("P#1", "C"), Key::new("nope", "x"), k1.clone()]).await.unwrap();
    assert_eq!(got.iter().map(Option::is_some).collect::<Vec<_>>(), [true, false, true]);

    // Deletes with a condition.
    let del =
        t.transact(vec![WriteOp::Delete { key: k1.clone(), cond: Some(Cond::eq("v", 2i64)) }]).await.unwrap();
    assert!(!del.committed());
    assert!(
        t.transact(vec![WriteOp::Delete { key: k1.clone(), cond: Some(Cond::eq("v", 1i64)) }])
            .await
            .unwrap()
            .committed()
    );
    assert!(t.get(&k1).await.unwrap().is_none());

    // Race: 32 concurrent conditional creates of one item → exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..32i64 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.transact(vec![
                WriteOp::Put { item: it("RACE", "X", &[("winner", Val::N(i))]), cond: Some(Cond::NotExists) },
                WriteOp::Put { item: it("RACE", &format!("LOSER#{i}"), &[]), cond: None },
            ])
            .await
            .unwrap()
            .committed()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(t.query("RACE", Some("LOSER#")).await.unwrap().len(), 1, "losers wrote nothing");
}

#[tokio::test]
async fn table_memory() {
    contract(Arc::new(MemoryTable::default())).await;
}

#[tokio::test]
async fn table_dynamodb() {
    let Some(env) = aws_env("table_dynamodb").await else { return };
    contract(Arc::new(DynamoTable::new(env.clients.dynamodb.clone(), &env.table))).await;
}

#[tokio::test]
async fn memory_rejects_what_dynamodb_rejects() {
    let t = MemoryTable::default();
    let twice = vec![
        WriteOp::Delete { key: Key::new("a", "b"), cond: None },
        WriteOp::Delete { key: Key::new("a", "b"), cond: None },
    ];
    assert!(t.transact(twice).await.is_err());
    let many: Vec<WriteOp> =
        (0..101).map(|i| WriteOp::Delete { key: Key::new("a", i.to_string()), cond: None }).collect();
    assert!(t.transact(many).await.is_err());
}
