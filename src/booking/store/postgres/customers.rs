//! Customers and their idTags on PostgreSQL.

use sqlx::{PgConnection, PgPool, Postgres};
use time::OffsetDateTime;

use super::events::append_event;
use super::{Written, is_unique_violation, pg_text};
use crate::booking::store::{StoreError, rows};
use crate::domain::customer::{Customer, NewCustomer};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};

pub(super) async fn insert_customer(
    tx: &mut PgConnection,
    new: &NewCustomer,
) -> Result<Written<Customer>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customers (name, token_digest, created_at) \
         VALUES ($1, $2, ms_to_ts($3)) RETURNING id",
    )
    .bind(pg_text(&new.name))
    .bind(&new.token_digest)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    // One row at a time, in the given order, so the refusal names the first taken idTag,
    // as in SQLite. Two creations racing for the same tags in opposite order can deadlock;
    // the retry then meets the winner's tags committed and answers Conflict.
    for (position, tag) in new.id_tags.iter().enumerate() {
        let inserted = sqlx::query(
            "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(tag.key())
        .bind(tag.as_str())
        .bind(id)
        .bind(position as i32)
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

pub(super) async fn customer(pool: &PgPool, id: i64) -> Result<Option<Customer>, StoreError> {
    customer_where(pool, "c.id = $1", id).await
}

pub(super) async fn customer_by_token(
    pool: &PgPool,
    token_digest: &str,
) -> Result<Option<Customer>, StoreError> {
    customer_where(pool, "c.token_digest = $1", token_digest.to_string()).await
}

pub(super) async fn customer_of_id_tag(
    pool: &PgPool,
    id_tag: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(rows::CUSTOMER_OF_ID_TAG)
        .bind(id_tag.to_ascii_lowercase())
        .fetch_optional(pool)
        .await?)
}

/// A customer with its idTags in one round trip (`customer_by_token` runs on every request of a
/// customer).
const CUSTOMER_SELECT: &str = "SELECT id, name, ts_to_ms(created_at) AS created_at, \
     ARRAY(SELECT id_tag FROM id_tags t WHERE t.customer_id = c.id ORDER BY position) AS id_tags \
     FROM customers c";

async fn customer_where(
    pool: &PgPool,
    condition: &str,
    bind: impl for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
) -> Result<Option<Customer>, StoreError> {
    let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE {condition}"))
        .bind(bind)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id_tags = sqlx::Row::try_get(&row, "id_tags")?;
    Ok(Some(rows::customer(&row, id_tags)?))
}
