//! The storage contract, once, for every backend: each check below is an `async fn` over
//! `Arc<dyn Store>` and runs as `sqlite::<check>` (a fresh temp file) and `postgres::<check>` (a
//! fresh schema in `TEST_DATABASE_URL`; skipped without it, failing under CI). What the REST
//! layer promises about bookings rests on these: no double booking even under a 64-way race,
//! half-open slots, the errors, and a gap-free event log; what OCPP relies on rests on the
//! charging checks: the start rules, one link per reservation under a 32-way race, repeated
//! StartTransactions answered alike, a StopTransaction counted once, and the log's head. The
//! hardening checks hold both to what a hostile or broken charger cannot do: panic the ledger,
//! fail other people's writes, or make implausible charging data count.

use crate::support::pg;

use std::future::Future;
use std::sync::Arc;

use echarging::booking::store::{
    self, BookError, CancelError, CustomerDeletion, Page, Store, StoreError,
};
use echarging::domain::ChargeBoxId;
use echarging::domain::availability::{Availability, AvailabilityChange};
use echarging::domain::charger::{
    BootInfo, ChargerCredentials, ChargerPatch, ChargerState, ConnectorStatus, NewCharger,
    RegistrationState, SecurityProfile,
};
use echarging::domain::customer::{
    Customer, CustomerChange, IdTag, NewCustomer, TagAuth, TagRecord, TagStatus, token_digest,
};
use echarging::domain::event::{Event, EventKind, data, kind};
use echarging::domain::instant::EARLIEST;
use echarging::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus, TimeSlot,
};
use echarging::domain::transaction::{
    Authorization, MAX_PLAUSIBLE_WH, MeterReadings, RunningMeter, SUPERSEDED, StartOutcome,
    StartPolicy, StartRequest, StopOutcome, StopRequest, TransactionFilter, TransactionStatus,
};
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
    unknown_chargers_pending_accepted_rejected,
    configuration_snapshots_and_changes,
    shrinking_never_strands_a_live_reservation,
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
    walk_in_start_recorded_with_customer,
    unknown_id_tag_refused_but_numbered,
    start_links_named_reservation,
    start_links_slot_within_early_grace,
    someone_elses_reserved_connector_refused,
    repeated_start_answers_the_first,
    stop_ends_once_with_energy,
    stop_of_unknown_transaction,
    meter_values_track_the_latest_reading,
    charger_ack_and_cancels_owed,
    connector_fault_marks_live_reservations,
    expire_due_expires_only_booked_and_over,
    head_follows_committed_events,
    race_32_starts_link_one,
    race_repeated_start_and_stop_count_once,
    starts_at_the_edges_of_time_neither_panic_nor_stop_writes,
    one_failing_write_fails_alone,
    charger_states_with_nul_are_kept_and_do_not_block_others,
    start_on_a_connector_the_charger_lacks_is_refused,
    second_start_on_a_connector_ends_the_stale_one,
    id_tag_charging_elsewhere_is_concurrent,
    race_one_id_tag_on_eight_chargers_charges_once,
    implausible_meter_readings_are_not_energy,
    tags_change_over_their_life_and_starts_follow,
    transactions_page_by_cursor,
    availability_takes_connectors_out_of_service,
    race_bookings_and_inoperative_leave_none_unmarked,
    deleting_a_customer_cancels_anonymises_and_forgets,
    race_delete_and_bookings_leave_no_live_booking,
    security_events_newest_first_paged_and_kept,
    a_flush_of_many_chargers_keeps_each_connectors_last_state,
    running_meters_are_the_running_transactions_newest_first,
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
            security_profile: SecurityProfile::NONE,
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

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
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
            security_profile: SecurityProfile::BASIC,
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
        Some(ChargerCredentials {
            password_hash: Some("hash-1".into()),
            security_profile: SecurityProfile::BASIC,
        })
    );
    assert_eq!(
        store.charger_credentials(&cb("CB-0")).await.unwrap(),
        Some(ChargerCredentials {
            password_hash: None,
            security_profile: SecurityProfile::NONE,
        })
    );
    assert_eq!(store.charger_credentials(&cb("nope")).await.unwrap(), None);
    assert!(store.charger(&cb("nope")).await.unwrap().is_none());

    let dup = store
        .insert_charger(&NewCharger {
            id: cb("CB-1"),
            name: None,
            connectors: 1,
            password_hash: None,
            security_profile: SecurityProfile::NONE,
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
        state: None,
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
                security_profile: Some(SecurityProfile::TLS_CLIENT_CERT),
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(patched.name, None);
    assert_eq!(patched.connectors, 3);
    assert_eq!(patched.password_hash, None);
    assert_eq!(patched.security_profile, SecurityProfile::TLS_CLIENT_CERT);
    assert_eq!(
        store.charger_credentials(&cb("CB-1")).await.unwrap(),
        Some(ChargerCredentials {
            password_hash: None,
            security_profile: SecurityProfile::TLS_CLIENT_CERT,
        })
    );
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
    let about: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.charger_id.as_ref().map(ChargeBoxId::as_str))
        .collect();
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
    assert_eq!(
        last.charger_id.as_ref().map(ChargeBoxId::as_str),
        Some("CB-1")
    );
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
    // (Connector 0 is the whole charger: see `whole_charger`.)
    for c in [3] {
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

    // When several refusals apply, both backends pick the same one: the charger, then the
    // connector, then an overlap, and only then the customer. Connector 0 (the whole charger)
    // of an unknown charger is an unknown charger.
    match store.book(&booking("CB-9", Some(0), &ada, s)).await {
        Err(BookError::UnknownCharger(_)) => {}
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
    assert_eq!(
        cancel.charger_id.as_ref().map(ChargeBoxId::as_str),
        Some("CB-1")
    );
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

// ---------------------------------------------------------------------------------------------
// Charging

const POLICY: StartPolicy = StartPolicy {
    early_grace: Duration::minutes(10),
    allow_walk_in: true,
};

/// An instant on 2030-01-01, in minutes after midnight (the day of [`slot`]).
fn at(min: i64) -> OffsetDateTime {
    datetime!(2030-01-01 00:00 UTC) + Duration::minutes(min)
}

fn start_req(
    charger: &str,
    connector: u32,
    id_tag: &str,
    timestamp: OffsetDateTime,
    reservation_id: Option<i32>,
) -> StartRequest {
    StartRequest {
        charger_id: cb(charger),
        connector_id: connector,
        id_tag: id_tag.into(),
        meter_start_wh: 1000,
        timestamp,
        reservation_id,
    }
}

async fn start(store: &Arc<dyn Store>, req: &StartRequest) -> StartOutcome {
    store.start_transaction(req, &POLICY).await.unwrap()
}

fn stop_req(charger: &str, transaction_id: i32, meter_stop_wh: i64, min: i64) -> StopRequest {
    StopRequest {
        charger_id: cb(charger),
        transaction_id,
        meter_stop_wh,
        timestamp: at(min),
        reason: Some("Local".into()),
    }
}

fn of_kind(events: &[Event], k: EventKind) -> Vec<&Event> {
    events.iter().filter(|e| e.kind == k).collect()
}

async fn walk_in_start_recorded_with_customer(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;
    let owner = |auth: Option<TagAuth>| auth.map(|a| a.customer_id);
    assert_eq!(
        owner(store.id_tag_auth("tag-a").await.unwrap()),
        Some(ada.id)
    );
    assert_eq!(
        owner(store.id_tag_auth("TAG-A").await.unwrap()),
        Some(ada.id)
    );
    assert_eq!(store.id_tag_auth("nobody").await.unwrap(), None);

    let req = start_req("CB-1", 2, "tag-a", at(10 * H), None);
    let out = start(&store, &req).await;
    let t = &out.transaction;
    assert!(t.id > 0, "OCPP transactionId is a positive 32-bit integer");
    assert!(!out.repeated && out.refusal.is_none() && out.reservation.is_none());
    assert_eq!(t.status, TransactionStatus::Active);
    assert_eq!(t.authorization, Authorization::Accepted);
    assert_eq!(t.customer_id, Some(ada.id));
    assert_eq!(t.reservation_id, None);
    assert_eq!((t.charger_id.as_str(), t.connector_id), ("CB-1", 2));
    assert_eq!(t.id_tag, "tag-a", "as the charger spelled it");
    assert_eq!((t.meter_start_wh, t.started_at), (1000, at(10 * H)));
    assert_eq!(
        (t.meter_stop_wh, t.stopped_at, t.energy_wh),
        (None, None, None)
    );
    assert_eq!(store.transaction(t.id).await.unwrap().as_ref(), Some(t));
    assert_eq!(store.transaction(t.id + 1000).await.unwrap(), None);

    let events = all_events(&store).await;
    assert_gap_free(&events);
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::TRANSACTION_STARTED);
    assert_eq!(
        last.charger_id.as_ref().map(ChargeBoxId::as_str),
        Some("CB-1")
    );
    assert_eq!(
        (last.customer_id, last.reservation_id),
        (Some(ada.id), None)
    );
    assert_eq!(last.data, data::transaction(t, None));

    // The same driver on the other connector is refused: that idTag is charging already (with
    // walk-ins not allowed it would be refused anyway).
    let strict = StartPolicy {
        allow_walk_in: false,
        ..POLICY
    };
    let refused = store
        .start_transaction(&start_req("CB-1", 1, "Tag-A", at(10 * H), None), &strict)
        .await
        .unwrap();
    assert_eq!(refused.transaction.status, TransactionStatus::Refused);
    assert_eq!(
        refused.transaction.authorization,
        Authorization::ConcurrentTx
    );
    assert_eq!(refused.transaction.customer_id, None);
    assert!(refused.refusal.is_some());

    // Listing: newest first, with filters.
    let list = |f: TransactionFilter| {
        let store = store.clone();
        async move {
            let found = store.transactions(&f).await.unwrap();
            found.iter().map(|t| t.id).collect::<Vec<_>>()
        }
    };
    let all = TransactionFilter {
        limit: 100,
        ..TransactionFilter::default()
    };
    assert_eq!(list(all.clone()).await, [refused.transaction.id, t.id]);
    assert_eq!(
        list(TransactionFilter {
            customer_id: Some(ada.id),
            ..all.clone()
        })
        .await,
        [t.id]
    );
    assert_eq!(
        list(TransactionFilter {
            status: Some(TransactionStatus::Refused),
            ..all.clone()
        })
        .await,
        [refused.transaction.id]
    );
    assert_eq!(
        list(TransactionFilter {
            charger_id: Some(cb("CB-2")),
            ..all.clone()
        })
        .await,
        Vec::<i32>::new()
    );
    assert_eq!(
        list(TransactionFilter { limit: 1, ..all }).await,
        [refused.transaction.id]
    );
}

async fn unknown_id_tag_refused_but_numbered(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let events_before = all_events(&store).await.len();
    let out = start(&store, &start_req("CB-1", 1, "NOBODY", at(10 * H), None)).await;
    let t = &out.transaction;
    assert!(t.id > 0, "a refused start still gets a transactionId");
    assert!(!out.repeated && out.reservation.is_none());
    assert_eq!(out.refusal, Some("unknown idTag"));
    assert_eq!(t.status, TransactionStatus::Refused);
    assert_eq!(t.authorization, Authorization::Invalid);
    assert_eq!(
        (t.customer_id, t.reservation_id, t.energy_wh),
        (None, None, None)
    );
    assert_eq!(store.transaction(t.id).await.unwrap().as_ref(), Some(t));

    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(events.len(), events_before + 1);
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::TRANSACTION_REFUSED);
    assert_eq!(last.customer_id, None);
    assert_eq!(last.data, data::transaction(t, None));
    assert_eq!(last.data["transaction"]["status"], "REFUSED");
    assert_eq!(
        last.data["transaction"]["customerId"],
        serde_json::Value::Null
    );

    // A refused transaction cannot be stopped or metered.
    match store
        .stop_transaction(&stop_req("CB-1", t.id, 2000, 11 * H))
        .await
        .unwrap()
    {
        StopOutcome::Unchanged(same) => assert_eq!(&same, t),
        other => panic!("stop of a refused transaction: {other:?}"),
    }
    let metered = store
        .record_meter_values(&MeterReadings {
            charger_id: cb("CB-1"),
            connector_id: 1,
            transaction_id: Some(t.id),
            readings: vec![(at(10 * H + 5), 1500)],
        })
        .await
        .unwrap();
    assert_eq!(metered, None);
    assert_eq!(all_events(&store).await.len(), events_before + 1);
}

async fn start_links_named_reservation(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 11 * H))).await;
    let out = start(
        &store,
        &start_req("CB-1", 2, "a", at(10 * H + 5), Some(r.id)),
    )
    .await;
    assert_eq!(out.transaction.status, TransactionStatus::Active);
    assert_eq!(out.transaction.authorization, Authorization::Accepted);
    assert_eq!(out.transaction.reservation_id, Some(r.id));
    assert_eq!(out.transaction.customer_id, Some(ada.id));
    let linked = out.reservation.clone().expect("the linked reservation");
    assert_eq!(linked.id, r.id);
    assert_eq!(linked.status, ReservationStatus::ChargingStarted);
    assert_eq!(store.reservation(r.id).await.unwrap(), Some(linked.clone()));

    let events = all_events(&store).await;
    assert_gap_free(&events);
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::TRANSACTION_STARTED);
    assert_eq!(last.reservation_id, Some(r.id));
    assert_eq!(last.customer_id, Some(ada.id));
    assert_eq!(
        last.data,
        data::transaction(&out.transaction, Some(&linked))
    );
    let carried = last
        .reservation()
        .expect("the event carries the reservation");
    assert_eq!(
        (
            carried.id,
            carried.status,
            carried.slot,
            carried.customer_id
        ),
        (linked.id, linked.status, linked.slot, linked.customer_id)
    );
}

