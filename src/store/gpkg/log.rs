//! The change log (audit trail and event source) and API tokens.

use serde_json::Value;
use sqlx::{sqlite::SqliteRow, Row, SqliteConnection};

use crate::{
    layers::Role,
    store::{AuditEntry, AuditQuery, Change, Op, ScenarioRecord, StoreError, TokenRecord, Touched},
};

pub use crate::store::bbox_union as union;

pub use crate::store::entry::{envelope, geometry_json, Entry};

/// Append one change inside the write's transaction.
pub async fn append(conn: &mut SqliteConnection, e: Entry<'_>) -> Result<Change, StoreError> {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let bbox = |b: &Option<[f64; 4]>| b.map(|b| serde_json::json!(b).to_string());
    let row = sqlx::query(
        "INSERT INTO onemap_changes (at, actor, layer, op, feature_ids, bbox_before, bbox_after, before, after, also, action, geometry_before) \
         VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq, at",
    )
    .bind(e.actor)
    .bind(e.layer)
    .bind(e.op.as_str())
    .bind(serde_json::json!(e.ids).to_string())
    .bind(bbox(&e.bbox_before))
    .bind(bbox(&e.bbox_after))
    .bind(json(&e.before))
    .bind(json(&e.after))
    .bind((!e.also.is_empty()).then(|| serde_json::json!(e.also).to_string()))
    .bind(json(&e.action))
    .bind(json(&e.geometry_before))
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db("logging a change"))?;
    Ok(Change {
        seq: row.get(0),
        at: row.get(1),
        actor: e.actor.to_owned(),
        layer: e.layer.to_owned(),
        op: e.op,
        ids: e.ids,
        bbox_before: e.bbox_before,
        bbox_after: e.bbox_after,
        // Events carry what was touched, not the images (the audit has them).
        also: e.also.into_iter().map(Touched::without_images).collect(),
        action: e.action,
    })
}

fn change(row: &SqliteRow, images: bool) -> Result<Change, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt {
        layer: "onemap_changes".into(),
        id: row.try_get(0).unwrap_or_default(),
        column: what.into(),
        reason: "unreadable".into(),
    };
    let bbox = |i: usize| -> Option<[f64; 4]> {
        row.try_get::<Option<String>, _>(i)
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
    };
    Ok(Change {
        seq: row.try_get(0).map_err(|_| corrupt("seq"))?,
        at: row.try_get(1).map_err(|_| corrupt("at"))?,
        actor: row.try_get(2).map_err(|_| corrupt("actor"))?,
        layer: row.try_get(3).map_err(|_| corrupt("layer"))?,
        op: row
            .try_get::<String, _>(4)
            .ok()
            .and_then(|s| Op::parse(&s))
            .ok_or_else(|| corrupt("op"))?,
        ids: row
            .try_get::<String, _>(5)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| corrupt("feature_ids"))?,
        bbox_before: bbox(6),
        bbox_after: bbox(7),
        also: row
            .try_get::<Option<String>, _>(8)
            .ok()
            .flatten()
            .map(|s| serde_json::from_str::<Vec<Touched>>(&s).map_err(|_| corrupt("also")))
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .map(|t| if images { t } else { t.without_images() })
            .collect(),
        action: row
            .try_get::<Option<String>, _>(9)
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

const COLUMNS: &str = "seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, also, action, before, after, geometry_before";
/// What the event stream and the change feed read: not the properties
/// before and after, which for an import can hold megabytes a row.
const CHANGE_COLUMNS: &str =
    "seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, also, action";

pub async fn since(
    conn: &mut SqliteConnection,
    seq: i64,
    limit: u64,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM onemap_changes WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading the change log"))?;
    rows.iter().map(|r| change(r, false)).collect()
}

/// The write first stored under idempotency `key` on `layer`, if any; a key
/// of another layer is a conflict.
pub async fn keyed(
    conn: &mut SqliteConnection,
    layer: &str,
    key: &str,
) -> Result<Option<crate::store::Written>, StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT layer, seq FROM onemap_idempotency WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db("reading idempotency keys"))?;
    let Some((first_layer, seq)) = row else {
        return Ok(None);
    };
    if first_layer != layer {
        return Err(StoreError::Duplicate {
            what: format!("Idempotency-Key `{key}` (first used on `{first_layer}`, not `{layer}`)"),
        });
    }
    let change = since(conn, seq - 1, 1)
        .await?
        .into_iter()
        .find(|c| c.seq == seq)
        .ok_or_else(|| StoreError::Corrupt {
            layer: "onemap_idempotency".into(),
            id: seq,
            column: "seq".into(),
            reason: "names no change of the log".into(),
        })?;
    Ok(Some(crate::store::Written {
        ids: change.ids.clone(),
        change,
    }))
}

/// Keep `key` with the change it made, in the write's transaction.
pub async fn keep_key(
    conn: &mut SqliteConnection,
    key: &str,
    layer: &str,
    seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO onemap_idempotency (key, layer, seq, at) \
         VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
    )
    .bind(key)
    .bind(layer)
    .bind(seq)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("keeping an idempotency key"))?;
    Ok(())
}

