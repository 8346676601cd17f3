//! [`Table`] on DynamoDB: conditions and updates are rendered into expressions with generated
//! placeholders (`#a0`, `:v0`), so attribute names never collide with reserved words.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
    Update as DdbUpdate,
};

use super::aws::ddb_err;
use crate::error::StoreError;
use crate::storage::attr;
use crate::storage::item::{Item, Key, Val};
use crate::storage::table::{Cond, PutOutcome, Table, TxOutcome, Update, WriteOp};

/// The table on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.table
    }
}

pub fn to_av(v: &Val) -> AttributeValue {
    match v {
        Val::S(s) => AttributeValue::S(s.clone()),
        Val::N(n) => AttributeValue::N(n.to_string()),
        Val::Bool(b) => AttributeValue::Bool(*b),
        Val::L(l) => AttributeValue::L(l.iter().map(to_av).collect()),
        Val::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()),
    }
}

pub fn from_av(v: &AttributeValue) -> Result<Val, StoreError> {
    Ok(match v {
        AttributeValue::S(s) => Val::S(s.clone()),
        AttributeValue::N(n) => {
            Val::N(n.parse().map_err(|_| StoreError::corrupt(format!("non-integer number {n}")))?)
        }
        AttributeValue::Bool(b) => Val::Bool(*b),
        AttributeValue::L(l) => Val::L(l.iter().map(from_av).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => {
            Val::M(m.iter().map(|(k, v)| Ok((k.clone(), from_av(v)?))).collect::<Result<_, StoreError>>()?)
        }
        other => return Err(StoreError::corrupt(format!("unsupported attribute type {other:?}"))),
    })
}

/// An SDK item as our [`Item`].
pub fn to_item(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    m.iter().map(|(k, v)| Ok((k.clone(), from_av(v)?))).collect()
}

fn key_av(k: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (attr::PK.to_owned(), AttributeValue::S(k.pk.clone())),
        (attr::SK.to_owned(), AttributeValue::S(k.sk.clone())),
    ])
}

/// Accumulates placeholders for one expression-bearing request.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, a: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == a) {
            return k.clone();
        }
        let k = format!("#a{}", self.names.len());
        self.names.insert(k.clone(), a.to_owned());
        k
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), v);
        k
    }

    fn cond(&mut self, c: &Cond) -> String {
        match c {
            Cond::NotExists => format!("attribute_not_exists({})", self.name(attr::PK)),
            Cond::Exists => format!("attribute_exists({})", self.name(attr::PK)),
            Cond::AttrExists(a) => format!("attribute_exists({})", self.name(a)),
            Cond::AttrNotExists(a) => format!("attribute_not_exists({})", self.name(a)),
            Cond::Eq(a, v) => {
                let (n, v) = (self.name(a), self.value(to_av(v)));
                format!("{n} = {v}")
            }
            Cond::Gt(a, x) => {
                let (n, v) = (self.name(a), self.value(AttributeValue::N(x.to_string())));
                format!("{n} > {v}")
            }
            Cond::Lt(a, x) => {
                let (n, v) = (self.name(a), self.value(AttributeValue::N(x.to_string())));
                format!("{n} < {v}")
            }
            Cond::And(cs) => {
                format!("({})", cs.iter().map(|c| self.cond(c)).collect::<Vec<_>>().join(" AND "))
            }
            Cond::Or(cs) => format!("({})", cs.iter().map(|c| self.cond(c)).collect::<Vec<_>>().join(" OR ")),
        }
    }

    fn update(&mut self, u: &Update) -> String {
        let mut sets: Vec<String> = Vec::new();
        for (a, v) in &u.set {
            let (n, v) = (self.name(a), self.value(to_av(v)));
            sets.push(format!("{n} = {v}"));
        }
        for (a, v) in &u.set_if_absent {
            let (n, v) = (self.name(a), self.value(to_av(v)));
            sets.push(format!("{n} = if_not_exists({n}, {v})"));
        }
        let mut parts = Vec::new();
        if !sets.is_empty() {
            parts.push(format!("SET {}", sets.join(", ")));
        }
        if !u.remove.is_empty() {
            let names: Vec<String> = u.remove.iter().map(|a| self.name(a)).collect();
            parts.push(format!("REMOVE {}", names.join(", ")));
        }
        if !u.add.is_empty() {
            let adds: Vec<String> = u
                .add
                .iter()
                .map(|(a, n)| {
                    let (n_, v) = (self.name(a), self.value(AttributeValue::N(n.to_string())));
                    format!("{n_} {v}")
                })
                .collect();
            parts.push(format!("ADD {}", adds.join(", ")));
        }
        parts.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other { service: "dynamodb", message: e.to_string() }
}

