//! Customers and their idTags on PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use super::events::append_event;
use super::{Written, is_unique_violation, pg_text};
use crate::booking::store::{CustomerDeletion, StoreError, rows};
use crate::domain::customer::{Customer, CustomerChange, NewCustomer, TagAuth, TagRecord};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis, try_from_millis};

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

pub(super) async fn customer(pool: &PgPool, id: i64) -> Result<Option<Customer>, StoreError> {
    customer_where(pool, "c.id = $1", id).await
}

pub(super) async fn customer_by_token(
    pool: &PgPool,
    token_digest: &str,
) -> Result<Option<Customer>, StoreError> {
    customer_where(pool, "c.token_digest = $1", token_digest.to_string()).await
}

/// The tag's owner and standing, looked up by its lower-case key.
pub(super) async fn id_tag_auth(
    pool: &PgPool,
    id_tag: &str,
) -> Result<Option<TagAuth>, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, id_tag, status, ts_to_ms(expires_at) AS expires_at, parent_id_tag \
         FROM id_tags WHERE id_tag_key = $1",
    )
    .bind(pg_text(&id_tag.to_ascii_lowercase()))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(rows::tag_auth).transpose()
}

/// Applies one change in the write transaction; `None` when there is no such customer, or no
/// such tag of this customer. Appends CustomerUpdated with the customer as it now stands.
pub(super) async fn change_customer(
    tx: &mut PgConnection,
    id: i64,
    change: &CustomerChange,
) -> Result<Written<Option<Customer>>, StoreError> {
    // The row lock orders concurrent changes of one customer (tag positions, the event).
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok((None, None));
    }
    let changed = match change {
        CustomerChange::Rename(name) => sqlx::query("UPDATE customers SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(pg_text(name))
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
            let position: i32 = sqlx::query_scalar(rows::NEXT_TAG_POSITION)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position, status, \
                 expires_at, parent_id_tag) VALUES ($1, $2, $3, $4, $5, ms_to_ts($6), $7)",
            )
            .bind(pg_text(&tag.id_tag.to_ascii_lowercase()))
            .bind(pg_text(&tag.id_tag))
            .bind(id)
            .bind(position)
            .bind(tag.status.as_str())
            .bind(tag.expires_at.map(to_millis))
            .bind(tag.parent_id_tag.as_deref().map(pg_text))
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
            let mut q = QueryBuilder::<Postgres>::new("UPDATE id_tags SET position = position");
            if let Some(status) = status {
                q.push(", status = ").push_bind(status.as_str());
            }
            if let Some(at) = expires_at {
                q.push(", expires_at = ms_to_ts(")
                    .push_bind(at.map(to_millis))
                    .push(")");
            }
            if let Some(parent) = parent_id_tag {
                q.push(", parent_id_tag = ")
                    .push_bind(parent.as_deref().map(|p| pg_text(p).into_owned()));
            }
            q.push(" WHERE id_tag_key = ")
                .push_bind(pg_text(key).into_owned());
            q.push(" AND customer_id = ").push_bind(id);
            q.build().execute(&mut *tx).await?.rows_affected()
        }
        CustomerChange::RemoveTag { key } => {
            sqlx::query("DELETE FROM id_tags WHERE id_tag_key = $1 AND customer_id = $2")
                .bind(pg_text(key))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
    };
    if changed == 0 {
        return Ok((None, None));
    }
    let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE c.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let customer = customer_of_row(&row)?;
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

/// A customer with its idTags in one round trip (`customer_by_token` runs on every request of a
/// customer): the tags' columns as parallel arrays in position order.
const CUSTOMER_SELECT: &str = "SELECT id, name, ts_to_ms(created_at) AS created_at, \
     ARRAY(SELECT id_tag FROM id_tags t WHERE t.customer_id = c.id ORDER BY position) AS id_tags, \
     ARRAY(SELECT status FROM id_tags t WHERE t.customer_id = c.id ORDER BY position) AS statuses, \
     ARRAY(SELECT ts_to_ms(expires_at) FROM id_tags t WHERE t.customer_id = c.id \
           ORDER BY position) AS expiries, \
     ARRAY(SELECT parent_id_tag FROM id_tags t WHERE t.customer_id = c.id \
           ORDER BY position) AS parents \
     FROM customers c";

fn customer_of_row(row: &PgRow) -> Result<Customer, StoreError> {
    let id_tags: Vec<String> = row.try_get("id_tags")?;
    let statuses: Vec<String> = row.try_get("statuses")?;
    let expiries: Vec<Option<i64>> = row.try_get("expiries")?;
    let parents: Vec<Option<String>> = row.try_get("parents")?;
    let tags = id_tags
        .into_iter()
        .zip(statuses)
        .zip(expiries.into_iter().zip(parents))
        .map(|((id_tag, status), (expires, parent_id_tag))| {
            Ok(TagRecord {
                id_tag,
                status: rows::tag_status(&status)?,
                expires_at: expires
                    .map(|ms| {
                        try_from_millis(ms).ok_or_else(|| {
                            StoreError::Database(sqlx::Error::Decode(
                                format!("idTag expiry {ms} out of range").into(),
                            ))
                        })
                    })
                    .transpose()?,
                parent_id_tag,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rows::customer(row, tags)
}

async fn customer_where(
    pool: &PgPool,
    condition: &str,
    bind: impl for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
) -> Result<Option<Customer>, StoreError> {
    let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE {condition}"))
        .bind(bind)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(customer_of_row).transpose()
}

/// [`crate::booking::store::Store::delete_customer`] in one transaction.
pub(super) async fn delete_customer(
    tx: &mut PgConnection,
    id: i64,
) -> Result<Written<CustomerDeletion>, StoreError> {
    // The row lock orders the deletion after (or before) any change of the same customer.
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
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
    let future: Vec<i32> = sqlx::query_scalar(
        "SELECT id FROM reservations WHERE customer_id = $1 AND status = 'BOOKED' \
         AND end_at > ms_to_ts($2) ORDER BY id",
    )
    .bind(id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut cancelled = Vec::with_capacity(future.len());
    for reservation_id in future {
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
