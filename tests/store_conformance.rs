//! The storage contract, once, for every backend: each check below is an `async fn` over
//! `Arc<dyn Store>` and runs as `sqlite::<check>` (a fresh temp file) and `postgres::<check>` (a
//! fresh schema in `TEST_DATABASE_URL`; skipped without it, failing under CI). What the REST
//! layer promises about bookings rests on these: no double booking even under a 64-way race,
//! half-open slots, the errors, and a gap-free event log.

#[path = "support/pg.rs"]
mod pg;

use std::future::Future;
use std::sync::Arc;

use echarging::booking::charger::{
    BootInfo, ChargerPatch, ChargerState, ConnectorStatus, NewCharger,
};
use echarging::booking::customer::{Customer, IdTag, NewCustomer, token_digest};
use echarging::booking::event::{Event, data, kind};
use echarging::booking::reservation::{
    BookError, CancelError, ChargerAck, NewReservation, Reservation, ReservationFilter,
    ReservationStatus, TimeSlot,
};
use echarging::booking::store::{self, Page, Store, StoreError};
use echarging::central::ChargeBoxId;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Runs each check on both backends: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($check:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_sqlite(super::$check).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_postgres(super::$check).await;
                }
            )+
        }
    };
}

conformance!(
    charger_crud_and_events,
    customers_with_id_tags,
    duplicate_id_tag_conflicts_and_writes_nothing,
    book_returns_booked_pending_with_i32_id,
    half_open_neighbours_both_fit,
    overlap_names_the_conflicting_slot,
    unspecified_connector_takes_lowest_free,
    unknown_charger_connector_customer,
    cancel_rules,
    list_filters_in_start_order,
    events_gap_free_and_resumable,
    race_64_bookings_one_winner,
    race_unspecified_connector_fills_each_once,
    delete_charger_with_live_reservation_conflicts,
);

async fn on_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    run(store, check).await;
}

async fn on_postgres<F, Fut>(check: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = pg::PgSchema::new().await else {
        return;
    };
    let store = store::open(&schema.url).await.expect("open postgres");
    run(store, check).await;
    // `schema` drops here (also on panic), removing everything the check wrote.
}

