//! What replicas share besides jobs: singletons (work one replica does at a time), the rate limits a
//! forge imposed on an account, and the review comments guardrail already minimised.

use std::time::Duration;

use super::{now_ms, Queue, QueueError};

/// Whose rate limit a row of `rate_limits` holds: a GitHub App installation (its id, positive) or the
/// GitLab token (one per deployment; a negative key, which no installation id can take).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitKey {
    Installation(u64),
    GitLab,
}

impl RateLimitKey {
    fn column(self) -> i64 {
        match self {
            RateLimitKey::Installation(id) => i64::try_from(id).unwrap_or(i64::MAX),
            RateLimitKey::GitLab => -1,
        }
    }
}

impl Queue {
    /// Takes (or keeps) the named singleton for `hold`: true when `holder` has it now. Replicas that
    /// call this at the same time: one gets it.
    pub async fn hold_singleton(&self, name: &str, holder: &str, hold: Duration) -> Result<bool, QueueError> {
        let now = now_ms();
        let n = sqlx::query(
            "INSERT INTO singletons (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE singletons.until_ms < $4 OR singletons.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + hold.as_millis() as i64)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Records that a forge asked an account to wait (GitHub's secondary rate limit, GitLab's 429), so
    /// every replica waits too.
    pub async fn set_rate_limit(&self, key: RateLimitKey, until_ms: i64) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO rate_limits (installation, until_ms) VALUES ($1, $2)
             ON CONFLICT (installation) DO UPDATE SET until_ms = excluded.until_ms
             WHERE rate_limits.until_ms < excluded.until_ms",
        )
        .bind(key.column())
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Until when an account must wait, if a replica recorded a rate limit that still holds.
    pub async fn rate_limit(&self, key: RateLimitKey) -> Result<Option<i64>, QueueError> {
        let until: Option<i64> =
            sqlx::query_scalar("SELECT until_ms FROM rate_limits WHERE installation = $1 AND until_ms > $2")
                .bind(key.column())
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await?;
        Ok(until)
    }

    /// Remembers review comments guardrail minimised, so later runs do not minimise them again (GitHub's
    /// REST listing does not say whether a comment is minimised).
    pub async fn mark_minimized(&self, node_ids: &[String]) -> Result<(), QueueError> {
        let now = now_ms();
        for id in node_ids {
            sqlx::query("INSERT INTO minimized_comments (node_id, minimized_at) VALUES ($1, $2) ON CONFLICT (node_id) DO NOTHING")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Which of `node_ids` guardrail already minimised.
    pub async fn minimized(&self, node_ids: &[String]) -> Result<std::collections::HashSet<String>, QueueError> {
        let mut out = std::collections::HashSet::new();
        for id in node_ids {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM minimized_comments WHERE node_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            if n > 0 {
                out.insert(id.clone());
            }
        }
        Ok(out)
    }
}