pub async fn last_seq(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM onemap_changes")
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::db("reading the change log"))
}

pub async fn audit(
    conn: &mut SqliteConnection,
    q: &AuditQuery,
) -> Result<Vec<AuditEntry>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM onemap_changes WHERE (?1 IS NULL OR layer = ?1 \
           OR EXISTS (SELECT 1 FROM json_each(also) WHERE json_extract(value, '$.layer') = ?1)) \
         AND (?2 IS NULL OR actor LIKE ?2 || '%') \
         AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(feature_ids) WHERE value = ?3) \
           OR EXISTS (SELECT 1 FROM json_each(also) AS t, json_each(json_extract(t.value, '$.ids')) AS i WHERE i.value = ?3)) \
         AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at <= ?5) ORDER BY seq DESC LIMIT ?6"
    );
    let rows = sqlx::query(&sql)
        .bind(&q.layer)
        .bind(&q.actor)
        .bind(q.feature)
        .bind(&q.since)
        .bind(&q.until)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::db("reading the audit trail"))?;
    rows.iter()
        .map(|r| {
            let props = |i: usize| -> Option<Value> {
                r.try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .and_then(|s| serde_json::from_str(&s).ok())
            };
            Ok(AuditEntry {
                change: change(r, true)?,
                before: props(10),
                after: props(11),
                geometry_before: props(12),
            })
        })
        .collect()
}

fn token(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let id: i64 = row.try_get(0).unwrap_or_default();
    let role: String = row.try_get(2).unwrap_or_default();
    Ok(TokenRecord {
        id,
        name: row.try_get(1).unwrap_or_default(),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            layer: "onemap_tokens".into(),
            id,
            column: "role".into(),
            reason: format!("unknown role `{role}`"),
        })?,
        created_at: row.try_get(3).unwrap_or_default(),
        revoked_at: row.try_get(4).unwrap_or_default(),
    })
}

pub async fn create_token(
    conn: &mut SqliteConnection,
    name: &str,
    role: Role,
    digest: &str,
) -> Result<TokenRecord, StoreError> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM onemap_tokens WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::db("reading tokens"))?;
    if taken.is_some() {
        return Err(StoreError::Duplicate {
            what: format!("a token named `{name}`"),
        });
    }
    let row = sqlx::query(
        "INSERT INTO onemap_tokens (name, role, digest, created_at) VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ','now')) \
         RETURNING id, name, role, created_at, revoked_at",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(digest)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db("creating a token"))?;
    token(&row)
}

pub async fn find_token(
    conn: &mut SqliteConnection,
    digest: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, role, created_at, revoked_at FROM onemap_tokens WHERE digest = ? AND revoked_at IS NULL",
    )
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading tokens"))?;
    row.as_ref().map(token).transpose()
}

pub async fn tokens(conn: &mut SqliteConnection) -> Result<Vec<TokenRecord>, StoreError> {
    let rows =
        sqlx::query("SELECT id, name, role, created_at, revoked_at FROM onemap_tokens ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db("reading tokens"))?;
    rows.iter().map(token).collect()
}

pub async fn revoke_token(conn: &mut SqliteConnection, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE onemap_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE name = ? AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("revoking a token"))?;
    Ok(done.rows_affected() > 0)
}

pub async fn save_scenario(
    conn: &mut SqliteConnection,
    name: &str,
    actor: &str,
    inputs: &Value,
    results: &Value,
) -> Result<ScenarioRecord, StoreError> {
    let row = sqlx::query(
        "INSERT INTO onemap_scenarios (name, actor, created_at, inputs, results) \
         VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?, ?) \
         RETURNING id, name, actor, created_at, inputs, results",
    )
    .bind(name)
    .bind(actor)
    .bind(inputs.to_string())
    .bind(results.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db("saving a scenario"))?;
    scenario_of(&row, true)
}

pub async fn scenario(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<ScenarioRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, actor, created_at, inputs, results FROM onemap_scenarios WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading a scenario"))?;
    row.map(|r| scenario_of(&r, true)).transpose()
}

pub async fn scenarios(
    conn: &mut SqliteConnection,
    limit: u64,
) -> Result<Vec<ScenarioRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, actor, created_at FROM onemap_scenarios ORDER BY id DESC LIMIT ?",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("listing scenarios"))?;
    rows.iter().map(|r| scenario_of(r, false)).collect()
}

