//! Customers and their idTags on SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::events::append_event;
use super::{Written, is_unique_violation};
use crate::booking::store::{StoreError, rows};
use crate::domain::customer::{Customer, NewCustomer};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};

/// `Conflict` when an idTag (compared case-insensitively) belongs to someone already; the
/// refusal names the first taken one.
pub(super) async fn insert_customer(
    tx: &mut SqliteConnection,
    new: &NewCustomer,
) -> Result<Written<Customer>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customers (name, token_digest, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&new.name)
    .bind(&new.token_digest)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for (position, tag) in new.id_tags.iter().enumerate() {
        let inserted = sqlx::query(
            "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(tag.key())
        .bind(tag.as_str())
        .bind(id)
        .bind(position as i64)
        .execute(&mut *tx)
        .await;
        match inserted {
            // Dropping the transaction rolls back the customer too: nothing half-written.
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "idTag {} is already taken",
                    tag.as_str()
                )));
            }
            other => {
                other?;
            }
        }
    }
    let customer = Customer {
        id,
        name: new.name.clone(),
        id_tags: new.id_tags.iter().map(|t| t.as_str().to_string()).collect(),
        created_at: from_millis(now),
    };
    let seq = append_event(
        tx,
        kind::CUSTOMER_CREATED,
        None,
        Some(id),
        None,
        &data::customer(&customer),
    )
    .await?;
    Ok((customer, Some(seq)))
}

pub(super) async fn customer(pool: &SqlitePool, id: i64) -> Result<Option<Customer>, StoreError> {
    let row = sqlx::query("SELECT id, name, created_at FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    customer_from(pool, row).await
}

pub(super) async fn customer_by_token(
    pool: &SqlitePool,
    token_digest: &str,
) -> Result<Option<Customer>, StoreError> {
    let row = sqlx::query("SELECT id, name, created_at FROM customers WHERE token_digest = $1")
        .bind(token_digest)
        .fetch_optional(pool)
        .await?;
    customer_from(pool, row).await
}

pub(super) async fn customer_of_id_tag(
    pool: &SqlitePool,
    id_tag: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(rows::CUSTOMER_OF_ID_TAG)
        .bind(id_tag.to_ascii_lowercase())
        .fetch_optional(pool)
        .await?)
}

async fn customer_from(
    pool: &SqlitePool,
    row: Option<SqliteRow>,
) -> Result<Option<Customer>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("id")?;
    let id_tags =
        sqlx::query_scalar("SELECT id_tag FROM id_tags WHERE customer_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(Some(rows::customer(&row, id_tags)?))
}
