//! The change log (audit trail and event source), idempotency keys, API
//! tokens and planning scenarios in PostgreSQL.

use serde_json::{json, Value};
use sqlx::{postgres::PgRow, PgConnection, Row};

use crate::{
    layers::Role,
    store::{
        entry::Entry, AuditEntry, AuditQuery, Change, Op, ScenarioRecord, StoreError, TokenRecord,
        Touched, Written,
    },
};

/// The channel on which every commit announces its seq to every node.
pub const CHANNEL: &str = "onemap_changes";

/// Append one change inside the write's transaction, as its last step: it
/// takes the next seq from `onemap_log_head`, whose row lock then orders
/// this commit before any later seq (see the migration), and announces the
/// seq to the other nodes (delivered when, and only if, it commits).
pub async fn append(conn: &mut PgConnection, e: Entry<'_>) -> Result<Change, StoreError> {
    let bbox = |b: &Option<[f64; 4]>| b.map(|b| json!(b));
    let row = sqlx::query(
        "WITH head AS (UPDATE onemap_log_head SET seq = seq + 1 WHERE one = 1 RETURNING seq) \
         INSERT INTO onemap_changes (seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, \
           before, after, also, action, geometry_before) \
         SELECT head.seq, onemap_now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM head \
         RETURNING seq, at",
    )
    .bind(e.actor)
    .bind(e.layer)
    .bind(e.op.as_str())
    .bind(json!(e.ids))
    .bind(bbox(&e.bbox_before))
    .bind(bbox(&e.bbox_after))
    .bind(&e.before)
    .bind(&e.after)
    .bind((!e.also.is_empty()).then(|| json!(e.also)))
    .bind(&e.action)
    .bind(&e.geometry_before)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db("logging a change"))?;
    let seq: i64 = row.get(0);
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(seq.to_string())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("announcing a change"))?;
    Ok(Change {
        seq,
        at: row.get(1),
        actor: e.actor.to_owned(),
        layer: e.layer.to_owned(),
        op: e.op,
        ids: e.ids,
        bbox_before: e.bbox_before,
        bbox_after: e.bbox_after,
        also: e.also.into_iter().map(Touched::without_images).collect(),
        action: e.action,
    })
}

fn change(row: &PgRow, images: bool) -> Result<Change, StoreError> {
    let seq: i64 = row.try_get(0).unwrap_or_default();
    let corrupt = |what: &str| StoreError::Corrupt {
        layer: "onemap_changes".into(),
        id: seq,
        column: what.into(),
        reason: "unreadable".into(),
    };
    let json = |i: usize| row.try_get::<Option<Value>, _>(i).ok().flatten();
    let bbox = |i: usize| json(i).and_then(|v| serde_json::from_value(v).ok());
    Ok(Change {
        seq,
        at: row.try_get(1).map_err(|_| corrupt("at"))?,
        actor: row.try_get(2).map_err(|_| corrupt("actor"))?,
        layer: row.try_get(3).map_err(|_| corrupt("layer"))?,
        op: row
            .try_get::<String, _>(4)
            .ok()
            .and_then(|s| Op::parse(&s))
            .ok_or_else(|| corrupt("op"))?,
        ids: json(5)
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| corrupt("feature_ids"))?,
        bbox_before: bbox(6),
        bbox_after: bbox(7),
        also: json(8)
            .map(|v| serde_json::from_value::<Vec<Touched>>(v).map_err(|_| corrupt("also")))
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .map(|t| if images { t } else { t.without_images() })
            .collect(),
        action: json(9),
    })
}

const COLUMNS: &str = "seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, also, action, before, after, geometry_before";
/// What the event stream and the change feed read: not the images.
const CHANGE_COLUMNS: &str =
    "seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, also, action";

pub async fn since(
    conn: &mut PgConnection,
    seq: i64,
    limit: u64,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM onemap_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading the change log"))?;
    rows.iter().map(|r| change(r, false)).collect()
}

pub async fn last_seq(conn: &mut PgConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT seq FROM onemap_log_head WHERE one = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::db("reading the change log"))
}