async fn start_links_slot_within_early_grace(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let strict = StartPolicy {
        allow_walk_in: false,
        ..POLICY
    };
    // 15 minutes early is before the 10-minute grace: not this slot (and no walk-ins).
    let early = store
        .start_transaction(&start_req("CB-1", 1, "A", at(10 * H - 15), None), &strict)
        .await
        .unwrap();
    assert_eq!(early.transaction.status, TransactionStatus::Refused);
    assert_eq!(early.transaction.reservation_id, None);
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::Booked
    );
    // 5 minutes early, no reservationId: found by charger, connector, idTag and time.
    let out = store
        .start_transaction(&start_req("CB-1", 1, "A", at(10 * H - 5), None), &strict)
        .await
        .unwrap();
    assert_eq!(out.transaction.status, TransactionStatus::Active);
    assert_eq!(out.transaction.reservation_id, Some(r.id));
    assert_eq!(
        out.reservation.as_ref().map(|r| r.status),
        Some(ReservationStatus::ChargingStarted)
    );
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::ChargingStarted
    );
}

async fn someone_elses_reserved_connector_refused(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    add_customer(&store, "Bob", &["B"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    for (min, named) in [(10 * H + 30, None), (10 * H + 31, Some(r.id))] {
        let out = start(&store, &start_req("CB-1", 1, "B", at(min), named)).await;
        assert_eq!(out.transaction.status, TransactionStatus::Refused);
        assert_eq!(out.transaction.authorization, Authorization::Invalid);
        assert_eq!(out.transaction.customer_id, None);
        assert_eq!(out.transaction.reservation_id, None);
        assert_eq!(
            out.refusal,
            Some("the connector is reserved for someone else")
        );
        assert!(out.reservation.is_none());
    }
    assert_eq!(store.reservation(r.id).await.unwrap(), Some(r.clone()));
    // The other connector is free: a walk-in.
    let free = start(&store, &start_req("CB-1", 2, "B", at(10 * H + 32), None)).await;
    assert_eq!(free.transaction.status, TransactionStatus::Active);
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(of_kind(&events, kind::TRANSACTION_REFUSED).len(), 2);
    assert_eq!(of_kind(&events, kind::TRANSACTION_STARTED).len(), 1);
}

async fn repeated_start_answers_the_first(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let req = start_req("CB-1", 1, "A", at(10 * H + 1), Some(r.id));
    let first = start(&store, &req).await;
    assert!(!first.repeated);
    let events_after_first = all_events(&store).await.len();

    let again = start(&store, &req).await;
    assert!(again.repeated);
    assert_eq!(again.transaction, first.transaction);
    assert_eq!(again.reservation.as_ref().map(|r| r.id), Some(r.id));
    assert_eq!(
        again.reservation.as_ref().map(|r| r.status),
        Some(ReservationStatus::ChargingStarted)
    );
    assert_eq!(
        all_events(&store).await.len(),
        events_after_first,
        "nothing written"
    );

    // A repeated refusal too.
    let nobody = start_req("CB-1", 1, "NOBODY", at(10 * H + 2), None);
    let refused = start(&store, &nobody).await;
    let refused_again = start(&store, &nobody).await;
    assert!(refused_again.repeated);
    assert_eq!(refused_again.transaction, refused.transaction);

    // Any difference in the key is another StartTransaction.
    let other = start(
        &store,
        &StartRequest {
            meter_start_wh: 1001,
            ..req.clone()
        },
    )
    .await;
    assert!(!other.repeated);
    assert_ne!(other.transaction.id, first.transaction.id);
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(of_kind(&events, kind::TRANSACTION_STARTED).len(), 1);
}

async fn stop_ends_once_with_energy(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let started = start(&store, &start_req("CB-1", 1, "A", at(10 * H), Some(r.id))).await;
    let id = started.transaction.id;

    let (t, linked) = match store
        .stop_transaction(&stop_req("CB-1", id, 5500, 10 * H + 50))
        .await
        .unwrap()
    {
        StopOutcome::Stopped {
            transaction,
            reservation,
        } => (transaction, reservation.expect("linked reservation")),
        other => panic!("stop: {other:?}"),
    };
    assert_eq!(t.id, id);
    assert_eq!(t.status, TransactionStatus::Ended);
    assert_eq!(t.meter_stop_wh, Some(5500));
    assert_eq!(t.energy_wh, Some(4500), "meterStop − meterStart");
    assert_eq!(t.stopped_at, Some(at(10 * H + 50)));
    assert_eq!(t.stop_reason.as_deref(), Some("Local"));
    assert_eq!(t.customer_id, Some(ada.id));
    assert_eq!(linked.status, ReservationStatus::ChargingEnded);
    assert_eq!(store.transaction(id).await.unwrap(), Some(t.clone()));
    assert_eq!(store.reservation(r.id).await.unwrap(), Some(linked.clone()));

    // Retried: the same answer, nothing counted twice.
    match store
        .stop_transaction(&stop_req("CB-1", id, 9999, 10 * H + 55))
        .await
        .unwrap()
    {
        StopOutcome::Unchanged(same) => assert_eq!(same, t),
        other => panic!("second stop: {other:?}"),
    }
    assert_eq!(store.transaction(id).await.unwrap(), Some(t.clone()));
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let stopped = of_kind(&events, kind::TRANSACTION_STOPPED);
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].reservation_id, Some(r.id));
    assert_eq!(stopped[0].customer_id, Some(ada.id));
    assert_eq!(stopped[0].data, data::transaction(&t, Some(&linked)));
    assert_eq!(stopped[0].data["transaction"]["energyWh"], 4500);

    // A walk-in stops without a reservation.
    let walk_in = start(&store, &start_req("CB-1", 1, "A", at(12 * H), None)).await;
    match store
        .stop_transaction(&stop_req("CB-1", walk_in.transaction.id, 1200, 12 * H + 10))
        .await
        .unwrap()
    {
        StopOutcome::Stopped {
            transaction,
            reservation: None,
        } => assert_eq!(transaction.energy_wh, Some(200)),
        other => panic!("walk-in stop: {other:?}"),
    }
}

async fn stop_of_unknown_transaction(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    add_charger(&store, "CB-2", 1).await;
    add_customer(&store, "Ada", &["A"]).await;
    let out = start(&store, &start_req("CB-1", 1, "A", at(10 * H), None)).await;
    let id = out.transaction.id;
    let events_before = all_events(&store).await.len();
    for req in [
        stop_req("CB-1", id + 1000, 2000, 11 * H),
        stop_req("CB-2", id, 2000, 11 * H),
    ] {
        match store.stop_transaction(&req).await.unwrap() {
            StopOutcome::Unknown => {}
            other => panic!("stop of {req:?}: {other:?}"),
        }
    }
    assert_eq!(
        store.transaction(id).await.unwrap().map(|t| t.status),
        Some(TransactionStatus::Active)
    );
    assert_eq!(all_events(&store).await.len(), events_before);
}

