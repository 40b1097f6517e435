//! Customers and their idTags on SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::events::append_event;
use super::{Written, is_unique_violation};
use crate::booking::store::{CustomerDeletion, StoreError, rows};
use crate::domain::customer::{Customer, CustomerChange, NewCustomer, TagAuth, TagRecord};
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
        tags: new.id_tags.iter().map(TagRecord::new).collect(),
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

/// The tag's owner and standing, looked up by its lower-case key.
pub(super) async fn id_tag_auth(
    pool: &SqlitePool,
    id_tag: &str,
) -> Result<Option<TagAuth>, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, id_tag, status, expires_at, parent_id_tag FROM id_tags \
         WHERE id_tag_key = $1",
    )
    .bind(id_tag.to_ascii_lowercase())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(rows::tag_auth).transpose()
}

/// Applies one change in the write transaction; `None` when there is no such customer, or no
/// such tag of this customer. Appends CustomerUpdated with the customer as it now stands.
pub(super) async fn change_customer(
    tx: &mut SqliteConnection,
    id: i64,
    change: &CustomerChange,
) -> Result<Written<Option<Customer>>, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok((None, None));
    }
    let changed = match change {
        CustomerChange::Rename(name) => sqlx::query("UPDATE customers SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        CustomerChange::RotateToken(digest) => {
            sqlx::query("UPDATE customers SET token_digest = $2 WHERE id = $1")
                .bind(id)
                .bind(digest)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
        CustomerChange::AddTag(tag) => {
            let position: i64 = sqlx::query_scalar(rows::NEXT_TAG_POSITION)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position, status, \
                 expires_at, parent_id_tag) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tag.id_tag.to_ascii_lowercase())
            .bind(&tag.id_tag)
            .bind(id)
            .bind(position)
            .bind(tag.status.as_str())
            .bind(tag.expires_at.map(to_millis))
            .bind(&tag.parent_id_tag)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!(
                        "idTag {} is already taken",
                        tag.id_tag
                    )));
                }
                other => other?.rows_affected(),
            }
        }
        CustomerChange::UpdateTag {
            key,
            status,
            expires_at,
            parent_id_tag,
        } => {
            let mut q = QueryBuilder::<Sqlite>::new("UPDATE id_tags SET position = position");
            if let Some(status) = status {
                q.push(", status = ").push_bind(status.as_str());
            }
            if let Some(at) = expires_at {
                q.push(", expires_at = ").push_bind(at.map(to_millis));
            }
            if let Some(parent) = parent_id_tag {
                q.push(", parent_id_tag = ").push_bind(parent.clone());
            }
            q.push(" WHERE id_tag_key = ").push_bind(key.clone());
            q.push(" AND customer_id = ").push_bind(id);
            q.build().execute(&mut *tx).await?.rows_affected()
        }
        CustomerChange::RemoveTag { key } => {
            sqlx::query("DELETE FROM id_tags WHERE id_tag_key = $1 AND customer_id = $2")
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
    };
    if changed == 0 {
        return Ok((None, None));
    }
    let row = sqlx::query("SELECT id, name, created_at FROM customers WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let tags = tags_of(&mut *tx, id).await?;
    let customer = rows::customer(&row, tags)?;
    let seq = append_event(
        tx,
        kind::CUSTOMER_UPDATED,
        None,
        Some(id),
        None,
        &data::customer(&customer),
    )
    .await?;
    Ok((Some(customer), Some(seq)))
}

async fn tags_of<'c, E: sqlx::SqliteExecutor<'c>>(
    executor: E,
    customer_id: i64,
) -> Result<Vec<TagRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT id_tag, status, expires_at, parent_id_tag FROM id_tags WHERE customer_id = $1 \
         ORDER BY position",
    )
    .bind(customer_id)
    .fetch_all(executor)
    .await?;
    rows::all(&found, rows::tag)
}

async fn customer_from(
    pool: &SqlitePool,
    row: Option<SqliteRow>,
) -> Result<Option<Customer>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("id")?;
    let tags = tags_of(pool, id).await?;
    Ok(Some(rows::customer(&row, tags)?))
}

/// [`crate::booking::store::Store::delete_customer`] in the write transaction.
pub(super) async fn delete_customer(
    tx: &mut SqliteConnection,
    id: i64,
) -> Result<Written<CustomerDeletion>, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok((CustomerDeletion::NotFound, None));
    }
    let charging: bool = sqlx::query_scalar(rows::CUSTOMER_CHARGING)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if charging {
        return Ok((CustomerDeletion::Charging, None));
    }
    let now = to_millis(OffsetDateTime::now_utc());
    let future: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM reservations WHERE customer_id = $1 AND status = 'BOOKED' \
         AND end_ms > $2 ORDER BY id",
    )
    .bind(id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut cancelled = Vec::with_capacity(future.len());
    for reservation_id in future {
        let reservation_id = i32::try_from(reservation_id)
            .map_err(|_| StoreError::Conflict(format!("reservation id {reservation_id}")))?;
        // The ordinary cancel, so the dispatcher owes and sends CancelReservation as usual.
        let (r, _) = super::reservations::cancel_reservation(tx, reservation_id, None)
            .await
            .map_err(rows::cancel_to_store)?;
        cancelled.push(r);
    }
    for statement in rows::FORGET_CUSTOMER {
        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    }
    let seq = append_event(
        tx,
        kind::CUSTOMER_DELETED,
        None,
        Some(id),
        None,
        &data::customer_deleted(id),
    )
    .await?;
    Ok((CustomerDeletion::Deleted { cancelled }, Some(seq)))
}