/// Serialise the writes of one idempotency key across every node, for the
/// rest of the transaction.
pub async fn lock_key(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("locking an idempotency key"))?;
    Ok(())
}

/// The write first stored under idempotency `key` on `layer`, if any; a key
/// of another layer is a conflict.
pub async fn keyed(
    conn: &mut PgConnection,
    layer: &str,
    key: &str,
) -> Result<Option<Written>, StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT layer, seq FROM onemap_idempotency WHERE key = $1")
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
    Ok(Some(Written {
        ids: change.ids.clone(),
        change,
    }))
}

pub async fn keep_key(
    conn: &mut PgConnection,
    key: &str,
    layer: &str,
    seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO onemap_idempotency (key, layer, seq, at) VALUES ($1, $2, $3, onemap_now())",
    )
    .bind(key)
    .bind(layer)
    .bind(seq)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("keeping an idempotency key"))?;
    Ok(())
}

pub async fn audit(conn: &mut PgConnection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    // `also` is a jsonb array of {layer, ids, …}; containment answers both
    // "wrote this layer" and "wrote this feature of it" from the same row.
    let sql = format!(
        "SELECT {COLUMNS} FROM onemap_changes WHERE ($1::text IS NULL OR layer = $1 \
           OR coalesce(also @> jsonb_build_array(jsonb_build_object('layer', $1::text)), false)) \
         AND ($2::text IS NULL OR starts_with(actor, $2)) \
         AND ($3::bigint IS NULL OR feature_ids @> jsonb_build_array($3::bigint) \
           OR coalesce(also @> jsonb_build_array(jsonb_build_object('ids', jsonb_build_array($3::bigint))), false)) \
         AND ($4::text IS NULL OR at >= $4) AND ($5::text IS NULL OR at <= $5) \
         ORDER BY seq DESC LIMIT $6"
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
            let image = |i: usize| r.try_get::<Option<Value>, _>(i).ok().flatten();
            Ok(AuditEntry {
                change: change(r, true)?,
                before: image(10),
                after: image(11),
                geometry_before: image(12),
            })
        })
        .collect()
}

fn token(row: &PgRow) -> Result<TokenRecord, StoreError> {
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
    conn: &mut PgConnection,
    name: &str,
    role: Role,
    digest: &str,
) -> Result<TokenRecord, StoreError> {
    // One statement: two nodes creating the same name cannot both pass a
    // check made before the insert.
    let row = sqlx::query(
        "INSERT INTO onemap_tokens (name, role, digest, created_at) VALUES ($1, $2, $3, onemap_now_seconds()) \
         ON CONFLICT DO NOTHING RETURNING id, name, role, created_at, revoked_at",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("creating a token"))?;
    match row {
        Some(row) => token(&row),
        None => Err(StoreError::Duplicate {
            what: format!("a token named `{name}`"),
        }),
    }
}

pub async fn find_token(
    conn: &mut PgConnection,
    digest: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, role, created_at, revoked_at FROM onemap_tokens WHERE digest = $1 AND revoked_at IS NULL",
    )
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading tokens"))?;
    row.as_ref().map(token).transpose()
}

pub async fn tokens(conn: &mut PgConnection) -> Result<Vec<TokenRecord>, StoreError> {
    let rows =
        sqlx::query("SELECT id, name, role, created_at, revoked_at FROM onemap_tokens ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db("reading tokens"))?;
    rows.iter().map(token).collect()
}

pub async fn revoke_token(conn: &mut PgConnection, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE onemap_tokens SET revoked_at = onemap_now_seconds() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("revoking a token"))?;
    Ok(done.rows_affected() > 0)
}

pub async fn save_scenario(
    conn: &mut PgConnection,
    name: &str,
    actor: &str,
    inputs: &Value,
    results: &Value,
) -> Result<ScenarioRecord, StoreError> {
    let row = sqlx::query(
        "INSERT INTO onemap_scenarios (name, actor, created_at, inputs, results) \
         VALUES ($1, $2, onemap_now(), $3, $4) RETURNING id, name, actor, created_at, inputs, results",
    )
    .bind(name)
    .bind(actor)
    .bind(inputs)
    .bind(results)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db("saving a scenario"))?;
    scenario_of(&row, true)
}