async fn meter_values_track_the_latest_reading(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let out = start(&store, &start_req("CB-1", 1, "A", at(10 * H), None)).await;
    let id = out.transaction.id;
    let readings = |transaction_id, connector_id, readings: Vec<(i64, i64)>| MeterReadings {
        charger_id: cb("CB-1"),
        connector_id,
        transaction_id,
        readings: readings.into_iter().map(|(m, wh)| (at(m), wh)).collect(),
    };

    let t = store
        .record_meter_values(&readings(
            Some(id),
            1,
            vec![(10 * H + 20, 2000), (10 * H + 10, 1500)],
        ))
        .await
        .unwrap()
        .expect("the active transaction");
    assert_eq!(t.id, id);
    assert_eq!(
        t.last_meter_wh,
        Some(2000),
        "the newest reading, not the last listed"
    );
    assert_eq!(t.last_meter_at, Some(at(10 * H + 20)));
    assert_eq!(t.energy_wh, Some(1000));
    assert_eq!(store.transaction(id).await.unwrap(), Some(t.clone()));
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::METER_VALUES_RECORDED);
    assert_eq!(last.customer_id, Some(ada.id));
    assert_eq!(
        last.charger_id.as_ref().map(ChargeBoxId::as_str),
        Some("CB-1")
    );
    assert_eq!(last.data, data::transaction(&t, None));

    // An older reading (re-sent after a reconnect) is kept but does not move it back.
    let older = store
        .record_meter_values(&readings(Some(id), 1, vec![(10 * H + 15, 1800)]))
        .await
        .unwrap()
        .expect("the active transaction");
    assert_eq!(older.last_meter_wh, Some(2000));
    assert_eq!(older.last_meter_at, Some(at(10 * H + 20)));
    assert_eq!(
        store.transaction(id).await.unwrap().unwrap().last_meter_wh,
        Some(2000)
    );
    assert_eq!(
        all_events(&store).await.last().unwrap().kind,
        kind::METER_VALUES_RECORDED
    );

    // Without a transactionId: the connector's active transaction.
    let by_connector = store
        .record_meter_values(&readings(None, 1, vec![(10 * H + 30, 2600)]))
        .await
        .unwrap()
        .expect("attached to the connector's transaction");
    assert_eq!(by_connector.id, id);
    assert_eq!(by_connector.last_meter_wh, Some(2600));
    assert_eq!(by_connector.energy_wh, Some(1600));

    // Nothing active there, or not this charger's, or not a transaction: nothing stored.
    let before = all_events(&store).await.len();
    let nothing = [
        readings(None, 2, vec![(10 * H + 30, 10)]),
        readings(Some(id + 1000), 1, vec![(10 * H + 30, 10)]),
        MeterReadings {
            charger_id: cb("CB-9"),
            ..readings(Some(id), 1, vec![(10 * H + 30, 10)])
        },
    ];
    for m in &nothing {
        assert_eq!(store.record_meter_values(m).await.unwrap(), None, "{m:?}");
    }
    // Ended: no longer metered.
    store
        .stop_transaction(&stop_req("CB-1", id, 3000, 10 * H + 40))
        .await
        .unwrap();
    let before_stop_count = before + 1;
    assert_eq!(
        store
            .record_meter_values(&readings(Some(id), 1, vec![(10 * H + 45, 3100)]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(all_events(&store).await.len(), before_stop_count);
}

async fn charger_ack_and_cancels_owed(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 3).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let now = at(9 * H);
    let r1 = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let r2 = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 11 * H))).await;
    let r3 = book(&store, booking("CB-1", Some(3), &ada, slot(10 * H, 11 * H))).await;
    assert_eq!(
        store
            .record_charger_ack(r1.id + 1000, ChargerAck::Accepted)
            .await
            .unwrap(),
        None
    );

    // On a BOOKED reservation: the ack changes, with an event, once.
    let acked = store
        .record_charger_ack(r1.id, ChargerAck::Accepted)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(acked.charger_ack, ChargerAck::Accepted);
    assert_eq!(acked.status, ReservationStatus::Booked);
    assert_eq!(store.reservation(r1.id).await.unwrap(), Some(acked.clone()));
    let events = all_events(&store).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, kind::RESERVATION_ACK_CHANGED);
    assert_eq!(last.reservation_id, Some(r1.id));
    assert_eq!(last.data, data::reservation(&acked));
    let count = events.len();
    let same = store
        .record_charger_ack(r1.id, ChargerAck::Accepted)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(same.charger_ack, ChargerAck::Accepted);
    assert_eq!(all_events(&store).await.len(), count, "no change, no event");
    let rejected = store
        .record_charger_ack(r3.id, ChargerAck::Rejected)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(rejected.charger_ack, ChargerAck::Rejected);

    let agenda = store.dispatch_agenda(now).await.unwrap();
    assert_eq!(ids(&agenda.booked), [r1.id, r2.id, r3.id]);
    assert!(agenda.cancels_owed.is_empty());

    // Cancelled before the charger was ever asked: nothing owed…
    store.cancel_reservation(r2.id, None).await.unwrap();
    assert!(
        store
            .dispatch_agenda(now)
            .await
            .unwrap()
            .cancels_owed
            .is_empty()
    );
    // …until the charger accepts the ReserveNow that was already on its way.
    let count = all_events(&store).await.len();
    let late = store
        .record_charger_ack(r2.id, ChargerAck::Accepted)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(late.status, ReservationStatus::Cancelled);
    assert_eq!(
        late.charger_ack,
        ChargerAck::Pending,
        "a cancelled reservation keeps its ack"
    );
    assert_eq!(all_events(&store).await.len(), count);
    let agenda = store.dispatch_agenda(now).await.unwrap();
    assert_eq!(ids(&agenda.cancels_owed), [r2.id]);
    assert_eq!(ids(&agenda.booked), [r1.id, r3.id]);
    store.record_cancel_delivered(r2.id).await.unwrap();
    assert!(
        store
            .dispatch_agenda(now)
            .await
            .unwrap()
            .cancels_owed
            .is_empty()
    );

    // Cancelling a reservation the charger accepted (or answered at all) owes a cancel.
    store.cancel_reservation(r1.id, None).await.unwrap();
    store.cancel_reservation(r3.id, None).await.unwrap();
    let agenda = store.dispatch_agenda(now).await.unwrap();
    assert_eq!(ids(&agenda.cancels_owed), [r1.id, r3.id]);
    assert_eq!(agenda.cancels_owed[0].status, ReservationStatus::Cancelled);
    assert!(agenda.booked.is_empty());
    // Only while the slot lasts.
    assert!(
        store
            .dispatch_agenda(at(11 * H))
            .await
            .unwrap()
            .cancels_owed
            .is_empty()
    );
    store.record_cancel_delivered(r1.id).await.unwrap();
    assert_eq!(
        ids(&store.dispatch_agenda(now).await.unwrap().cancels_owed),
        [r3.id]
    );
    assert_gap_free(&all_events(&store).await);
}

async fn connector_fault_marks_live_reservations(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let now_r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let soon = book(
        &store,
        booking("CB-1", Some(1), &ada, slot(11 * H + 5, 12 * H)),
    )
    .await;
    let later = book(&store, booking("CB-1", Some(1), &ada, slot(13 * H, 14 * H))).await;
    let other = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 11 * H))).await;
    let grace = Duration::minutes(10);

    // 10:58: the current slot, and the next one (starts within the grace).
    let changed = store
        .record_connector_fault(&cb("CB-1"), 1, ChargerAck::Faulted, at(10 * H + 58), grace)
        .await
        .unwrap();
    assert_eq!(ids(&changed), [now_r.id, soon.id]);
    assert!(changed.iter().all(|r| r.charger_ack == ChargerAck::Faulted));
    for r in &changed {
        assert_eq!(store.reservation(r.id).await.unwrap().as_ref(), Some(r));
    }
    for r in [&later, &other] {
        assert_eq!(store.reservation(r.id).await.unwrap().as_ref(), Some(r));
    }
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let acks = of_kind(&events, kind::RESERVATION_ACK_CHANGED);
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].data, data::reservation(&changed[0]));
    assert_eq!(acks[1].data, data::reservation(&changed[1]));

    // Already showing it: no change, no event.
    let again = store
        .record_connector_fault(&cb("CB-1"), 1, ChargerAck::Faulted, at(10 * H + 58), grace)
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(all_events(&store).await.len(), events.len());

    // A cancelled slot is not live: untouched.
    store.cancel_reservation(later.id, None).await.unwrap();
    let none = store
        .record_connector_fault(
            &cb("CB-1"),
            1,
            ChargerAck::Unavailable,
            at(13 * H + 5),
            grace,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn expire_due_expires_only_booked_and_over(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let over = book(&store, booking("CB-1", Some(1), &ada, slot(8 * H, 9 * H))).await;
    let charging = book(&store, booking("CB-1", Some(1), &ada, slot(9 * H, 10 * H))).await;
    let edge = book(&store, booking("CB-1", Some(2), &ada, slot(9 * H, 10 * H))).await;
    let running = book(&store, booking("CB-1", Some(2), &ada, slot(10 * H, 11 * H))).await;
    let cancelled = book(&store, booking("CB-1", Some(1), &ada, slot(7 * H, 8 * H))).await;
    store.cancel_reservation(cancelled.id, None).await.unwrap();
    let started = start(
        &store,
        &start_req("CB-1", 1, "A", at(9 * H + 5), Some(charging.id)),
    )
    .await;
    assert_eq!(started.transaction.reservation_id, Some(charging.id));
    let before = all_events(&store).await.len();

    // At 10:00: [8, 9) and [9, 10) (half-open: over at 10:00) expire; the charging one,
    // the running one and the cancelled one do not.
    let expired = store.expire_due(at(10 * H)).await.unwrap();
    let mut got = ids(&expired);
    got.sort_unstable();
    assert_eq!(got, [over.id, edge.id]);
    assert!(
        expired
            .iter()
            .all(|r| r.status == ReservationStatus::Expired)
    );
    for r in &expired {
        assert_eq!(store.reservation(r.id).await.unwrap().as_ref(), Some(r));
    }
    let status = |id| {
        let store = store.clone();
        async move { store.reservation(id).await.unwrap().unwrap().status }
    };
    assert_eq!(
        status(charging.id).await,
        ReservationStatus::ChargingStarted
    );
    assert_eq!(status(running.id).await, ReservationStatus::Booked);
    assert_eq!(status(cancelled.id).await, ReservationStatus::Cancelled);

    let events = all_events(&store).await;
    assert_gap_free(&events);
    let new = &events[before..];
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|e| e.kind == kind::RESERVATION_EXPIRED));
    for e in new {
        let r = expired
            .iter()
            .find(|r| Some(r.id) == e.reservation_id)
            .unwrap();
        assert_eq!(e.data, data::reservation(r));
        assert_eq!(e.customer_id, Some(ada.id));
    }
    // Nothing more is due; the expired ones left the agenda.
    assert!(store.expire_due(at(10 * H)).await.unwrap().is_empty());
    assert_eq!(all_events(&store).await.len(), events.len());
    assert_eq!(
        ids(&store.dispatch_agenda(at(10 * H)).await.unwrap().booked),
        [running.id]
    );
}

/// The head as a subscriber sees it now (the borrow ends here, before any await).
fn seen(head: &mut tokio::sync::watch::Receiver<i64>) -> i64 {
    *head.borrow_and_update()
}