/// Runs the check in its own task so its panic is caught, the store closed, and only then the
/// panic re-raised: the database is released cleanly either way.
async fn run<F, Fut>(store: Arc<dyn Store>, check: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(check(store.clone())).await;
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn cb(id: &str) -> ChargeBoxId {
    ChargeBoxId::parse(id).unwrap()
}

async fn add_charger(store: &Arc<dyn Store>, id: &str, connectors: u32) {
    store
        .insert_charger(&NewCharger {
            id: cb(id),
            name: None,
            connectors,
            password_hash: None,
        })
        .await
        .unwrap();
}

fn new_customer(name: &str, tags: &[&str]) -> NewCustomer {
    NewCustomer {
        name: name.into(),
        id_tags: tags.iter().map(|t| IdTag::parse(t).unwrap()).collect(),
        token_digest: token_digest(&format!("token of {name}")),
    }
}

async fn add_customer(store: &Arc<dyn Store>, name: &str, tags: &[&str]) -> Customer {
    store
        .insert_customer(&new_customer(name, tags))
        .await
        .unwrap()
}

/// A slot on 2030-01-01 between two times of day given as minutes after midnight.
fn slot(from_min: i64, to_min: i64) -> TimeSlot {
    let day = datetime!(2030-01-01 00:00 UTC);
    TimeSlot::parse(
        day + Duration::minutes(from_min),
        day + Duration::minutes(to_min),
    )
    .unwrap()
}

const H: i64 = 60;

fn booking(charger: &str, connector: Option<u32>, c: &Customer, slot: TimeSlot) -> NewReservation {
    NewReservation {
        charger_id: cb(charger),
        connector_id: connector,
        customer_id: c.id,
        id_tag: c.id_tags[0].clone(),
        slot,
    }
}

async fn book(store: &Arc<dyn Store>, new: NewReservation) -> Reservation {
    store.book(&new).await.unwrap()
}

async fn all_events(store: &Arc<dyn Store>) -> Vec<Event> {
    store.events_after(0, 10_000).await.unwrap()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn assert_gap_free(events: &[Event]) {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(seqs, expected, "event seq must be 1..=n without gaps");
}

fn all_reservations() -> ReservationFilter {
    ReservationFilter {
        limit: 1000,
        ..ReservationFilter::default()
    }
}

fn ids(list: &[Reservation]) -> Vec<i32> {
    list.iter().map(|r| r.id).collect()
}

// ---------------------------------------------------------------------------------------------
// Checks

async fn charger_crud_and_events(store: Arc<dyn Store>) {
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let created = store
        .insert_charger(&NewCharger {
            id: cb("CB-1"),
            name: Some("Garage".into()),
            connectors: 2,
            password_hash: Some("hash-1".into()),
        })
        .await
        .unwrap();
    assert!(created.created_at >= before && created.created_at == created.updated_at);
    add_charger(&store, "CB-0", 1).await;
    add_charger(&store, "CB-2", 4).await;

    let got = store.charger(&cb("CB-1")).await.unwrap().expect("stored");
    assert_eq!(got.name.as_deref(), Some("Garage"));
    assert_eq!(got.connectors, 2);
    assert_eq!(got.password_hash.as_deref(), Some("hash-1"));
    assert_eq!(got.created_at, created.created_at);
    assert!(got.boot.is_none() && got.last_seen_at.is_none() && got.connector_status.is_empty());
    assert_eq!(
        store.charger_credentials(&cb("CB-1")).await.unwrap(),
        Some(Some("hash-1".into()))
    );
    assert_eq!(
        store.charger_credentials(&cb("CB-0")).await.unwrap(),
        Some(None)
    );
    assert_eq!(store.charger_credentials(&cb("nope")).await.unwrap(), None);
    assert!(store.charger(&cb("nope")).await.unwrap().is_none());

    let dup = store
        .insert_charger(&NewCharger {
            id: cb("CB-1"),
            name: None,
            connectors: 1,
            password_hash: None,
        })
        .await;
    match dup {
        Err(StoreError::Conflict(text)) => assert_eq!(text, "charger CB-1 already exists"),
        other => panic!("duplicate charger: {other:?}"),
    }

    // Paging: by id in byte order, after the given id.
    let page = |after: Option<&str>, limit| Page {
        after: after.map(str::to_string),
        limit,
    };
    let first: Vec<String> = store
        .chargers(&page(None, 2))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(first, ["CB-0", "CB-1"]);
    let rest: Vec<String> = store
        .chargers(&page(Some("CB-1"), 10))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(rest, ["CB-2"]);

    let patched = store
        .update_charger(
            &cb("CB-1"),
            &ChargerPatch {
                name: Some(None),
                connectors: Some(3),
                password_hash: Some(None),
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(patched.name, None);
    assert_eq!(patched.connectors, 3);
    assert_eq!(patched.password_hash, None);
    assert!(patched.updated_at >= patched.created_at);
    assert!(
        store
            .update_charger(&cb("nope"), &ChargerPatch::default())
            .await
            .unwrap()
            .is_none()
    );

    // Reported state is kept (telemetry: no event).
    let at = datetime!(2030-01-01 09:00:00.123 UTC);
    let boot = BootInfo {
        vendor: "Acme".into(),
        model: "W1".into(),
        firmware_version: Some("1.2".into()),
        ..BootInfo::default()
    };
    let status = ConnectorStatus {
        connector_id: 1,
        status: "Available".into(),
        error_code: "NoError".into(),
        info: None,
        vendor_error_code: None,
        reported_at: Some(at),
        updated_at: at,
    };
    store
        .save_charger_states(&[
            ChargerState {
                id: cb("CB-1"),
                last_seen_at: Some(at),
                boot: Some((boot.clone(), at)),
                connector_status: vec![status.clone()],
            },
            // A charger that does not exist (deleted meanwhile): dropped, not an error.
            ChargerState {
                id: cb("gone"),
                last_seen_at: Some(at),
                boot: None,
                connector_status: vec![status.clone()],
            },
        ])
        .await
        .unwrap();
    // An older sighting never moves last_seen back.
    store
        .save_charger_states(&[ChargerState {
            id: cb("CB-1"),
            last_seen_at: Some(at - Duration::minutes(5)),
            boot: None,
            connector_status: vec![],
        }])
        .await
        .unwrap();
    let seen = store.charger(&cb("CB-1")).await.unwrap().unwrap();
    assert_eq!(seen.boot, Some(boot));
    assert_eq!(seen.last_boot_at, Some(at));
    assert_eq!(seen.last_seen_at, Some(at));
    assert_eq!(seen.connector_status, vec![status]);

    assert!(store.delete_charger(&cb("CB-1")).await.unwrap());
    assert!(!store.delete_charger(&cb("CB-1")).await.unwrap());
    assert!(store.charger(&cb("CB-1")).await.unwrap().is_none());

    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(
        kinds(&events),
        [
            kind::CHARGER_REGISTERED,
            kind::CHARGER_REGISTERED,
            kind::CHARGER_REGISTERED,
            kind::CHARGER_UPDATED,
            kind::CHARGER_DELETED,
        ]
    );
    let about: Vec<Option<&str>> = events.iter().map(|e| e.charger_id.as_deref()).collect();
    assert_eq!(
        about,
        [
            Some("CB-1"),
            Some("CB-0"),
            Some("CB-2"),
            Some("CB-1"),
            Some("CB-1")
        ]
    );
    assert_eq!(events[0].data, data::charger(&created));
    assert_eq!(events[3].data, data::charger(&patched));
    assert_eq!(events[0].data["passwordProtected"], true);
    assert!(
        events
            .iter()
            .all(|e| e.customer_id.is_none() && e.reservation_id.is_none())
    );
    assert!(events.iter().all(|e| e.at >= before));
}

async fn customers_with_id_tags(store: Arc<dyn Store>) {
    let new = new_customer("Ada", &["Tag-A", "tag-b"]);
    let ada = store.insert_customer(&new).await.unwrap();
    assert!(ada.id > 0);
    assert_eq!(ada.name, "Ada");
    assert_eq!(ada.id_tags, ["Tag-A", "tag-b"], "given spelling and order");

    assert_eq!(store.customer(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store.customer_by_token(&new.token_digest).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store
            .customer_by_token(&token_digest("someone else"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.customer(ada.id + 1000).await.unwrap(), None);

    let bob = add_customer(&store, "Bob", &["B1"]).await;
    assert_ne!(bob.id, ada.id);
    assert_eq!(
        store.customer(bob.id).await.unwrap().unwrap().id_tags,
        ["B1"]
    );

    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(
        kinds(&events),
        [kind::CUSTOMER_CREATED, kind::CUSTOMER_CREATED]
    );
    assert_eq!(events[0].customer_id, Some(ada.id));
    assert_eq!(events[0].data, data::customer(&ada));
    assert_eq!(events[1].customer_id, Some(bob.id));
    assert!(events[0].charger_id.is_none() && events[0].reservation_id.is_none());
}

async fn duplicate_id_tag_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;

    // Another customer with the same tag in another case.
    let eve = new_customer("Eve", &["fresh-1", "TAG-a"]);
    match store.insert_customer(&eve).await {
        Err(StoreError::Conflict(text)) => assert_eq!(text, "idTag TAG-a is already taken"),
        other => panic!("case-insensitive duplicate: {other:?}"),
    }
    // Nothing of Eve was written, not even her first (free) tag.
    assert_eq!(
        store.customer_by_token(&eve.token_digest).await.unwrap(),
        None
    );
    let fresh = add_customer(&store, "Fay", &["FRESH-1"]).await;
    assert_eq!(fresh.id_tags, ["FRESH-1"]);

    // The same tag twice in one request.
    match store
        .insert_customer(&new_customer("Gus", &["dup", "DUP"]))
        .await
    {
        Err(StoreError::Conflict(text)) => assert_eq!(text, "idTag DUP is already taken"),
        other => panic!("duplicate within one customer: {other:?}"),
    }

    assert_eq!(
        store.customer(ada.id).await.unwrap().unwrap().id_tags,
        ["Tag-A"]
    );
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let created: Vec<Option<i64>> = events.iter().map(|e| e.customer_id).collect();
    assert_eq!(created, [Some(ada.id), Some(fresh.id)]);
}

async fn book_returns_booked_pending_with_i32_id(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let r = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 11 * H))).await;
    assert!(r.id > 0, "OCPP reservationId is a positive 32-bit integer");
    assert_eq!(r.charger_id.as_str(), "CB-1");
    assert_eq!(r.connector_id, 2);
    assert_eq!(r.customer_id, ada.id);
    assert_eq!(r.id_tag, "Tag-A");
    assert_eq!(r.slot, slot(10 * H, 11 * H));
    assert_eq!(r.status, ReservationStatus::Booked);
    assert_eq!(r.charger_ack, ChargerAck::Pending);
    assert!(r.created_at >= before && r.created_at == r.updated_at);
    assert_eq!(store.reservation(r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(store.reservation(r.id + 1000).await.unwrap(), None);

    let events = all_events(&store).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::RESERVATION_BOOKED);
    assert_eq!(last.charger_id.as_deref(), Some("CB-1"));
    assert_eq!(last.customer_id, Some(ada.id));
    assert_eq!(last.reservation_id, Some(r.id));
    assert_eq!(last.data, data::reservation(&r));
}

async fn half_open_neighbours_both_fit(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let a = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let b = book(&store, booking("CB-1", Some(1), &ada, slot(11 * H, 12 * H))).await;
    let c = book(&store, booking("CB-1", Some(1), &ada, slot(9 * H, 10 * H))).await;
    assert_eq!((a.connector_id, b.connector_id, c.connector_id), (1, 1, 1));
    // One millisecond into a neighbour is an overlap.
    let edge = TimeSlot::parse(
        slot(11 * H, 12 * H).start() - Duration::milliseconds(1),
        slot(11 * H, 12 * H).start() + Duration::milliseconds(1),
    )
    .unwrap();
    assert!(matches!(
        store.book(&booking("CB-1", Some(1), &ada, edge)).await,
        Err(BookError::Overlap(_))
    ));
    assert!(store.overlapping_reservations().await.unwrap().is_empty());
}

async fn overlap_names_the_conflicting_slot(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let bob = add_customer(&store, "Bob", &["B"]).await;
    book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let events_before = all_events(&store).await.len();

    match store
        .book(&booking(
            "CB-1",
            Some(1),
            &bob,
            slot(10 * H + 30, 11 * H + 30),
        ))
        .await
    {
        Err(BookError::Overlap(conflict)) => assert_eq!(conflict, slot(10 * H, 11 * H)),
        other => panic!("overlap on the same connector: {other:?}"),
    }
    // A slot inside the other, and one enclosing it.
    for inner in [slot(10 * H + 10, 10 * H + 20), slot(9 * H, 12 * H)] {
        match store.book(&booking("CB-1", Some(1), &bob, inner)).await {
            Err(BookError::Overlap(conflict)) => assert_eq!(conflict, slot(10 * H, 11 * H)),
            other => panic!("overlap {inner:?}: {other:?}"),
        }
    }
    assert_eq!(
        all_events(&store).await.len(),
        events_before,
        "refusals append nothing"
    );

    let other = book(
        &store,
        booking("CB-1", Some(2), &bob, slot(10 * H + 30, 11 * H + 30)),
    )
    .await;
    assert_eq!(other.connector_id, 2);
    assert!(store.overlapping_reservations().await.unwrap().is_empty());
}

async fn unspecified_connector_takes_lowest_free(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 3).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let any = |s| booking("CB-1", None, &ada, s);
    let first = book(&store, any(slot(10 * H, 12 * H))).await;
    assert_eq!(first.connector_id, 1);
    let second = book(&store, any(slot(11 * H, 13 * H))).await;
    assert_eq!(second.connector_id, 2);
    let third = book(&store, any(slot(10 * H + 30, 11 * H + 30))).await;
    assert_eq!(third.connector_id, 3);
    // Connector 1 is free again from 12:00, before 2 and 3.
    let later = book(&store, any(slot(12 * H, 13 * H))).await;
    assert_eq!(later.connector_id, 1);
    // All three taken: the earliest conflicting slot is named.
    match store.book(&any(slot(11 * H, 11 * H + 15))).await {
        Err(BookError::Overlap(conflict)) => assert_eq!(conflict, slot(10 * H, 12 * H)),
        other => panic!("all connectors busy: {other:?}"),
    }
    // [9:00, 10:30): connector 1 is busy from 10:00, 2 only from 11:00.
    let fourth = book(&store, any(slot(9 * H, 10 * H + 30))).await;
    assert_eq!(fourth.connector_id, 2);
    assert!(store.overlapping_reservations().await.unwrap().is_empty());
}

async fn unknown_charger_connector_customer(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let events_before = all_events(&store).await.len();
    let s = slot(10 * H, 11 * H);
    match store.book(&booking("CB-9", Some(1), &ada, s)).await {
        Err(BookError::UnknownCharger(id)) => assert_eq!(id.as_str(), "CB-9"),
        other => panic!("unknown charger: {other:?}"),
    }
    for c in [0, 3] {
        match store.book(&booking("CB-1", Some(c), &ada, s)).await {
            Err(BookError::UnknownConnector(n)) => assert_eq!(n, c),
            other => panic!("unknown connector {c}: {other:?}"),
        }
    }
    let ghost = Customer {
        id: ada.id + 1000,
        ..ada.clone()
    };
    match store.book(&booking("CB-1", Some(1), &ghost, s)).await {
        Err(BookError::UnknownCustomer(id)) => assert_eq!(id, ghost.id),
        other => panic!("unknown customer: {other:?}"),
    }
    match store.book(&booking("CB-1", None, &ghost, s)).await {
        Err(BookError::UnknownCustomer(_)) => {}
        other => panic!("unknown customer, any connector: {other:?}"),
    }
    assert!(
        store
            .reservations(&all_reservations())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(all_events(&store).await.len(), events_before);

    // When several refusals apply, both backends pick the same one: connector 0 first, then
    // the charger, then the connector, then an overlap, and only then the customer.
    match store.book(&booking("CB-9", Some(0), &ada, s)).await {
        Err(BookError::UnknownConnector(0)) => {}
        other => panic!("connector 0 of an unknown charger: {other:?}"),
    }
    match store.book(&booking("CB-9", Some(3), &ada, s)).await {
        Err(BookError::UnknownCharger(_)) => {}
        other => panic!("connector 3 of an unknown charger: {other:?}"),
    }
    book(&store, booking("CB-1", Some(1), &ada, s)).await;
    match store.book(&booking("CB-1", Some(1), &ghost, s)).await {
        Err(BookError::Overlap(conflict)) => assert_eq!(conflict, s),
        other => panic!("unknown customer, taken slot: {other:?}"),
    }
    match store.book(&booking("CB-1", None, &ghost, s)).await {
        Err(BookError::UnknownCustomer(_)) => {}
        other => panic!("unknown customer, connector 2 free: {other:?}"),
    }
}

async fn cancel_rules(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let bob = add_customer(&store, "Bob", &["B"]).await;
    let s = slot(10 * H, 11 * H);
    let r = book(&store, booking("CB-1", Some(1), &ada, s)).await;

    // Someone else's reservation does not exist for them.
    assert!(matches!(
        store.cancel_reservation(r.id, Some(bob.id)).await,
        Err(CancelError::NotFound)
    ));
    assert!(matches!(
        store.cancel_reservation(r.id + 1000, None).await,
        Err(CancelError::NotFound)
    ));
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::Booked
    );

    let cancelled = store.cancel_reservation(r.id, Some(ada.id)).await.unwrap();
    assert_eq!(cancelled.status, ReservationStatus::Cancelled);
    assert_eq!(cancelled.id, r.id);
    assert!(cancelled.updated_at >= r.updated_at);
    assert_eq!(
        store.reservation(r.id).await.unwrap(),
        Some(cancelled.clone())
    );

    match store.cancel_reservation(r.id, None).await {
        Err(CancelError::NotCancellable(status)) => {
            assert_eq!(status, ReservationStatus::Cancelled)
        }
        other => panic!("cancel twice: {other:?}"),
    }

    // The slot is free again, for anyone.
    let again = book(&store, booking("CB-1", Some(1), &bob, s)).await;
    assert_ne!(again.id, r.id);
    // The operator (no owner) may cancel anyone's.
    store.cancel_reservation(again.id, None).await.unwrap();

    let events = all_events(&store).await;
    assert_gap_free(&events);
    let cancel = events
        .iter()
        .find(|e| e.kind == kind::RESERVATION_CANCELLED)
        .unwrap();
    assert_eq!(cancel.reservation_id, Some(r.id));
    assert_eq!(cancel.customer_id, Some(ada.id));
    assert_eq!(cancel.charger_id.as_deref(), Some("CB-1"));
    assert_eq!(cancel.data, data::reservation(&cancelled));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == kind::RESERVATION_CANCELLED)
            .count(),
        2
    );
}

async fn list_filters_in_start_order(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    add_charger(&store, "CB-2", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let bob = add_customer(&store, "Bob", &["B"]).await;
    // Booked out of start order on purpose.
    let r3 = book(&store, booking("CB-1", Some(1), &ada, slot(14 * H, 15 * H))).await;
    let r1 = book(&store, booking("CB-1", Some(1), &bob, slot(10 * H, 11 * H))).await;
    let r2 = book(&store, booking("CB-2", Some(1), &ada, slot(12 * H, 13 * H))).await;
    let r1b = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 12 * H))).await;
    store.cancel_reservation(r2.id, None).await.unwrap();

    let list = |f: ReservationFilter| {
        let store = store.clone();
        async move { ids(&store.reservations(&f).await.unwrap()) }
    };
    // Same start: by id.
    assert_eq!(
        list(all_reservations()).await,
        [r1.id, r1b.id, r2.id, r3.id]
    );
    assert_eq!(
        list(ReservationFilter {
            charger_id: Some(cb("CB-1")),
            ..all_reservations()
        })
        .await,
        [r1.id, r1b.id, r3.id]
    );
    assert_eq!(
        list(ReservationFilter {
            customer_id: Some(ada.id),
            ..all_reservations()
        })
        .await,
        [r1b.id, r2.id, r3.id]
    );
    assert_eq!(
        list(ReservationFilter {
            status: Some(ReservationStatus::Cancelled),
            ..all_reservations()
        })
        .await,
        [r2.id]
    );
    assert_eq!(
        list(ReservationFilter {
            status: Some(ReservationStatus::Booked),
            customer_id: Some(ada.id),
            ..all_reservations()
        })
        .await,
        [r1b.id, r3.id]
    );
    // [from, to) selects slots overlapping it; touching at an edge is not overlapping.
    let day = datetime!(2030-01-01 00:00 UTC);
    assert_eq!(
        list(ReservationFilter {
            from: Some(day + Duration::hours(11)),
            to: Some(day + Duration::hours(14)),
            ..all_reservations()
        })
        .await,
        [r1b.id, r2.id]
    );
    assert_eq!(
        list(ReservationFilter {
            from: Some(day + Duration::hours(13)),
            ..all_reservations()
        })
        .await,
        [r3.id]
    );
    assert_eq!(
        list(ReservationFilter {
            to: Some(day + Duration::hours(10)),
            ..all_reservations()
        })
        .await,
        Vec::<i32>::new()
    );
    assert_eq!(
        list(ReservationFilter {
            limit: 2,
            ..all_reservations()
        })
        .await,
        [r1.id, r1b.id]
    );
    let other_day = datetime!(2031-06-01 00:00 UTC);
    assert!(
        list(ReservationFilter {
            from: Some(other_day),
            to: Some(other_day + Duration::days(1)),
            ..all_reservations()
        })
        .await
        .is_empty()
    );
}