pub async fn scenario(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<ScenarioRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, actor, created_at, inputs, results FROM onemap_scenarios WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading a scenario"))?;
    row.map(|r| scenario_of(&r, true)).transpose()
}

pub async fn scenarios(
    conn: &mut PgConnection,
    limit: u64,
) -> Result<Vec<ScenarioRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, actor, created_at FROM onemap_scenarios ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("listing scenarios"))?;
    rows.iter().map(|r| scenario_of(r, false)).collect()
}

fn scenario_of(row: &PgRow, full: bool) -> Result<ScenarioRecord, StoreError> {
    let get = |e| StoreError::db("reading a scenario")(e);
    let json = |col: &str| -> Result<Value, StoreError> {
        if !full {
            return Ok(Value::Null);
        }
        row.try_get::<Value, _>(col).map_err(get)
    };
    Ok(ScenarioRecord {
        id: row.try_get("id").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        actor: row.try_get("actor").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        inputs: json("inputs")?,
        results: json("results")?,
    })
}

/// Every column of the log after `seq`, oldest first (for `onemap copy`).
pub async fn page(
    conn: &mut PgConnection,
    seq: i64,
    limit: u64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM onemap_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("reading the change log"))?;
    rows.iter()
        .map(|r| {
            let image = |i: usize| r.try_get::<Option<Value>, _>(i).ok().flatten();
            Ok(AuditEntry {
                change: change(r, true)?,
                before: image(10),
                after: image(11),
                geometry_before: image(12),
            })
        })
        .collect()
}

/// Tokens with digests, keys and scenarios (for `onemap copy`).
pub async fn records(conn: &mut PgConnection) -> Result<crate::store::Records, StoreError> {
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

/// What of the log, tokens and scenarios is there (a copy's target must
/// have none).
pub async fn holds_records(conn: &mut PgConnection) -> Result<Option<String>, StoreError> {
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
pub async fn put_change(conn: &mut PgConnection, e: &AuditEntry) -> Result<(), StoreError> {
    let bbox = |b: &Option<[f64; 4]>| b.map(|b| json!(b));
    let c = &e.change;
    sqlx::query(
        "INSERT INTO onemap_changes (seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after, \
           before, after, also, action, geometry_before) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(c.seq)
    .bind(&c.at)
    .bind(&c.actor)
    .bind(&c.layer)
    .bind(c.op.as_str())
    .bind(json!(c.ids))
    .bind(bbox(&c.bbox_before))
    .bind(bbox(&c.bbox_after))
    .bind(&e.before)
    .bind(&e.after)
    .bind((!c.also.is_empty()).then(|| json!(c.also)))
    .bind(&c.action)
    .bind(&e.geometry_before)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("copying change {}", c.seq)))?;
    Ok(())
}

/// Store copied tokens, keys and scenarios under their own ids.
pub async fn put_records(
    conn: &mut PgConnection,
    r: &crate::store::Records,
) -> Result<(), StoreError> {
    for t in &r.tokens {
        sqlx::query(
            "INSERT INTO onemap_tokens (id, name, role, digest, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
        sqlx::query("INSERT INTO onemap_idempotency (key, layer, seq, at) VALUES ($1, $2, $3, $4)")
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
            "INSERT INTO onemap_scenarios (id, name, actor, created_at, inputs, results) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.id)
        .bind(&s.name)
        .bind(&s.actor)
        .bind(&s.created_at)
        .bind(&s.inputs)
        .bind(&s.results)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("copying scenarios"))?;
    }
    // Identities continue after the copied ids; the log head after the
    // copied seqs.
    for table in ["onemap_tokens", "onemap_scenarios", "onemap_idempotency"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} HAVING max(id) IS NOT NULL"
        ))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("continuing the identities"))?;
    }
    Ok(())
}

/// The log head at the highest copied seq.
pub async fn raise_head(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE onemap_log_head SET seq = greatest(seq, (SELECT coalesce(max(seq), 0) FROM onemap_changes))",
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("moving the log head"))?;
    Ok(())
}
