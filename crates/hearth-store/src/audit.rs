//! The audit log in the database: appends chain each entry to its scope's head inside the caller's
//! transaction; reads page through a scope in order; [`Store::verify_audit`] recomputes a whole chain.

use crate::{Result, Store, StoreError, Tx};
use hearth_proto::audit::{
    AuditEntry, ChainBreak, ChainHead, ChainVerifier, EntryBody, GENESIS_PREV_HASH, entry_hash,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An event to record. The store assigns its position and hashes.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub scope: String,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub source: Option<String>,
    pub details: serde_json::Value,
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    let details: String = row.try_get("details")?;
    Ok(AuditEntry {
        scope: row.try_get("scope")?,
        seq: row.try_get("seq")?,
        ts_ms: row.try_get("ts_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        source: row.try_get("source")?,
        // An entry whose details no longer parse was edited; keep it visible as a string so verification
        // reports it as altered instead of the read failing.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const COLS: &str = "scope, seq, ts_ms, actor, action, target, source, details, prev_hash, hash";

impl Tx {
    /// Append an entry to its scope's chain. Commits with the transaction or not at all.
    pub async fn append_audit(&mut self, e: NewAuditEntry) -> Result<AuditEntry> {
        sqlx::query("INSERT INTO audit_heads (scope, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (scope) DO NOTHING")
            .bind(&e.scope)
            .bind(GENESIS_PREV_HASH)
            .execute(&mut *self.inner)
            .await?;
        // Taking the head row's write lock first serialises appends to a scope.
        let head = sqlx::query(
            "UPDATE audit_heads SET seq = seq + 1 WHERE scope = $1 RETURNING seq, hash",
        )
        .bind(&e.scope)
        .fetch_one(&mut *self.inner)
        .await?;
        let seq: i64 = head.try_get("seq")?;
        let prev_hash: String = head.try_get("hash")?;
        let body = EntryBody {
            scope: &e.scope,
            seq,
            ts_ms: e.ts_ms,
            actor: &e.actor,
            action: &e.action,
            target: e.target.as_deref(),
            source: e.source.as_deref(),
            details: &e.details,
        };
        let hash = entry_hash(&prev_hash, &body).ok_or_else(|| {
            StoreError::Corrupt(format!("audit head of {} holds {prev_hash:?}", e.scope))
        })?;
        let q = format!(
            "INSERT INTO audit_log ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        sqlx::query(&q)
            .bind(&e.scope)
            .bind(seq)
            .bind(e.ts_ms)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(e.target.clone())
            .bind(e.source.clone())
            .bind(e.details.to_string())
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *self.inner)
            .await?;
        sqlx::query("UPDATE audit_heads SET hash = $1 WHERE scope = $2")
            .bind(&hash)
            .bind(&e.scope)
            .execute(&mut *self.inner)
            .await?;
        Ok(AuditEntry {
            scope: e.scope,
            seq,
            ts_ms: e.ts_ms,
            actor: e.actor,
            action: e.action,
            target: e.target,
            source: e.source,
            details: e.details,
            prev_hash,
            hash,
        })
    }
}

/// Outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditCheck {
    pub entries_checked: i64,
    /// The recorded head of the chain.
    pub head: ChainHead,
    pub result: std::result::Result<ChainHead, ChainBreak>,
}

impl Store {
    /// Entries of `scope` with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_page(&self, scope: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let q = format!(
            "SELECT {COLS} FROM audit_log WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        sqlx::query(&q)
            .bind(scope)
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(entry)
            .collect()
    }

    /// The chains with entries not yet forwarded to the syslog collector, each with the last
    /// `seq` forwarded (0: none).
    pub async fn audit_unforwarded(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT h.scope AS scope, COALESCE(f.seq, 0) AS done FROM audit_heads h \
             LEFT JOIN audit_forwarded f ON f.scope = h.scope \
             WHERE h.seq > COALESCE(f.seq, 0) ORDER BY h.scope",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("scope")?, r.try_get("done")?)))
            .collect()
    }

    /// How many audit entries, over every chain, wait to be forwarded to the syslog collector.
    pub async fn audit_forward_backlog(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(h.seq - COALESCE(f.seq, 0)), 0) AS BIGINT) AS waiting \
             FROM audit_heads h LEFT JOIN audit_forwarded f ON f.scope = h.scope \
             WHERE h.seq > COALESCE(f.seq, 0)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("waiting")?)
    }

    /// Called each time forwarding starts: the first time ever (a `*` row in `audit_forwarded`
    /// records it), without `history` every chain is marked forwarded up to its head, so what was
    /// written before forwarding was set up stays here. Returns whether that was skipped now.
    pub async fn begin_audit_forwarding(&self, history: bool) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let first = sqlx::query(
            "INSERT INTO audit_forwarded (scope, seq) VALUES ('*', 0) ON CONFLICT (scope) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let skip = first && !history;
        if skip {
            sqlx::query(
                "INSERT INTO audit_forwarded (scope, seq) SELECT scope, seq FROM audit_heads \
                 WHERE true ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq \
                 WHERE audit_forwarded.seq < excluded.seq",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(skip)
    }

    /// Records that `scope`'s entries up to `seq` were forwarded (never moving backwards).
    pub async fn mark_audit_forwarded(&self, scope: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_forwarded (scope, seq) VALUES ($1, $2) ON CONFLICT (scope) \
             DO UPDATE SET seq = excluded.seq WHERE audit_forwarded.seq < excluded.seq",
        )
        .bind(scope)
        .bind(seq)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes or renews the lease of forwarding the audit log for `holder` until `until` (Unix
    /// ms): true when `holder` has it, because it held it already or the last holder's lapsed
    /// before `now`.
    pub async fn take_audit_forward_lease(
        &self,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool> {
        let taken = sqlx::query(
            "INSERT INTO audit_forward_lease (id, holder, expires_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE audit_forward_lease.holder = excluded.holder OR audit_forward_lease.expires_at < $3",
        )
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives up `holder`'s lease (an instance stopping), so another, or this one restarted, sends
    /// at once rather than after the lease ran out.
    pub async fn release_audit_forward_lease(&self, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM audit_forward_lease WHERE holder = $1")
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Entries of `scope` recording `action`, oldest first.
    pub async fn audit_by_action(&self, scope: &str, action: &str) -> Result<Vec<AuditEntry>> {
        let q =
            format!("SELECT {COLS} FROM audit_log WHERE scope = $1 AND action = $2 ORDER BY seq");
        sqlx::query(&q)
            .bind(scope)
            .bind(action)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(entry)
            .collect()
    }

    /// Every scope that has a chain.
    pub async fn audit_scopes(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT scope FROM audit_heads ORDER BY scope")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("scope")?)).collect()
    }

    /// The recorded head of a scope's chain (genesis if nothing was logged yet).
    pub async fn audit_head(&self, scope: &str) -> Result<ChainHead> {
        let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE scope = $1")
            .bind(scope)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => Ok(ChainHead {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
            }),
            None => Ok(ChainHead::genesis()),
        }
    }

    /// Recompute the whole chain of `scope` against its recorded head, page by page.
    pub async fn verify_audit(&self, scope: &str) -> Result<AuditCheck> {
        const PAGE: i64 = 1000;
        let head = self.audit_head(scope).await?;
        let mut verifier = ChainVerifier::new();
        let mut after = i64::MIN;
        let mut checked = 0;
        loop {
            let page = self.audit_page(scope, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = verifier.push(e) {
                    return Ok(AuditCheck {
                        entries_checked: checked,
                        head,
                        result: Err(b),
                    });
                }
                checked += 1;
            }
        }
        let result = verifier.finish(Some(&head));
        Ok(AuditCheck {
            entries_checked: checked,
            head,
            result,
        })
    }
}