fn scenario_of(row: &SqliteRow, full: bool) -> Result<ScenarioRecord, StoreError> {
    let json = |col: &str| -> Result<Value, StoreError> {
        if !full {
            return Ok(Value::Null);
        }
        let text: String = row
            .try_get(col)
            .map_err(StoreError::db("reading a scenario"))?;
        serde_json::from_str(&text).map_err(|e| StoreError::Interrupted {
            context: format!("a stored scenario's {col} is not JSON ({e})"),
        })
    };
    Ok(ScenarioRecord {
        id: row
            .try_get("id")
            .map_err(StoreError::db("reading a scenario"))?,
        name: row
            .try_get("name")
            .map_err(StoreError::db("reading a scenario"))?,
        actor: row
            .try_get("actor")
            .map_err(StoreError::db("reading a scenario"))?,
        created_at: row
            .try_get("created_at")
            .map_err(StoreError::db("reading a scenario"))?,
        inputs: json("inputs")?,
        results: json("results")?,
    })
}

/// Every column of the log after `seq`, oldest first (for `onemap copy`).
pub async fn page(
    conn: &mut SqliteConnection,
    seq: i64,
    limit: u64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM onemap_changes WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading the change log"))?;
    rows.iter()
        .map(|r| {
            let props = |i: usize| -> Option<Value> {
                r.try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .and_then(|s| serde_json::from_str(&s).ok())
            };
            Ok(AuditEntry {
                change: change(r, true)?,
                before: props(10),
                after: props(11),
                geometry_before: props(12),
            })
        })
        .collect()
}

/// Tokens with digests, keys and scenarios (for `onemap copy`).
pub async fn records(conn: &mut SqliteConnection) -> Result<crate::store::Records, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, role, created_at, revoked_at, digest FROM onemap_tokens ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading tokens"))?;
    let mut tokens = Vec::with_capacity(rows.len());
    for r in &rows {
        tokens.push(crate::store::StoredToken {
            record: token(r)?,
            digest: r.try_get(5).map_err(StoreError::db("reading tokens"))?,
        });
    }
    let keys = sqlx::query_as::<_, (String, String, i64, String)>(
        "SELECT key, layer, seq, at FROM onemap_idempotency ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading idempotency keys"))?
    .into_iter()
    .map(|(key, layer, seq, at)| crate::store::StoredKey {
        key,
        layer,
        seq,
        at,
    })
    .collect();
    let rows = sqlx::query(
        "SELECT id, name, actor, created_at, inputs, results FROM onemap_scenarios ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading scenarios"))?;
    let scenarios = rows
        .iter()
        .map(|r| scenario_of(r, true))
        .collect::<Result<_, _>>()?;
    Ok(crate::store::Records {
        tokens,
        keys,
        scenarios,
    })
}

/// Whether the log, tokens and scenarios are empty (a copy's target).
pub async fn holds_records(conn: &mut SqliteConnection) -> Result<Option<String>, StoreError> {
    for (table, what) in [
        ("onemap_changes", "changes"),
        ("onemap_tokens", "tokens"),
        ("onemap_scenarios", "scenarios"),
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db("counting records"))?;
        if n > 0 {
            return Ok(Some(format!("{n} {what}")));
        }
    }
    Ok(None)
}

/// Store a copied log entry under its own seq.
pub async fn put_change(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<(), StoreError> {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let bbox = |b: &Option<[f64; 4]>| b.map(|b| serde_json::json!(b).to_string());
    let c = &e.change;
    sqlx::query(
        "INSERT INTO onemap_changes (seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, before, after, also, action, geometry_before) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.seq)
    .bind(&c.at)
    .bind(&c.actor)
    .bind(&c.layer)
    .bind(c.op.as_str())
    .bind(serde_json::json!(c.ids).to_string())
    .bind(bbox(&c.bbox_before))
    .bind(bbox(&c.bbox_after))
    .bind(json(&e.before))
    .bind(json(&e.after))
    .bind((!c.also.is_empty()).then(|| serde_json::json!(c.also).to_string()))
    .bind(json(&c.action))
    .bind(json(&e.geometry_before))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("copying change {}", c.seq)))?;
    Ok(())
}

/// Store copied tokens, keys and scenarios under their own ids.
pub async fn put_records(
    conn: &mut SqliteConnection,
    r: &crate::store::Records,
) -> Result<(), StoreError> {
    for t in &r.tokens {
        sqlx::query(
            "INSERT INTO onemap_tokens (id, name, role, digest, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(t.record.id)
        .bind(&t.record.name)
        .bind(t.record.role.as_str())
        .bind(&t.digest)
        .bind(&t.record.created_at)
        .bind(&t.record.revoked_at)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("copying tokens"))?;
    }
    for k in &r.keys {
        sqlx::query("INSERT INTO onemap_idempotency (key, layer, seq, at) VALUES (?, ?, ?, ?)")
            .bind(&k.key)
            .bind(&k.layer)
            .bind(k.seq)
            .bind(&k.at)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db("copying idempotency keys"))?;
    }
    for s in &r.scenarios {
        sqlx::query(
            "INSERT INTO onemap_scenarios (id, name, actor, created_at, inputs, results) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id)
        .bind(&s.name)
        .bind(&s.actor)
        .bind(&s.created_at)
        .bind(s.inputs.to_string())
        .bind(s.results.to_string())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("copying scenarios"))?;
    }
    Ok(())
}