async fn head_follows_committed_events(store: Arc<dyn Store>) {
    let mut head = store.head();
    assert_eq!(seen(&mut head), 0, "an empty log");
    let last_seq =
        |store: Arc<dyn Store>| async move { all_events(&store).await.last().map_or(0, |e| e.seq) };
    add_charger(&store, "CB-1", 1).await;
    assert!(head.has_changed().unwrap());
    assert_eq!(seen(&mut head), 1);
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    assert_eq!(seen(&mut head), last_seq(store.clone()).await);
    store
        .record_charger_ack(r.id, ChargerAck::Accepted)
        .await
        .unwrap();
    assert_eq!(seen(&mut head), last_seq(store.clone()).await);
    let out = start(&store, &start_req("CB-1", 1, "A", at(10 * H), Some(r.id))).await;
    assert_eq!(seen(&mut head), last_seq(store.clone()).await);
    store
        .record_meter_values(&MeterReadings {
            charger_id: cb("CB-1"),
            connector_id: 1,
            transaction_id: Some(out.transaction.id),
            readings: vec![(at(10 * H + 5), 1100)],
        })
        .await
        .unwrap();
    assert_eq!(seen(&mut head), last_seq(store.clone()).await);
    store
        .stop_transaction(&stop_req("CB-1", out.transaction.id, 1500, 10 * H + 30))
        .await
        .unwrap();
    let seq = last_seq(store.clone()).await;
    assert_eq!(seen(&mut head), seq);
    assert_eq!(seq, 7);

    // Writes that append nothing leave it be.
    store.record_cancel_delivered(r.id).await.unwrap();
    assert!(
        start(&store, &start_req("CB-1", 1, "A", at(10 * H), Some(r.id)))
            .await
            .repeated
    );
    assert!(store.expire_due(at(9 * H)).await.unwrap().is_empty());
    assert!(!head.has_changed().unwrap());
    assert_eq!(*head.borrow(), seq);

    // A subscriber waiting for the next event wakes on its commit.
    let waiter = {
        let mut head = store.head();
        tokio::spawn(async move {
            head.changed().await.unwrap();
            *head.borrow()
        })
    };
    store.expire_due(at(12 * H)).await.unwrap();
    add_charger(&store, "CB-2", 1).await;
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert!(woke > seq);
}

/// 32 StartTransactions at once (distinct timestamps) by the owner, each naming the reservation:
/// exactly one links it, the rest are refused as already charging.
async fn race_32_starts_link_one(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let req = start_req(
                "CB-1",
                1,
                "A",
                at(10 * H) + Duration::seconds(i),
                Some(r.id),
            );
            tokio::spawn(async move { store.start_transaction(&req, &POLICY).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("a racing start failed"));
    }
    let linked: Vec<&StartOutcome> = outcomes
        .iter()
        .filter(|o| o.transaction.reservation_id.is_some())
        .collect();
    assert_eq!(linked.len(), 1, "exactly one start links the reservation");
    assert_eq!(linked[0].transaction.status, TransactionStatus::Active);
    assert_eq!(linked[0].transaction.reservation_id, Some(r.id));
    let refused: Vec<&StartOutcome> = outcomes
        .iter()
        .filter(|o| o.transaction.status == TransactionStatus::Refused)
        .collect();
    assert_eq!(refused.len(), 31);
    assert!(
        refused
            .iter()
            .all(|o| o.transaction.authorization == Authorization::ConcurrentTx)
    );
    let mut tx_ids: Vec<i32> = outcomes.iter().map(|o| o.transaction.id).collect();
    tx_ids.sort_unstable();
    tx_ids.dedup();
    assert_eq!(tx_ids.len(), 32, "every start has its own transactionId");
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::ChargingStarted
    );
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(of_kind(&events, kind::TRANSACTION_STARTED).len(), 1);
    assert_eq!(of_kind(&events, kind::TRANSACTION_REFUSED).len(), 31);
}

/// The same StartTransaction 8 times at once, then the StopTransaction 8 times at once: one
/// transaction, stopped once.
async fn race_repeated_start_and_stop_count_once(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let req = start_req("CB-1", 1, "A", at(10 * H), Some(r.id));
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (store, req) = (store.clone(), req.clone());
            tokio::spawn(async move { store.start_transaction(&req, &POLICY).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in starts {
        outcomes.push(task.await.unwrap().expect("a repeated start failed"));
    }
    assert_eq!(outcomes.iter().filter(|o| !o.repeated).count(), 1);
    let first = &outcomes.iter().find(|o| !o.repeated).unwrap().transaction;
    assert_eq!(first.reservation_id, Some(r.id));
    assert!(outcomes.iter().all(|o| &o.transaction == first));

    let stops: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let req = stop_req("CB-1", first.id, 4000, 10 * H + 30);
            tokio::spawn(async move { store.stop_transaction(&req).await })
        })
        .collect();
    let (mut stopped, mut unchanged) = (0, 0);
    for task in stops {
        match task.await.unwrap().expect("a repeated stop failed") {
            StopOutcome::Stopped { transaction, .. } => {
                assert_eq!(transaction.energy_wh, Some(3000));
                stopped += 1;
            }
            StopOutcome::Unchanged(t) => {
                assert_eq!(t.energy_wh, Some(3000));
                unchanged += 1;
            }
            StopOutcome::Unknown => panic!("the transaction exists"),
        }
    }
    assert_eq!((stopped, unchanged), (1, 7));
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(of_kind(&events, kind::TRANSACTION_STARTED).len(), 1);
    assert_eq!(of_kind(&events, kind::TRANSACTION_REFUSED).len(), 0);
    assert_eq!(of_kind(&events, kind::TRANSACTION_STOPPED).len(), 1);
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::ChargingEnded
    );
}

// ---------------------------------------------------------------------------------------------
// Hardening: whatever a charger sends, the ledger neither panics nor lets one write fail others.

