//! The storage interface of the ledger. Everything durable goes through [`Store`]; each backend
//! (SQLite embedded by default, PostgreSQL for shared deployments) implements it and must pass the
//! same conformance tests. Backends own their SQL and migrations; callers never see sqlx types.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

use super::charger::{ChargerPatch, ChargerRecord, ChargerState, NewCharger};
use crate::central::ChargeBoxId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule of the ledger refused the write; the text says which.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot prepare the database: {0}")]
    Io(#[from] std::io::Error),
}

/// How chargers are paged through: ordered by id, starting after `after`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError>;
    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError>;
    /// The hot lookup of every WebSocket upgrade: `None` when unregistered, else the password hash.
    async fn charger_credentials(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<Option<String>>, StoreError>;
    async fn chargers(&self, page: &Page) -> Result<Vec<ChargerRecord>, StoreError>;
    async fn update_charger(
        &self,
        id: &ChargeBoxId,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError>;
    /// `false` when there was no such charger.
    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError>;
    /// Persist reported state in one transaction; states of chargers deleted meanwhile are dropped.
    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError>;

    async fn close(&self);
}

/// Open the database named by `url`, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "database {}: only sqlite:// is supported by this build",
            url.split("://").next().unwrap_or(url)
        )))
    }
}