async fn events_gap_free_and_resumable(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    // Refused writes in between must not leave holes.
    assert!(
        store
            .insert_customer(&new_customer("Dup", &["a"]))
            .await
            .is_err()
    );
    let r1 = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    assert!(
        store
            .book(&booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H)))
            .await
            .is_err()
    );
    assert!(
        store
            .book(&booking("CB-1", Some(9), &ada, slot(10 * H, 11 * H)))
            .await
            .is_err()
    );
    let r2 = book(&store, booking("CB-1", None, &ada, slot(10 * H, 11 * H))).await;
    store.cancel_reservation(r1.id, None).await.unwrap();
    assert!(store.cancel_reservation(r1.id, None).await.is_err());
    store
        .update_charger(
            &cb("CB-1"),
            &ChargerPatch {
                name: Some(Some("renamed".into())),
                ..ChargerPatch::default()
            },
        )
        .await
        .unwrap();

    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(
        kinds(&events),
        [
            kind::CHARGER_REGISTERED,
            kind::CUSTOMER_CREATED,
            kind::RESERVATION_BOOKED,
            kind::RESERVATION_BOOKED,
            kind::RESERVATION_CANCELLED,
            kind::CHARGER_UPDATED,
        ]
    );
    let reservations: Vec<Option<i32>> = events.iter().map(|e| e.reservation_id).collect();
    assert_eq!(
        reservations,
        [None, None, Some(r1.id), Some(r2.id), Some(r1.id), None]
    );
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));

    // Resume from any point, in pages.
    for after in 0..=events.len() as i64 {
        let rest = store.events_after(after, 1000).await.unwrap();
        assert_eq!(rest, events[after as usize..], "after {after}");
        let page = store.events_after(after, 2).await.unwrap();
        assert_eq!(
            page,
            events[after as usize..(after as usize + 2).min(events.len())],
            "after {after}, limit 2"
        );
    }
    assert!(store.events_after(1000, 10).await.unwrap().is_empty());
}

