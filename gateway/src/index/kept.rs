//! SQLite connections the index keeps for the read on every GET and HEAD (a version's row with
//! its streams), outside the read pool.
//!
//! sqlx pings a pooled connection each time it goes back to its pool (`PoolConnection`'s
//! drop: "test the connection on-release", sqlx-core 0.8 `pool/connection.rs`), with no option
//! to turn it off. For SQLite that ping is a round trip to the connection's thread — waking it,
//! and then waking a Tokio worker for the answer — after every query: as many hand-offs as the
//! query itself, on the request that is the most frequent of all. A SQLite connection cannot
//! hang up, so these connections are taken out of the pool once (`detach`) and handed back to a
//! list of their own without the ping. PostgreSQL connections stay in the pool (its ping notices
//! a connection a server restart or failover cut), and so does an in-memory database (one
//! connection, shared with the writes).

use std::sync::Mutex;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::Semaphore;

use super::IndexError;

/// Connections kept; at most this many such reads run at once.
const KEPT: usize = 4;

/// The kept connections.
#[derive(Debug)]
pub(crate) struct Kept {
    /// Where a new connection comes from (the read pool: its options and pragmas).
    pool: AnyPool,
    /// Connections between reads (None once closed).
    idle: Mutex<Option<Vec<AnyConnection>>>,
    /// One per read running.
    permits: Semaphore,
    /// How long a read waits for one before it fails.
    wait: Duration,
}

impl Kept {
    /// Connections taken from `pool` when needed; a read waits up to `wait` for one.
    pub(crate) fn new(pool: AnyPool, wait: Duration) -> Kept {
        Kept {
            pool,
            idle: Mutex::new(Some(Vec::with_capacity(KEPT))),
            permits: Semaphore::new(KEPT),
            wait,
        }
    }

    /// Runs `query` on a kept connection and answers its rows. A connection whose query fails
    /// is closed rather than kept (a new one replaces it on demand).
    pub(crate) async fn fetch_all<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>, IndexError> {
        let _permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| IndexError::Database(sqlx::Error::PoolTimedOut))?
            .map_err(|_| IndexError::Database(sqlx::Error::PoolClosed))?;
        let idle = self.take()?;
        let mut conn = match idle {
            Some(c) => c,
            None => self.pool.acquire().await?.detach(),
        };
        let rows = query.fetch_all(&mut conn).await;
        if rows.is_ok() {
            self.give_back(conn);
        }
        Ok(rows?)
    }

    /// An idle connection, if any; an error once closed.
    fn take(&self) -> Result<Option<AnyConnection>, IndexError> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        match idle.as_mut() {
            Some(list) => Ok(list.pop()),
            None => Err(IndexError::Database(sqlx::Error::PoolClosed)),
        }
    }

    /// Keeps `conn` for the next read (dropped, and so closed, once closed).
    fn give_back(&self, conn: AnyConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = idle.as_mut() {
            list.push(conn);
        }
    }

    /// Closes the idle connections and refuses further reads; waits for the reads running.
    pub(crate) async fn close(&self) {
        let list = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        for conn in list {
            let _ = conn.close().await;
        }
        // a read still running drops its connection when it ends (the list is gone)
        let _ = self.permits.acquire_many(KEPT as u32).await;
    }
}