impl DynamoTable {
    fn tx_item(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::default();
        Ok(match op {
            WriteOp::Put { item, cond } => {
                let c = cond.as_ref().map(|c| e.cond(c));
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()))
                            .set_condition_expression(c)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::Update { key, update, cond } => {
                let u = e.update(update);
                let c = cond.as_ref().map(|c| e.cond(c));
                TransactWriteItem::builder()
                    .update(
                        DdbUpdate::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_av(key)))
                            .update_expression(u)
                            .set_condition_expression(c)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::Delete { key, cond } => {
                let c = cond.as_ref().map(|c| e.cond(c));
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_av(key)))
                            .set_condition_expression(c)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::Check { key, cond } => {
                let c = e.cond(cond);
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_av(key)))
                            .condition_expression(c)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
        })
    }

    /// A conditional `PutItem` of `item` (the condition's names and values bound).
    fn put_request(
        &self,
        item: &Item,
        cond: Option<&Cond>,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let mut e = Expr::default();
        let c = cond.map(|c| e.cond(c));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()))
            .set_condition_expression(c)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
    }

    /// A single write, sent as the plain conditional operation (one round trip, half the WCU of a
    /// transaction).
    async fn single(&self, op: &WriteOp) -> Result<TxOutcome, StoreError> {
        let mut e = Expr::default();
        let failed = TxOutcome::ConditionFailed { failed: vec![true] };
        let res = match op {
            WriteOp::Put { item, cond } => {
                self.put_request(item, cond.as_ref()).send().await.map(|_| ()).map_err(|err| {
                    if err.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                        None
                    } else {
                        Some(ddb_err(err))
                    }
                })
            }
            WriteOp::Update { key, update, cond } => {
                return Ok(match self.update_returning(key.clone(), update.clone(), cond.clone()).await? {
                    Some(_) => TxOutcome::Committed,
                    None => failed,
                });
            }
            WriteOp::Delete { key, cond } => {
                let c = cond.as_ref().map(|c| e.cond(c));
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_av(key)))
                    .set_condition_expression(c)
                    .set_expression_attribute_names(e.names())
                    .set_expression_attribute_values(e.values())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| {
                        if err.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                            None
                        } else {
                            Some(ddb_err(err))
                        }
                    })
            }
            WriteOp::Check { .. } => return self.transact_many(std::slice::from_ref(op)).await,
        };
        match res {
            Ok(()) => Ok(TxOutcome::Committed),
            Err(None) => Ok(failed),
            Err(Some(e)) => Err(e),
        }
    }

    async fn transact_many(&self, ops: &[WriteOp]) -> Result<TxOutcome, StoreError> {
        let items = ops.iter().map(|op| self.tx_item(op)).collect::<Result<Vec<_>, _>>()?;
        // TransactionConflict (another transaction touching one of our items right now) is retried a
        // few times; a condition failure is an answer and is returned at once.
        for attempt in 0..6u32 {
            let res = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match res {
                Ok(_) => return Ok(TxOutcome::Committed),
                Err(e) => e,
            };
            let Some(reasons) = err.as_service_error().and_then(|s| match s {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    Some(c.cancellation_reasons().to_vec())
                }
                _ => None,
            }) else {
                return Err(ddb_err(err));
            };
            let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
            if codes.contains(&"ConditionalCheckFailed") {
                return Ok(TxOutcome::ConditionFailed {
                    failed: codes.iter().map(|c| *c == "ConditionalCheckFailed").collect(),
                });
            }
            if !codes.contains(&"TransactionConflict") {
                if codes.iter().any(|c| *c == "ThrottlingError" || *c == "ProvisionedThroughputExceeded") {
                    return Err(StoreError::Throttled { service: "dynamodb" });
                }
                return Err(StoreError::Other {
                    service: "dynamodb",
                    message: format!("transaction cancelled: {codes:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(10 * (1 << attempt))).await;
        }
        Err(StoreError::Unavailable { service: "dynamodb", message: "transaction conflict persisted".into() })
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let mut found: HashMap<Key, Item> = HashMap::new();
        let mut unique: Vec<&Key> = Vec::new();
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        for chunk in unique.chunks(100) {
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|k| key_av(k)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?,
            );
            // Unprocessed keys are retried with a short backoff, a bounded number of times.
            for attempt in 0..8u32 {
                let Some(req) = request.take() else { break };
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(ddb_err)?;
                for item in
                    out.responses().and_then(|r| r.get(&self.table)).map(Vec::as_slice).unwrap_or_default()
                {
                    let item = to_item(item)?;
                    if let Some(k) = crate::storage::item::ItemExt::key(&item) {
                        found.insert(k, item);
                    }
                }
                request = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if request.is_some() {
                    tokio::time::sleep(Duration::from_millis(10 * (1 << attempt))).await;
                }
            }
            if request.is_some() {
                return Err(StoreError::Throttled { service: "dynamodb" });
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut e = Expr::default();
        let pk_n = e.name(attr::PK);
        let pk_v = e.value(AttributeValue::S(pk.to_owned()));
        let mut kc = format!("{pk_n} = {pk_v}");
        if let Some(p) = sk_prefix {
            let sk_n = e.name(attr::SK);
            let p_v = e.value(AttributeValue::S(p.to_owned()));
            kc.push_str(&format!(" AND begins_with({sk_n}, {p_v})"));
        }
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&kc)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(ddb_err)?;
            for i in page.items() {
                out.push(to_item(i)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError> {
        match ops.len() {
            0 => Ok(TxOutcome::Committed),
            1 => self.single(&ops[0]).await,
            n if n > 100 => Err(StoreError::Rejected(format!("transaction of {n} operations exceeds 100"))),
            _ => self.transact_many(&ops).await,
        }
    }

    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError> {
        let mut e = Expr::default();
        let u = e.update(&update);
        let c = cond.as_ref().map(|c| e.cond(c));
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_av(&key)))
            .update_expression(u)
            .set_condition_expression(c)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await
        {
            Ok(out) => Ok(Some(to_item(out.attributes().unwrap_or(&HashMap::new()))?)),
            Err(err) if err.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(None)
            }
            Err(err) => Err(ddb_err(err)),
        }
    }

    async fn put_or_get(&self, item: Item, cond: Cond) -> Result<PutOutcome, StoreError> {
        match self
            .put_request(&item, Some(&cond))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await
        {
            Ok(_) => Ok(PutOutcome::Written),
            Err(err) => match err.as_service_error() {
                Some(
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c),
                ) => Ok(PutOutcome::Refused(c.item().map(to_item).transpose()?)),
                _ => Err(ddb_err(err)),
            },
        }
    }
}