/// 64 clients at once for slots that all overlap each other on one connector.
async fn race_64_bookings_one_winner(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            // Each starts i seconds later; any two share most of the hour.
            let start = slot(10 * H, 11 * H).start() + Duration::seconds(i);
            let new = booking(
                "CB-1",
                Some(1),
                &ada,
                TimeSlot::parse(start, start + Duration::hours(1)).unwrap(),
            );
            tokio::spawn(async move { store.book(&new).await })
        })
        .collect();
    let (mut won, mut overlaps) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => won.push(r),
            Err(BookError::Overlap(_)) => overlaps += 1,
            Err(e) => panic!("a racing booking failed otherwise: {e}"),
        }
    }
    assert_eq!((won.len(), overlaps), (1, 63));
    assert!(store.overlapping_reservations().await.unwrap().is_empty());
    let live = store
        .reservations(&ReservationFilter {
            charger_id: Some(cb("CB-1")),
            ..all_reservations()
        })
        .await
        .unwrap();
    assert_eq!(ids(&live), [won[0].id]);
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == kind::RESERVATION_BOOKED)
            .count(),
        1
    );
}

/// 64 clients at once for the same slot on any of 3 connectors: each connector is taken once.
async fn race_unspecified_connector_fills_each_once(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 3).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            let new = booking("CB-1", None, &ada, slot(10 * H, 11 * H));
            tokio::spawn(async move { store.book(&new).await })
        })
        .collect();
    let (mut connectors, mut overlaps) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => connectors.push(r.connector_id),
            Err(BookError::Overlap(conflict)) => {
                assert_eq!(conflict, slot(10 * H, 11 * H));
                overlaps += 1;
            }
            Err(e) => panic!("a racing booking failed otherwise: {e}"),
        }
    }
    connectors.sort_unstable();
    assert_eq!((connectors, overlaps), (vec![1, 2, 3], 61));
    assert!(store.overlapping_reservations().await.unwrap().is_empty());
    assert_gap_free(&all_events(&store).await);
}

async fn delete_charger_with_live_reservation_conflicts(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let old = book(&store, booking("CB-1", Some(1), &ada, slot(8 * H, 9 * H))).await;
    store.cancel_reservation(old.id, None).await.unwrap();
    let live = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;

    match store.delete_charger(&cb("CB-1")).await {
        Err(StoreError::Conflict(text)) => assert_eq!(
            text,
            "charger CB-1 has 1 live reservation(s); cancel them first"
        ),
        other => panic!("delete with a live reservation: {other:?}"),
    }
    assert!(store.charger(&cb("CB-1")).await.unwrap().is_some());
    assert_eq!(
        store.reservation(live.id).await.unwrap(),
        Some(live.clone())
    );

    store.cancel_reservation(live.id, None).await.unwrap();
    assert!(store.delete_charger(&cb("CB-1")).await.unwrap());
    // Its history goes with it.
    assert_eq!(store.reservation(old.id).await.unwrap(), None);
    assert_eq!(store.reservation(live.id).await.unwrap(), None);
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(events.last().unwrap().kind, kind::CHARGER_DELETED);
    assert_eq!(events.last().unwrap().data["id"], "CB-1");
}