async fn starts_at_the_edges_of_time_neither_panic_nor_stop_writes(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    add_customer(&store, "Bob", &["B"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    // The last second time can represent: adding the early grace to it overflowed.
    let end_of_time = datetime!(9999-12-31 23:59:59 UTC);
    let late = store
        .start_transaction(&start_req("CB-1", 1, "A", end_of_time, Some(r.id)), &POLICY)
        .await
        .expect("a start at the end of time is recorded");
    assert_eq!(late.transaction.started_at, end_of_time);
    assert_eq!(late.transaction.reservation_id, None, "not within the slot");
    // Before anything RFC 3339 can write: taken to its first instant, so it can be shown.
    let early = store
        .start_transaction(
            &start_req("CB-1", 2, "B", datetime!(-9999-01-01 00:00 UTC), None),
            &StartPolicy {
                early_grace: Duration::MAX,
                ..POLICY
            },
        )
        .await
        .expect("a start before year 0 is recorded");
    assert_eq!(early.transaction.started_at, EARLIEST);
    let listed = store
        .transactions(&TransactionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    serde_json::to_value(&listed).expect("every stored instant can be written out");
    assert!(store.can_write());
    let next = store
        .book(&booking("CB-1", Some(2), &ada, slot(12 * H, 13 * H)))
        .await
        .expect("the ledger still writes");
    assert_eq!(next.status, ReservationStatus::Booked);
    assert_eq!(store.overlapping_reservations().await.unwrap(), vec![]);
}

async fn one_failing_write_fails_alone(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 4).await;
    let customers = [
        add_customer(&store, "Ada", &["A"]).await,
        add_customer(&store, "Bob", &["B"]).await,
    ];
    // A StartTransaction on connector 0 passes the store's door (the charger session refuses it
    // before, but the store must not trust that) and then fails in the database: transactions
    // live on connectors 1 and up. Sent among many concurrent bookings, it must fail alone.
    let mut tasks = Vec::new();
    for i in 0..120i64 {
        let store = store.clone();
        if i % 20 == 7 {
            tasks.push(tokio::spawn(async move {
                let poisoned = start_req("CB-1", 0, "A", at(10 * H), None);
                (i, store.start_transaction(&poisoned, &POLICY).await.is_ok())
            }));
        } else {
            let new = booking(
                "CB-1",
                Some(1 + (i % 4) as u32),
                &customers[(i % 2) as usize],
                slot(i * 10, i * 10 + 10),
            );
            tasks.push(tokio::spawn(
                async move { (i, store.book(&new).await.is_ok()) },
            ));
        }
    }
    for task in tasks {
        let (i, ok) = task.await.unwrap();
        assert_eq!(ok, i % 20 != 7, "request {i}");
    }
    let booked = store.reservations(&all_reservations()).await.unwrap();
    assert_eq!(booked.len(), 114);
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(of_kind(&events, kind::RESERVATION_BOOKED).len(), 114);
    assert!(of_kind(&events, kind::TRANSACTION_REFUSED).is_empty());
}

async fn charger_states_with_nul_are_kept_and_do_not_block_others(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    add_charger(&store, "CB-2", 1).await;
    let at = datetime!(2030-01-01 10:00 UTC);
    let boot = |vendor: &str| BootInfo {
        vendor: vendor.into(),
        model: "m\0".into(),
        serial_number: Some("s\0n".into()),
        charge_box_serial_number: None,
        firmware_version: None,
        iccid: None,
        imsi: None,
        meter_type: None,
        meter_serial_number: None,
    };
    let state = |id: &str, vendor: &str| ChargerState {
        id: cb(id),
        boot: Some((boot(vendor), at)),
        last_seen_at: Some(at),
        connector_status: vec![ConnectorStatus {
            connector_id: 1,
            status: "Available".into(),
            error_code: "NoError".into(),
            info: Some("i\0".into()),
            vendor_error_code: None,
            reported_at: Some(at),
            updated_at: at,
        }],
    };
    store
        .save_charger_states(&[state("CB-1", "v\u{0}"), state("CB-2", "fine")])
        .await
        .expect("a NUL in what a charger reported does not fail the flush");
    let one = store.charger(&cb("CB-1")).await.unwrap().unwrap();
    let vendor = one.boot.expect("CB-1's boot is kept").vendor;
    assert!(vendor == "v\u{0}" || vendor == "v\u{FFFD}", "{vendor:?}");
    let two = store.charger(&cb("CB-2")).await.unwrap().unwrap();
    assert_eq!(two.boot.unwrap().vendor, "fine");
    assert_eq!(two.last_seen_at, Some(at));
    assert_eq!(two.connector_status.len(), 1);
}

async fn start_on_a_connector_the_charger_lacks_is_refused(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    add_customer(&store, "Ada", &["A"]).await;
    let out = start(&store, &start_req("CB-1", 99, "A", at(10 * H), None)).await;
    let t = &out.transaction;
    assert_eq!(
        (t.status, t.authorization, t.customer_id),
        (TransactionStatus::Refused, Authorization::Invalid, None)
    );
    assert_eq!(out.refusal, Some("the charger has no such connector"));
    assert_eq!(store.transaction(t.id).await.unwrap().as_ref(), Some(t));
    let events = all_events(&store).await;
    assert_eq!(events.last().unwrap().kind, kind::TRANSACTION_REFUSED);
    // The connectors it has still work.
    let ok = start(&store, &start_req("CB-1", 2, "A", at(10 * H), None)).await;
    assert_eq!(ok.transaction.status, TransactionStatus::Active);
}

async fn second_start_on_a_connector_ends_the_stale_one(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    add_customer(&store, "Bob", &["B"]).await;
    let r = book(&store, booking("CB-1", Some(1), &ada, slot(10 * H, 11 * H))).await;
    let first = start(&store, &start_req("CB-1", 1, "A", at(10 * H), Some(r.id))).await;
    let readings = MeterReadings {
        charger_id: cb("CB-1"),
        connector_id: 1,
        transaction_id: Some(first.transaction.id),
        readings: vec![(at(10 * H + 20), 1500)],
    };
    store.record_meter_values(&readings).await.unwrap().unwrap();
    // The StopTransaction never came; Bob starts on the same connector after Ada's slot.
    let second = start(&store, &start_req("CB-1", 1, "B", at(11 * H + 5), None)).await;
    assert_eq!(second.transaction.status, TransactionStatus::Active);
    let stale = second.superseded.expect("the stale transaction is ended");
    assert_eq!(stale.id, first.transaction.id);
    let stored = store.transaction(stale.id).await.unwrap().unwrap();
    assert_eq!(stored, stale);
    assert_eq!(stored.status, TransactionStatus::Ended);
    assert_eq!(stored.stop_reason.as_deref(), Some(SUPERSEDED));
    assert_eq!(
        (stored.meter_stop_wh, stored.energy_wh, stored.stopped_at),
        (Some(1500), Some(500), Some(at(11 * H + 5)))
    );
    assert_eq!(
        store.reservation(r.id).await.unwrap().unwrap().status,
        ReservationStatus::ChargingEnded
    );
    let active = store
        .transactions(&TransactionFilter {
            status: Some(TransactionStatus::Active),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        active.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![second.transaction.id],
        "one ACTIVE transaction per connector"
    );
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let stopped = of_kind(&events, kind::TRANSACTION_STOPPED);
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].reservation_id, Some(r.id));
    assert!(
        stopped[0].seq < events.last().unwrap().seq,
        "ended before the new start"
    );
    assert_eq!(events.last().unwrap().kind, kind::TRANSACTION_STARTED);
}

async fn id_tag_charging_elsewhere_is_concurrent(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    add_charger(&store, "CB-2", 2).await;
    add_customer(&store, "Ada", &["Tag-A"]).await;
    let first = start(&store, &start_req("CB-1", 1, "Tag-A", at(10 * H), None)).await;
    assert_eq!(first.transaction.status, TransactionStatus::Active);
    for (charger, connector) in [("CB-2", 1), ("CB-1", 2)] {
        let again = start(
            &store,
            &start_req(charger, connector, "tag-a", at(10 * H + 1), None),
        )
        .await;
        assert_eq!(
            (again.transaction.status, again.transaction.authorization),
            (TransactionStatus::Refused, Authorization::ConcurrentTx),
            "{charger}/{connector}"
        );
    }
    store
        .stop_transaction(&stop_req("CB-1", first.transaction.id, 2000, 10 * H + 30))
        .await
        .unwrap();
    let after = start(
        &store,
        &start_req("CB-2", 1, "TAG-A", at(10 * H + 40), None),
    )
    .await;
    assert_eq!(after.transaction.status, TransactionStatus::Active);
}

async fn race_one_id_tag_on_eight_chargers_charges_once(store: Arc<dyn Store>) {
    for i in 0..8 {
        add_charger(&store, &format!("CB-{i}"), 1).await;
    }
    add_customer(&store, "Ada", &["A"]).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let req = start_req(&format!("CB-{i}"), 1, "A", at(10 * H), None);
            tokio::spawn(async move { store.start_transaction(&req, &POLICY).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let out = task.await.unwrap().expect("every start is answered");
        match out.transaction.authorization {
            Authorization::Accepted => accepted += 1,
            other => assert_eq!(other, Authorization::ConcurrentTx),
        }
    }
    assert_eq!(accepted, 1);
}

async fn implausible_meter_readings_are_not_energy(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    add_customer(&store, "Ada", &["A"]).await;
    add_customer(&store, "Bob", &["B"]).await;

    // meterStart at i32::MIN, then meterStop 0: not 2,147,483,648 Wh.
    let mut req = start_req("CB-1", 1, "A", at(10 * H), None);
    req.meter_start_wh = i64::from(i32::MIN);
    let negative = start(&store, &req).await.transaction;
    let stopped = store
        .stop_transaction(&stop_req("CB-1", negative.id, 0, 10 * H + 30))
        .await
        .unwrap();
    let StopOutcome::Stopped { transaction, .. } = stopped else {
        panic!("stopped");
    };
    assert_eq!(transaction.energy_wh, None);
    assert_eq!(
        store
            .transaction(negative.id)
            .await
            .unwrap()
            .unwrap()
            .energy_wh,
        None
    );

    // MeterValues: 1e30 Wh (saturated to i64::MAX by the charger edge) and a negative one are
    // not stored; a plausible one is; a newer one below it is a meter running backwards.
    let t = start(&store, &start_req("CB-1", 2, "B", at(10 * H), None))
        .await
        .transaction;
    let meter = |readings: Vec<(OffsetDateTime, i64)>| MeterReadings {
        charger_id: cb("CB-1"),
        connector_id: 2,
        transaction_id: Some(t.id),
        readings,
    };
    let huge = store
        .record_meter_values(&meter(vec![
            (at(10 * H + 1), i64::MAX),
            (at(10 * H + 2), -5),
        ]))
        .await
        .unwrap();
    assert!(huge.is_none(), "nothing stored: {huge:?}");
    let shown = store.transaction(t.id).await.unwrap().unwrap();
    assert_eq!((shown.last_meter_wh, shown.energy_wh), (None, None));
    let fine = store
        .record_meter_values(&meter(vec![
            (at(10 * H + 3), 1500),
            (at(10 * H + 4), i64::MAX),
        ]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (fine.last_meter_wh, fine.energy_wh),
        (Some(1500), Some(500))
    );
    let backwards = store
        .record_meter_values(&meter(vec![(at(10 * H + 5), 1200)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (backwards.last_meter_wh, backwards.energy_wh),
        (Some(1500), Some(500))
    );
    let ended = store
        .stop_transaction(&stop_req(
            "CB-1",
            t.id,
            9_200_000_000_000_000_000,
            10 * H + 30,
        ))
        .await
        .unwrap();
    let StopOutcome::Stopped { transaction, .. } = ended else {
        panic!("stopped");
    };
    assert_eq!(transaction.energy_wh, None, "beyond {MAX_PLAUSIBLE_WH} Wh");
}

/// A charger cannot lose a connector that holds a live reservation: the store refuses it in the
/// same transaction that would change it (a check before it could race a booking), and says
/// which connector. Once that reservation is cancelled, the charger shrinks.
async fn shrinking_never_strands_a_live_reservation(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 3).await;
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;
    let r = book(&store, booking("CB-1", Some(3), &ada, slot(H, 2 * H))).await;
    let shrink = |n: u32| ChargerPatch {
        connectors: Some(n),
        ..Default::default()
    };
    match store.update_charger(&cb("CB-1"), &shrink(2)).await {
        Err(StoreError::Conflict(why)) => assert!(why.contains("connector 3"), "{why}"),
        other => panic!("shrinking below a live reservation: {other:?}"),
    }
    let charger = store.charger(&cb("CB-1")).await.unwrap().unwrap();
    assert_eq!(charger.connectors, 3, "nothing changed");
    // Growing, or shrinking above it, is fine.
    assert!(
        store
            .update_charger(&cb("CB-1"), &shrink(4))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .update_charger(&cb("CB-1"), &shrink(3))
            .await
            .unwrap()
            .is_some()
    );
    store.cancel_reservation(r.id, None).await.unwrap();
    let shrunk = store
        .update_charger(&cb("CB-1"), &shrink(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shrunk.connectors, 1);
    // An unknown charger is still "no such charger", not a conflict.
    assert!(
        store
            .update_charger(&cb("CB-9"), &shrink(1))
            .await
            .unwrap()
            .is_none()
    );
}

async fn tags_change_over_their_life_and_starts_follow(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;
    let head = *store.head().borrow();
    let auth = store.id_tag_auth("tag-a").await.unwrap().unwrap();
    assert_eq!((auth.status, auth.expires_at), (TagStatus::Accepted, None));

    // Add a fleet card with an expiry; a taken tag conflicts and writes nothing.
    let expiry = at(9 * H);
    let added = store
        .change_customer(
            ada.id,
            &CustomerChange::AddTag(TagRecord {
                id_tag: "Van-7".into(),
                status: TagStatus::Accepted,
                expires_at: Some(expiry),
                parent_id_tag: Some("FLEET".into()),
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(added.id_tags, ["Tag-A", "Van-7"]);
    assert_eq!(added.tags[1].expires_at, Some(expiry));
    let bo = add_customer(&store, "Bo", &["Tag-B"]).await;
    let taken = store
        .change_customer(
            bo.id,
            &CustomerChange::AddTag(TagRecord {
                id_tag: "VAN-7".into(),
                status: TagStatus::Accepted,
                expires_at: None,
                parent_id_tag: None,
            }),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    // Block it: the ledger's own start rules refuse it as Blocked.
    let blocked = store
        .change_customer(
            ada.id,
            &CustomerChange::UpdateTag {
                key: "tag-a".into(),
                status: Some(TagStatus::Blocked),
                expires_at: None,
                parent_id_tag: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blocked.tags[0].status, TagStatus::Blocked);
    let out = start(&store, &start_req("CB-1", 1, "TAG-A", at(10 * H), None)).await;
    assert_eq!(out.transaction.authorization, Authorization::Blocked);
    assert_eq!(out.transaction.customer_id, None);
    // One whose expiry has passed is refused as Expired (and `Some(None)` clears the parent).
    store
        .change_customer(
            ada.id,
            &CustomerChange::UpdateTag {
                key: "van-7".into(),
                status: None,
                expires_at: Some(Some(OffsetDateTime::now_utc() - Duration::minutes(1))),
                parent_id_tag: Some(None),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let auth = store.id_tag_auth("VAN-7").await.unwrap().unwrap();
    assert_eq!(auth.parent_id_tag, None);
    let out = start(&store, &start_req("CB-1", 2, "VAN-7", at(10 * H), None)).await;
    assert_eq!(out.transaction.authorization, Authorization::Expired);

    // A tag of another customer, or no such customer: nothing changes.
    let not_theirs = store
        .change_customer(
            bo.id,
            &CustomerChange::RemoveTag {
                key: "van-7".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(not_theirs, None);
    assert_eq!(
        store
            .change_customer(999_999, &CustomerChange::Rename("X".into()))
            .await
            .unwrap(),
        None
    );
    let removed = store
        .change_customer(
            ada.id,
            &CustomerChange::RemoveTag {
                key: "van-7".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.id_tags, ["Tag-A"]);
    assert_eq!(store.id_tag_auth("van-7").await.unwrap(), None);

    // Every change is a CustomerUpdated event of that customer.
    let events = store.events_after(head, 100).await.unwrap();
    let updated = of_kind(&events, EventKind::CustomerUpdated);
    assert_eq!(updated.len(), 4);
    assert!(updated.iter().all(|e| e.customer_id == Some(ada.id)));
}

/// Unknown chargers (api.md `unknown_chargers`): the first Boot records one pending (or accepted)
/// with what it said, once, whoever races; the state is listed, filtered and paged; a pending or
/// rejected charger cannot be booked; the operator's verdicts are events, accept applies its
/// patch, and reject is refused while live reservations hold the charger.
async fn unknown_chargers_pending_accepted_rejected(store: Arc<dyn Store>) {
    let boot = BootInfo {
        vendor: "Schneider Electric".into(),
        model: "EVlink".into(),
        charge_box_serial_number: Some("EVB1A22P4RI3N3ERS2G5XX1234567".into()),
        firmware_version: Some("3.4.0.2".into()),
        ..Default::default()
    };
    let booted = at(-5);
    assert_eq!(store.charger_registration(&cb("UK-1")).await.unwrap(), None);
    assert_eq!(
        store
            .record_unknown_charger(&cb("UK-1"), RegistrationState::Pending, &boot, booted)
            .await
            .unwrap(),
        RegistrationState::Pending
    );
    // Recorded once: a second Boot (or another node's) finds it, whatever it asks for.
    assert_eq!(
        store
            .record_unknown_charger(&cb("UK-1"), RegistrationState::Accepted, &boot, booted)
            .await
            .unwrap(),
        RegistrationState::Pending
    );
    assert_eq!(
        store.charger_registration(&cb("UK-1")).await.unwrap(),
        Some(RegistrationState::Pending)
    );
    let pending = store.charger(&cb("UK-1")).await.unwrap().unwrap();
    assert_eq!(pending.state, RegistrationState::Pending);
    assert_eq!(pending.connectors, 1);
    assert!(pending.password_hash.is_none());
    assert_eq!(pending.boot.as_ref(), Some(&boot));
    assert_eq!(pending.last_boot_at, Some(booted));

    // Accept mode registers it at once; operator-registered chargers are accepted.
    assert_eq!(
        store
            .record_unknown_charger(&cb("UK-2"), RegistrationState::Accepted, &boot, booted)
            .await
            .unwrap(),
        RegistrationState::Accepted
    );
    add_charger(&store, "UK-3", 2).await;
    assert_eq!(
        store.charger_registration(&cb("UK-3")).await.unwrap(),
        Some(RegistrationState::Accepted)
    );
    let in_state = |state, after: Option<&str>, limit| Page {
        after: after.map(str::to_string),
        limit,
        state,
    };
    let listed = |list: Vec<echarging::domain::charger::ChargerRecord>| {
        list.iter().map(|c| c.id.to_string()).collect::<Vec<_>>()
    };
    let accepted = store
        .chargers(&in_state(Some(RegistrationState::Accepted), None, 10))
        .await
        .unwrap();
    assert_eq!(listed(accepted), ["UK-2", "UK-3"]);
    let accepted = store
        .chargers(&in_state(
            Some(RegistrationState::Accepted),
            Some("UK-2"),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(listed(accepted), ["UK-3"]);
    let pending_list = store
        .chargers(&in_state(Some(RegistrationState::Pending), None, 10))
        .await
        .unwrap();
    assert_eq!(listed(pending_list), ["UK-1"]);
    assert_eq!(
        listed(store.chargers(&in_state(None, None, 10)).await.unwrap()),
        ["UK-1", "UK-2", "UK-3"]
    );

    // A pending charger is not bookable, with or without a connector named.
    let ada = add_customer(&store, "Ada", &["UK-ADA"]).await;
    for connector in [Some(1), None] {
        match store
            .book(&booking("UK-1", connector, &ada, slot(10, 70)))
            .await
        {
            Err(BookError::NotInService(id, RegistrationState::Pending)) => {
                assert_eq!(id, cb("UK-1"))
            }
            other => panic!("booking a pending charger: {other:?}"),
        }
    }

    // The operator accepts it with a name and two connectors: bookable on connector 2.
    let patch = ChargerPatch {
        name: Some(Some("Bay 7".into())),
        connectors: Some(2),
        password_hash: None,
        security_profile: None,
    };
    let accepted = store
        .set_charger_registration(&cb("UK-1"), RegistrationState::Accepted, &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.state, RegistrationState::Accepted);
    assert_eq!(accepted.name.as_deref(), Some("Bay 7"));
    assert_eq!(accepted.connectors, 2);
    assert_eq!(accepted.boot.as_ref(), Some(&boot), "what it said is kept");
    let r = book(&store, booking("UK-1", Some(2), &ada, slot(10, 70))).await;

    // Rejecting is refused while that reservation is live, and allowed once it is cancelled.
    let none = ChargerPatch::default();
    match store
        .set_charger_registration(&cb("UK-1"), RegistrationState::Rejected, &none)
        .await
    {
        Err(StoreError::Conflict(text)) => assert!(text.contains("live reservation"), "{text}"),
        other => panic!("rejecting a booked charger: {other:?}"),
    }
    store.cancel_reservation(r.id, None).await.unwrap();
    let rejected = store
        .set_charger_registration(&cb("UK-1"), RegistrationState::Rejected, &none)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rejected.state, RegistrationState::Rejected);
    assert_eq!(rejected.connectors, 2);
    match store
        .book(&booking("UK-1", Some(1), &ada, slot(100, 160)))
        .await
    {
        Err(BookError::NotInService(_, RegistrationState::Rejected)) => {}
        other => panic!("booking a rejected charger: {other:?}"),
    }
    assert!(
        store
            .set_charger_registration(&cb("UK-NONE"), RegistrationState::Accepted, &none)
            .await
            .unwrap()
            .is_none()
    );

    // Each step is in the log, the charger's state in its data.
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let of_uk1: Vec<(EventKind, String)> = events
        .iter()
        .filter(|e| e.charger_id.as_ref() == Some(&cb("UK-1")))
        .filter(|e| e.reservation_id.is_none())
        .map(|e| (e.kind, e.data["state"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        of_uk1,
        [
            (kind::CHARGER_PENDING, "pending".to_string()),
            (kind::CHARGER_ACCEPTED, "accepted".to_string()),
            (kind::CHARGER_REJECTED, "rejected".to_string()),
        ]
    );
    let first = &of_kind(&events, kind::CHARGER_PENDING)[0].data;
    assert_eq!(first["vendor"], "Schneider Electric");
    assert_eq!(
        first["chargeBoxSerialNumber"],
        "EVB1A22P4RI3N3ERS2G5XX1234567"
    );
    let uk2: Vec<EventKind> = events
        .iter()
        .filter(|e| e.charger_id.as_ref() == Some(&cb("UK-2")))
        .map(|e| e.kind)
        .collect();
    assert_eq!(uk2, [kind::CHARGER_REGISTERED]);
}

/// `after` pages newest first: each page holds the ids below the cursor, filters apply within the
/// page, and transactions written between pages do not shift the later ones.
async fn transactions_page_by_cursor(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["Tag-A"]).await;
    let mut all = Vec::new();
    let mut ada_ids = Vec::new();
    for n in 0..25 {
        let tag = if n % 5 == 0 { "Tag-A" } else { "NOBODY" };
        let out = start(
            &store,
            &start_req("CB-1", 1 + n % 2, tag, at(10 + i64::from(n)), None),
        )
        .await;
        if n % 5 == 0 {
            store
                .stop_transaction(&stop_req(
                    "CB-1",
                    out.transaction.id,
                    2000,
                    11 + i64::from(n),
                ))
                .await
                .unwrap();
            ada_ids.push(out.transaction.id);
        }
        all.push(out.transaction.id);
    }
    all.reverse();
    ada_ids.reverse();
    let list = |f: TransactionFilter| {
        let store = store.clone();
        async move {
            let found = store.transactions(&f).await.unwrap();
            found.iter().map(|t| t.id).collect::<Vec<_>>()
        }
    };
    let paged = |f: TransactionFilter| {
        let list = &list;
        async move {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = list(TransactionFilter { after, ..f.clone() }).await;
                let Some(&last) = page.last() else { break };
                seen.extend(page);
                after = Some(last);
            }
            seen
        }
    };
    let by10 = TransactionFilter {
        limit: 10,
        ..TransactionFilter::default()
    };
    assert_eq!(list(by10.clone()).await, all[..10]);
    assert_eq!(
        list(TransactionFilter {
            after: Some(all[9]),
            ..by10.clone()
        })
        .await,
        all[10..20]
    );
    assert_eq!(
        list(TransactionFilter {
            after: Some(all[19]),
            ..by10.clone()
        })
        .await,
        all[20..]
    );
    assert_eq!(
        list(TransactionFilter {
            after: Some(all[24]),
            ..by10.clone()
        })
        .await,
        Vec::<i32>::new()
    );
    assert_eq!(paged(by10.clone()).await, all);
    // A cursor need not be a listed id; any i32 is a position.
    assert_eq!(
        list(TransactionFilter {
            after: Some(i32::MAX),
            ..by10.clone()
        })
        .await,
        all[..10]
    );
    assert_eq!(
        list(TransactionFilter {
            after: Some(i32::MIN),
            ..by10.clone()
        })
        .await,
        Vec::<i32>::new()
    );
    // Filters hold on every page.
    let ada_by2 = TransactionFilter {
        customer_id: Some(ada.id),
        status: Some(TransactionStatus::Ended),
        limit: 2,
        ..TransactionFilter::default()
    };
    assert_eq!(paged(ada_by2).await, ada_ids);
    let refused_by3 = TransactionFilter {
        status: Some(TransactionStatus::Refused),
        charger_id: Some(cb("CB-1")),
        limit: 3,
        ..TransactionFilter::default()
    };
    let refused = paged(refused_by3).await;
    assert_eq!(refused.len(), 20);
    assert!(refused.iter().all(|id| !ada_ids.contains(id)));
    // A start between pages goes before page one; the next page is unchanged.
    let first = list(by10.clone()).await;
    let late = start(&store, &start_req("CB-1", 2, "NOBODY", at(100), None)).await;
    assert!(late.transaction.id > all[0]);
    assert_eq!(
        list(TransactionFilter {
            after: first.last().copied(),
            ..by10
        })
        .await,
        all[10..20]
    );
}

/// A configuration snapshot replaces the last one, a change in effect updates its key and is
/// logged, one not yet in effect is only logged, and the snapshot goes with its charger.
async fn configuration_snapshots_and_changes(store: Arc<dyn Store>) {
    use echarging::domain::configuration::{
        ConfigurationChange, ConfigurationKey, ConfigurationSnapshot,
    };
    add_charger(&store, "CP-CFG", 1).await;
    let id = cb("CP-CFG");
    assert_eq!(store.configuration(&id).await.unwrap(), None);
    let key = |k: &str, v: Option<&str>, readonly| ConfigurationKey {
        key: k.into(),
        value: v.map(Into::into),
        readonly,
    };
    let first = ConfigurationSnapshot {
        fetched_at: datetime!(2026-11-24 05:46:01.123 UTC),
        keys: vec![key("HeartbeatInterval", Some("300"), false)],
        unknown_keys: vec![],
    };
    store.save_configuration(&id, &first).await.unwrap();
    assert_eq!(
        store.configuration(&id).await.unwrap().as_ref(),
        Some(&first)
    );
    let second = ConfigurationSnapshot {
        fetched_at: datetime!(2026-11-24 06:00:00 UTC),
        keys: vec![
            key("HeartbeatInterval", Some("300"), false),
            key("NumberOfConnectors", Some("1"), true),
            key("AuthorizationKey", None, false),
        ],
        unknown_keys: vec!["VendorX".into()],
    };
    store.save_configuration(&id, &second).await.unwrap();
    assert_eq!(
        store.configuration(&id).await.unwrap().as_ref(),
        Some(&second)
    );

    let before = all_events(&store).await.len();
    let change = |key: &str, value: &str, status: &str| ConfigurationChange {
        key: key.into(),
        value: value.into(),
        status: status.into(),
    };
    store
        .record_configuration_change(&id, &change("heartbeatinterval", "60", "Accepted"))
        .await
        .unwrap();
    store
        .record_configuration_change(
            &id,
            &change("MeterValueSampleInterval", "30", "RebootRequired"),
        )
        .await
        .unwrap();
    let now = store.configuration(&id).await.unwrap().unwrap();
    assert_eq!(now.fetched_at, second.fetched_at);
    assert_eq!(now.keys[0], key("HeartbeatInterval", Some("60"), false));
    assert_eq!(now.keys.len(), 3, "a change not in effect adds no key");
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let logged = &events[before..];
    assert_eq!(
        kinds(logged),
        [kind::CONFIGURATION_CHANGED, kind::CONFIGURATION_CHANGED]
    );
    assert_eq!(logged[0].charger_id, Some(id.clone()));
    assert_eq!(
        logged[1].data,
        serde_json::json!({"chargerId": "CP-CFG", "key": "MeterValueSampleInterval",
            "value": "30", "status": "RebootRequired"})
    );

    // Gone with the charger; a late save for a deleted charger keeps nothing.
    assert!(store.delete_charger(&id).await.unwrap());
    assert_eq!(store.configuration(&id).await.unwrap(), None);
    store.save_configuration(&id, &second).await.unwrap();
    assert_eq!(store.configuration(&id).await.unwrap(), None);
}

fn availability(
    connector_id: u32,
    availability: Availability,
    scheduled: bool,
) -> AvailabilityChange {
    AvailabilityChange {
        connector_id,
        availability,
        scheduled,
        at: at(10 * H),
    }
}

async fn availability_takes_connectors_out_of_service(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 2).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let over = book(&store, booking("CB-1", Some(2), &ada, slot(8 * H, 9 * H))).await;
    let current = book(&store, booking("CB-1", Some(2), &ada, slot(9 * H, 11 * H))).await;
    let later = book(&store, booking("CB-1", Some(2), &ada, slot(12 * H, 13 * H))).await;
    let other = book(&store, booking("CB-1", Some(1), &ada, slot(12 * H, 13 * H))).await;
    let before = all_events(&store).await.len();

    // Connector 2 Inoperative at 10:00: the BOOKED ones not over show UNAVAILABLE.
    let changed = store
        .record_availability_change(
            &cb("CB-1"),
            &availability(2, Availability::Inoperative, false),
        )
        .await
        .unwrap();
    assert_eq!(ids(&changed), [current.id, later.id]);
    assert!(
        changed
            .iter()
            .all(|r| r.charger_ack == ChargerAck::Unavailable)
    );
    for r in &changed {
        assert_eq!(store.reservation(r.id).await.unwrap().as_ref(), Some(r));
    }
    for r in [&over, &other] {
        assert_eq!(store.reservation(r.id).await.unwrap().as_ref(), Some(r));
    }
    let events = all_events(&store).await;
    assert_gap_free(&events);
    let mut new_kinds = kinds(&events[before..]);
    new_kinds.sort_by_key(|k| k.as_str());
    assert_eq!(
        new_kinds,
        [
            kind::CONNECTOR_AVAILABILITY_CHANGED,
            kind::RESERVATION_ACK_CHANGED,
            kind::RESERVATION_ACK_CHANGED
        ]
    );
    let logged = of_kind(&events, kind::CONNECTOR_AVAILABILITY_CHANGED);
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].charger_id, Some(cb("CB-1")));
    assert_eq!(logged[0].data["connectorId"], 2);
    assert_eq!(logged[0].data["type"], "Inoperative");
    assert_eq!(logged[0].data["status"], "Accepted");
    let shown = store.availability(&cb("CB-1")).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (
            shown[0].connector_id,
            shown[0].availability,
            shown[0].scheduled,
            shown[0].since
        ),
        (2, Availability::Inoperative, false, at(10 * H))
    );

    // New bookings on 2 are refused; without a connector, 1 is taken; when 1 is taken too,
    // refused as out of service.
    let free = slot(14 * H, 15 * H);
    assert!(matches!(
        store.book(&booking("CB-1", Some(2), &ada, free)).await,
        Err(BookError::OutOfService(2))
    ));
    let on_one = book(&store, booking("CB-1", None, &ada, free)).await;
    assert_eq!(on_one.connector_id, 1);
    assert!(matches!(
        store.book(&booking("CB-1", None, &ada, free)).await,
        Err(BookError::Overlap(_))
    ));
    // Unknown connectors stay unknown.
    assert!(matches!(
        store.book(&booking("CB-1", Some(3), &ada, free)).await,
        Err(BookError::UnknownConnector(3))
    ));

    // Operative again: bookable, and the marked ones go back to PENDING.
    let back = store
        .record_availability_change(
            &cb("CB-1"),
            &availability(2, Availability::Operative, false),
        )
        .await
        .unwrap();
    assert_eq!(ids(&back), [current.id, later.id]);
    assert!(back.iter().all(|r| r.charger_ack == ChargerAck::Pending));
    let on_two = book(&store, booking("CB-1", Some(2), &ada, free)).await;
    assert_eq!(on_two.connector_id, 2);
    let mut every = vec![current.id, later.id, other.id, on_one.id, on_two.id];
    every.sort();

    // The whole charger, scheduled: every connector out, also for a booking without one.
    let whole = store
        .record_availability_change(
            &cb("CB-1"),
            &availability(0, Availability::Inoperative, true),
        )
        .await
        .unwrap();
    assert_eq!(ids(&whole), every);
    let next = slot(16 * H, 17 * H);
    for connector in [None, Some(1), Some(2)] {
        assert!(matches!(
            store.book(&booking("CB-1", connector, &ada, next)).await,
            Err(BookError::OutOfService(_))
        ));
    }
    // A connector made Operative stays out while its charger as a whole is Inoperative.
    let one = store
        .record_availability_change(
            &cb("CB-1"),
            &availability(1, Availability::Operative, false),
        )
        .await
        .unwrap();
    assert!(one.is_empty());
    assert!(matches!(
        store.book(&booking("CB-1", Some(1), &ada, next)).await,
        Err(BookError::OutOfService(1))
    ));
    // The charger Operative: all of it.
    let all = store
        .record_availability_change(
            &cb("CB-1"),
            &availability(0, Availability::Operative, false),
        )
        .await
        .unwrap();
    assert_eq!(ids(&all), every);
    assert!(
        store
            .availability(&cb("CB-1"))
            .await
            .unwrap()
            .iter()
            .all(|a| a.availability == Availability::Operative)
    );
    assert_eq!(
        book(&store, booking("CB-1", None, &ada, next))
            .await
            .connector_id,
        1
    );
    let events = all_events(&store).await;
    assert_gap_free(&events);
    assert_eq!(
        of_kind(&events, kind::CONNECTOR_AVAILABILITY_CHANGED).len(),
        5
    );

    // An unknown charger: nothing recorded.
    let none = store
        .record_availability_change(
            &cb("CB-NONE"),
            &availability(1, Availability::Inoperative, false),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(all_events(&store).await.len(), events.len());
}

/// Bookings racing a ChangeAvailability Inoperative: each either lands before it (and is then
/// marked UNAVAILABLE) or is refused; none is left BOOKED and unmarked on the connector.
async fn race_bookings_and_inoperative_leave_none_unmarked(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 1).await;
    let ada = add_customer(&store, "Ada", &["A"]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let booker = store.clone();
        let new = booking(
            "CB-1",
            Some(1),
            &ada,
            slot(11 * H + i * 10, 11 * H + i * 10 + 5),
        );
        tasks.spawn(async move { booker.book(&new).await.map(|_| ()) });
        if i == 16 {
            let store = store.clone();
            tasks.spawn(async move {
                store
                    .record_availability_change(
                        &cb("CB-1"),
                        &availability(1, Availability::Inoperative, false),
                    )
                    .await
                    .map(|_| ())
                    .map_err(BookError::from)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(()) | Err(BookError::OutOfService(1)) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let left = store.reservations(&all_reservations()).await.unwrap();
    assert!(
        left.iter()
            .all(|r| r.charger_ack == ChargerAck::Unavailable),
        "every booking that landed is marked: {left:?}"
    );
}

/// `delete_customer`: refused with nothing written while charging; then in one write its future
/// BOOKED reservations are cancelled (a CancelReservation owed where the charger may hold one),
/// its transactions lose their customer but keep their idTag, its past reservations stay, its
/// tags and token are gone, and CustomerDeleted (only the id) closes the write.
async fn deleting_a_customer_cancels_anonymises_and_forgets(store: Arc<dyn Store>) {
    add_charger(&store, "CD-1", 2).await;
    let ann = add_customer(&store, "Ann", &["ANN-1"]).await;
    let bea = add_customer(&store, "Bea", &["BEA-1"]).await;
    let past = TimeSlot::parse(
        datetime!(2020-01-01 10:00 UTC),
        datetime!(2020-01-01 11:00 UTC),
    )
    .unwrap();
    let old = book(&store, booking("CD-1", Some(1), &ann, past)).await;
    let held = book(&store, booking("CD-1", Some(1), &ann, slot(10 * H, 11 * H))).await;
    store
        .record_charger_ack(held.id, ChargerAck::Accepted)
        .await
        .unwrap();
    let unsent = book(&store, booking("CD-1", Some(2), &ann, slot(12 * H, 13 * H))).await;
    let beas = book(&store, booking("CD-1", Some(2), &bea, slot(14 * H, 15 * H))).await;

    // Charging: refused, nothing written.
    let out = start(&store, &start_req("CD-1", 1, "ANN-1", at(20 * H), None)).await;
    assert_eq!(out.transaction.authorization, Authorization::Accepted);
    let tx = out.transaction.id;
    let head = *store.head().borrow();
    assert_eq!(
        store.delete_customer(ann.id).await.unwrap(),
        CustomerDeletion::Charging
    );
    assert_eq!(*store.head().borrow(), head);
    assert!(store.customer(ann.id).await.unwrap().is_some());
    let r = store.reservation(held.id).await.unwrap().unwrap();
    assert_eq!(r.status, ReservationStatus::Booked);
    store
        .stop_transaction(&stop_req("CD-1", tx, 5000, 21 * H))
        .await
        .unwrap();

    let deleted = store.delete_customer(ann.id).await.unwrap();
    let CustomerDeletion::Deleted { cancelled } = deleted else {
        panic!("{deleted:?}");
    };
    assert_eq!(ids(&cancelled), [held.id, unsent.id]);
    assert!(
        cancelled
            .iter()
            .all(|r| r.status == ReservationStatus::Cancelled)
    );
    for id in [held.id, unsent.id] {
        let r = store.reservation(id).await.unwrap().unwrap();
        assert_eq!(r.status, ReservationStatus::Cancelled);
    }
    // Only the reservation the charger may hold is owed a CancelReservation.
    let agenda = store
        .dispatch_agenda(OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(ids(&agenda.cancels_owed), [held.id]);
    assert_eq!(ids(&agenda.booked), [beas.id]);
    // The ended slot stays as it was, keeping the number of a customer that is gone.
    let kept = store.reservation(old.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.status, kept.customer_id),
        (ReservationStatus::Booked, ann.id)
    );
    // The transaction stays, anonymised.
    let t = store.transaction(tx).await.unwrap().unwrap();
    assert_eq!(t.customer_id, None);
    assert_eq!(t.id_tag, "ANN-1");
    assert_eq!(t.status, TransactionStatus::Ended);
    // The customer, its tags and its token are gone; Bea is untouched.
    assert_eq!(store.customer(ann.id).await.unwrap(), None);
    assert_eq!(store.id_tag_auth("ann-1").await.unwrap(), None);
    assert_eq!(
        store
            .customer_by_token(&token_digest("token of Ann"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.customer(bea.id).await.unwrap().unwrap(), bea);
    // Cancellations then the deletion, carrying only the id.
    let events = store.events_after(head, 100).await.unwrap();
    let tail: Vec<EventKind> = kinds(&events).into_iter().rev().take(3).rev().collect();
    assert_eq!(
        tail,
        [
            kind::RESERVATION_CANCELLED,
            kind::RESERVATION_CANCELLED,
            kind::CUSTOMER_DELETED
        ]
    );
    let gone = events.last().unwrap();
    assert_eq!(gone.customer_id, Some(ann.id));
    assert_eq!(gone.data, data::customer_deleted(ann.id));
    assert_gap_free(&all_events(&store).await);

    // Again, or never there: NotFound. The tag is free for someone new.
    assert_eq!(
        store.delete_customer(ann.id).await.unwrap(),
        CustomerDeletion::NotFound
    );
    assert_eq!(
        store.delete_customer(999_999).await.unwrap(),
        CustomerDeletion::NotFound
    );
    add_customer(&store, "Ann II", &["ANN-1"]).await;
}

/// A deletion racing the customer's own bookings: each booking either lands before it (and is
/// cancelled by it) or is refused as an unknown customer; none stays BOOKED for no one.
async fn race_delete_and_bookings_leave_no_live_booking(store: Arc<dyn Store>) {
    add_charger(&store, "RD-1", 8).await;
    for round in 0..4i64 {
        let c = add_customer(
            &store,
            &format!("Racer {round}"),
            &[&format!("RACE-{round}")],
        )
        .await;
        let mut bookers = Vec::new();
        for connector in 1..=8u32 {
            let store = store.clone();
            let new = booking(
                "RD-1",
                Some(connector),
                &c,
                slot(round * 2 * H, round * 2 * H + H),
            );
            bookers.push(tokio::spawn(async move { store.book(&new).await }));
        }
        let deleted = store.delete_customer(c.id).await.unwrap();
        assert!(
            matches!(deleted, CustomerDeletion::Deleted { .. }),
            "{deleted:?}"
        );
        for b in bookers {
            match b.await.unwrap() {
                Ok(_) | Err(BookError::UnknownCustomer(_)) => {}
                Err(e) => panic!("booking racing a deletion: {e:?}"),
            }
        }
        let live = store
            .reservations(&ReservationFilter {
                customer_id: Some(c.id),
                ..all_reservations()
            })
            .await
            .unwrap();
        assert!(
            live.iter()
                .all(|r| r.status == ReservationStatus::Cancelled),
            "{live:?}"
        );
    }
}

/// Security events are kept per charger, newest first, paged below an id; what was written
/// reads back exactly (millisecond instants, the peer address, NUL in a charger's text), and a
/// deleted charger's trail stays (it is an audit trail, so no foreign key).
async fn security_events_newest_first_paged_and_kept(store: Arc<dyn Store>) {
    use echarging::domain::security::{SecurityEvent, Source};
    let id = cb("CP-SEC");
    add_charger(&store, "CP-SEC", 1).await;
    assert!(
        store
            .security_events(&id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let t = |min| at(min);
    let peer: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    for n in 0..5i64 {
        let event = SecurityEvent {
            source: if n % 2 == 0 {
                Source::Charger
            } else {
                Source::Server
            },
            kind: format!("Kind{n}"),
            at: t(n),
            received_at: t(n + 100),
            tech_info: (n == 3).then(|| "with\0nul".to_string()),
            peer: (n == 4).then_some(peer),
        };
        store.record_security_event(&id, &event).await.unwrap();
    }
    // Another charger's events are not this one's, and an unregistered id may have a trail.
    let stranger = cb("CP-NEVER-REGISTERED");
    let e = SecurityEvent::new(Source::Server, "Refused", t(9), t(9), None, None);
    store.record_security_event(&stranger, &e).await.unwrap();

    let all = store.security_events(&id, None, 10).await.unwrap();
    let kinds: Vec<&str> = all.iter().map(|(_, e)| e.kind.as_str()).collect();
    assert_eq!(kinds, ["Kind4", "Kind3", "Kind2", "Kind1", "Kind0"]);
    assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "ids descend");
    let (_, newest) = &all[0];
    assert_eq!(newest.source, Source::Charger);
    assert_eq!(newest.at, t(4));
    assert_eq!(newest.received_at, t(104));
    assert_eq!(newest.peer, Some(peer));
    assert_eq!(all[1].1.source, Source::Server);
    assert!(all[1].1.tech_info.as_deref().unwrap().starts_with("with"));
    assert_eq!(all[2].1.tech_info, None);

    let page = store.security_events(&id, None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let next = store
        .security_events(&id, Some(page[1].0), 2)
        .await
        .unwrap();
    let kinds: Vec<&str> = next.iter().map(|(_, e)| e.kind.as_str()).collect();
    assert_eq!(kinds, ["Kind2", "Kind1"]);

    assert!(store.delete_charger(&id).await.unwrap());
    assert_eq!(store.security_events(&id, None, 10).await.unwrap().len(), 5);
    assert_eq!(
        store
            .security_events(&stranger, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// One flush carries many chargers and connectors (the store writes them in one statement
/// each): every connector ends with the state of the last flush that carried it, every charger
/// with its latest sighting, and a charger deleted meanwhile is skipped without failing the rest.
async fn a_flush_of_many_chargers_keeps_each_connectors_last_state(store: Arc<dyn Store>) {
    let at = datetime!(2030-01-01 10:00 UTC);
    let status = |connector_id: u32, status: &'static str, min: i64| ConnectorStatus {
        connector_id,
        status: status.into(),
        error_code: "NoError".into(),
        info: (connector_id == 2).then(|| format!("info {min}")),
        vendor_error_code: None,
        reported_at: Some(at + Duration::minutes(min)),
        updated_at: at + Duration::minutes(min),
    };
    let ids: Vec<String> = (0..70).map(|i| format!("CB-{i:02}")).collect();
    for id in &ids {
        add_charger(&store, id, 3).await;
    }
    let first: Vec<ChargerState> = ids
        .iter()
        .map(|id| ChargerState {
            id: cb(id),
            last_seen_at: Some(at + Duration::minutes(1)),
            boot: None,
            connector_status: vec![
                status(1, "Available", 1),
                status(2, "Preparing", 1),
                status(3, "Available", 1),
            ],
        })
        .chain(std::iter::once(ChargerState {
            id: cb("deleted-meanwhile"),
            last_seen_at: Some(at),
            boot: None,
            connector_status: vec![status(1, "Available", 1)],
        }))
        .collect();
    store.save_charger_states(&first).await.unwrap();
    // The next flush: the even chargers' connector 2 started charging; every charger was seen
    // again, the odd ones with an older timestamp (which must not move last_seen back).
    let second: Vec<ChargerState> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ChargerState {
            id: cb(id),
            last_seen_at: Some(at + Duration::minutes(if i % 2 == 0 { 2 } else { 0 })),
            boot: None,
            connector_status: if i % 2 == 0 {
                vec![status(2, "Charging", 2)]
            } else {
                vec![]
            },
        })
        .collect();
    store.save_charger_states(&second).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let c = store.charger(&cb(id)).await.unwrap().unwrap();
        let (seen, two) = if i % 2 == 0 {
            (2, status(2, "Charging", 2))
        } else {
            (1, status(2, "Preparing", 1))
        };
        assert_eq!(c.last_seen_at, Some(at + Duration::minutes(seen)), "{id}");
        assert_eq!(
            c.connector_status,
            vec![status(1, "Available", 1), two, status(3, "Available", 1)],
            "{id}"
        );
    }
    assert!(
        store
            .charger(&cb("deleted-meanwhile"))
            .await
            .unwrap()
            .is_none()
    );
}

/// What the console's load chart samples: the meters of the running transactions only, the
/// newest first, at most `limit` of them.
async fn running_meters_are_the_running_transactions_newest_first(store: Arc<dyn Store>) {
    add_charger(&store, "CB-1", 3).await;
    add_customer(&store, "Ada", &["A", "B", "C"]).await;
    let a = start(&store, &start_req("CB-1", 1, "A", at(10 * H), None)).await;
    let b = start(&store, &start_req("CB-1", 2, "B", at(10 * H + 1), None)).await;
    let c = start(&store, &start_req("CB-1", 3, "C", at(10 * H + 2), None)).await;
    store
        .record_meter_values(&MeterReadings {
            charger_id: cb("CB-1"),
            connector_id: 2,
            transaction_id: Some(b.transaction.id),
            readings: vec![(at(10 * H + 5), 1500)],
        })
        .await
        .unwrap()
        .expect("b runs");
    store
        .stop_transaction(&stop_req("CB-1", c.transaction.id, 1200, 10 * H + 6))
        .await
        .unwrap();
    let running = store.running_meters(10).await.unwrap();
    assert_eq!(
        running,
        vec![
            RunningMeter {
                id: b.transaction.id,
                meter_start_wh: 1000,
                started_at: at(10 * H + 1),
                last_meter_wh: Some(1500),
                last_meter_at: Some(at(10 * H + 5)),
            },
            RunningMeter {
                id: a.transaction.id,
                meter_start_wh: 1000,
                started_at: at(10 * H),
                last_meter_wh: None,
                last_meter_at: None,
            },
        ]
    );
    assert_eq!(store.running_meters(1).await.unwrap(), running[..1]);
}
