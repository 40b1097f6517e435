//! What the central system answers to each request a charger sends. Heartbeat and
//! StatusNotification update the in-memory live state (written behind, never per frame);
//! BootNotification reads the charger's registration state from the ledger (and records an
//! unknown charger, per `unknown_chargers`), answers with it, and only an Accepted one marks the
//! connection booted and wakes the dispatcher; the transaction messages go to the ledger and are
//! committed before the answer, so an acknowledged transaction survives a crash. A ledger that cannot be reached is
//! answered with an InternalError CALLERROR, which makes the charger retry: never a false
//! Accepted. The security extension's notifications are tracked like the firmware ones, and its
//! SecurityEventNotification and SignCertificate are handed to `security`. Every arm answers:
//! nothing drops the socket.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{debug, error, info, warn};

use super::Central;
use super::dispatcher::Signal;
use super::live::ChargerLive;
use crate::booking::store::StoreError;
use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerPatch, ConnectorStatus, MAX_CONNECTORS, RegistrationState,
};
use crate::domain::customer::TagAuth;
use crate::domain::reservation::ChargerAck;
use crate::domain::security::{SecurityEvent, Source};
use crate::domain::transaction::{
    Authorization, MeterReadings, StartPolicy, StartRequest, StopOutcome, StopRequest,
    TransactionStatus,
};
use crate::ocpp::v16::{self as ocpp, ChargePointRequest as Req, ErrorCode, messages::*, types::*};
use crate::settings::UnknownChargers;
use crate::telemetry::Escaped;

/// The idTagInfo for a tag: its verdict now (or `status` when the ledger already gave one), its
/// expiry and its parent, so chargers that cache authorizations learn them. An unknown tag is
/// Invalid.
pub(super) fn tag_info(auth: Option<&TagAuth>, status: Option<Authorization>) -> IdTagInfo {
    let Some(auth) = auth else {
        return IdTagInfo::new(authorization(status.unwrap_or(Authorization::Invalid)));
    };
    let verdict = status.unwrap_or_else(|| auth.verdict(OffsetDateTime::now_utc()));
    IdTagInfo {
        status: authorization(verdict),
        expiry_date: auth.expires_at.map(Timestamp::from),
        parent_id_tag: auth
            .parent_id_tag
            .as_deref()
            .and_then(|p| IdToken::new(p).ok()),
    }
}

/// The CALLRESULT (or CALLERROR) frame answering `request`.
pub(crate) async fn answer(
    central: &Arc<Central>,
    id: &ChargeBoxId,
    connection: u64,
    peer: Option<std::net::IpAddr>,
    live: &ChargerLive,
    message_id: &str,
    request: Req,
) -> String {
    match request {
        Req::BootNotification(boot) => {
            boot_notification(central, id, connection, live, message_id, boot).await
        }
        Req::Heartbeat(_) => reply(
            message_id,
            &HeartbeatResponse {
                current_time: Timestamp::now(),
            },
        ),
        Req::StatusNotification(s) => {
            if s.connector_id < 0 {
                return refuse_frame(message_id, "connectorId must not be negative");
            }
            if s.connector_id > 0 {
                match known_connector(central, id, live, s.connector_id as u32).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return refuse_frame(
                            message_id,
                            &format!("connectorId beyond the {MAX_CONNECTORS} a charger may have"),
                        );
                    }
                    Err(e) => return ledger_unavailable(message_id, "StatusNotification", &e),
                }
                on_connector_status(central, id, s.connector_id as u32, s.status);
            }
            central.live.record_status(
                id,
                live,
                ConnectorStatus {
                    connector_id: s.connector_id as u32,
                    status: s.status.as_str().into(),
                    error_code: s.error_code.as_str().into(),
                    info: s.info.map(|i| i.as_str().to_owned()),
                    vendor_error_code: s.vendor_error_code.map(|v| v.as_str().to_owned()),
                    reported_at: s.timestamp.map(Timestamp::into_inner),
                    updated_at: OffsetDateTime::now_utc(),
                },
            );
            reply(message_id, &StatusNotificationResponse {})
        }
        Req::Authorize(a) => match central.id_tag_auth(a.id_tag.as_str()).await {
            Ok(auth) => reply(
                message_id,
                &AuthorizeResponse {
                    id_tag_info: tag_info(auth.as_ref(), None),
                },
            ),
            Err(e) => ledger_unavailable(message_id, "Authorize", &e),
        },
        Req::StartTransaction(start) => start_transaction(central, id, message_id, start).await,
        Req::StopTransaction(stop) => stop_transaction(central, id, message_id, stop).await,
        Req::MeterValues(m) => meter_values(central, id, message_id, m).await,
        Req::DataTransfer(d) => {
            info!(vendor = %Escaped(&d.vendor_id), "DataTransfer from an unknown vendor");
            reply(
                message_id,
                &DataTransferResponse {
                    status: DataTransferStatus::UnknownVendorId,
                    data: None,
                },
            )
        }
        Req::DiagnosticsStatusNotification(d) => {
            info!(status = d.status.as_str(), "diagnostics status");
            central
                .files
                .record(super::firmware::Kind::Diagnostics, id, d.status.as_str());
            reply(message_id, &DiagnosticsStatusNotificationResponse {})
        }
        Req::FirmwareStatusNotification(f) => {
            info!(status = f.status.as_str(), "firmware status");
            central
                .files
                .record(super::firmware::Kind::Firmware, id, f.status.as_str());
            reply(message_id, &FirmwareStatusNotificationResponse {})
        }
        Req::LogStatusNotification(l) => {
            info!(status = l.status.as_str(), request = ?l.request_id, "log upload status");
            central
                .files
                .record(super::firmware::Kind::Log, id, l.status.as_str());
            reply(message_id, &LogStatusNotificationResponse {})
        }
        Req::SignedFirmwareStatusNotification(f) => {
            info!(status = f.status.as_str(), request = ?f.request_id, "signed firmware status");
            central
                .files
                .record(super::firmware::Kind::SignedFirmware, id, f.status.as_str());
            reply(message_id, &SignedFirmwareStatusNotificationResponse {})
        }
        Req::SecurityEventNotification(n) => {
            let event = SecurityEvent::new(
                Source::Charger,
                n.kind.as_str(),
                n.timestamp.into_inner(),
                OffsetDateTime::now_utc(),
                n.tech_info.as_ref().map(|t| t.as_str()),
                peer,
            );
            // An audit record: answered even when the store fails (it is logged), since a
            // charger told InternalError repeats the event and every repeat fails alike.
            super::security::save(central, id, &event).await;
            reply(message_id, &SecurityEventNotificationResponse {})
        }
        Req::SignCertificate(request) => {
            let status = super::security::sign_certificate(central, id, request).await;
            reply(message_id, &SignCertificateResponse { status })
        }
    }
}

/// A BootNotification is answered with the charger's registration state (api.md
/// `unknown_chargers`): Accepted lets it into service on this connection and wakes the
/// dispatcher; Pending and Rejected tell it to ask again after the interval (OCPP 1.6 §4.2), and
/// it is sent nothing meanwhile (see `Sessions::call`). An unregistered charger only gets here
/// when `unknown_chargers` let its socket in, and its first Boot records it. What it said is
/// kept whatever the answer, so the operator sees who is asking. The state is read from the
/// ledger (Boot is rare; an operator's verdict must hold at once, on every node): when the
/// ledger cannot answer, neither does this (InternalError, the charger retries), never a false
/// Accepted.
async fn boot_notification(
    central: &Central,
    id: &ChargeBoxId,
    connection: u64,
    live: &ChargerLive,
    message_id: &str,
    boot: BootNotification,
) -> String {
    info!(vendor = %Escaped(&boot.charge_point_vendor), model = %Escaped(&boot.charge_point_model), "boot");
    let info = boot_info(boot);
    let state = match central.store.charger_registration(id).await {
        Ok(Some(state)) => Ok(state),
        Ok(None) => match central.settings.unknown_chargers {
            // Deleted while connected (the delete closes the socket): not in service.
            UnknownChargers::Reject => Ok(RegistrationState::Rejected),
            UnknownChargers::Pending => {
                record_unknown(central, id, RegistrationState::Pending, &info).await
            }
            UnknownChargers::Accept => {
                record_unknown(central, id, RegistrationState::Accepted, &info).await
            }
        },
        Err(e) => Err(e),
    };
    let state = match state {
        Ok(state) => state,
        Err(e) => return ledger_unavailable(message_id, "BootNotification", &e),
    };
    central.live.record_boot(id, live, info);
    let accepted = state == RegistrationState::Accepted;
    central.sessions.set_booted(id, connection, accepted);
    if accepted {
        // Reservations waiting for this charger go out after this answer: the session
        // writes it before it takes the next queued CALL.
        central.signal(Signal::Booted(id.clone()));
    } else {
        info!(
            state = state.as_str(),
            "boot not accepted: the charger is not in service"
        );
    }
    reply(
        message_id,
        &BootNotificationResponse {
            status: match state {
                RegistrationState::Accepted => RegistrationStatus::Accepted,
                RegistrationState::Pending => RegistrationStatus::Pending,
                RegistrationState::Rejected => RegistrationStatus::Rejected,
            },
            current_time: Timestamp::now(),
            interval: central.settings.heartbeat_interval.as_secs() as i32,
        },
    )
}

/// An unknown charger's first Boot, recorded in `state` (or as the ledger already has it).
async fn record_unknown(
    central: &Central,
    id: &ChargeBoxId,
    state: RegistrationState,
    info: &BootInfo,
) -> Result<RegistrationState, StoreError> {
    let now = OffsetDateTime::now_utc();
    let recorded = central
        .store
        .record_unknown_charger(id, state, info, now)
        .await?;
    info!(
        state = recorded.as_str(),
        "unknown charger booted; recorded"
    );
    Ok(recorded)
}

async fn start_transaction(
    central: &Central,
    id: &ChargeBoxId,
    message_id: &str,
    start: StartTransaction,
) -> String {
    if start.connector_id <= 0 {
        return refuse_frame(message_id, "a transaction needs a connectorId of 1 or more");
    }
    let req = StartRequest {
        charger_id: id.clone(),
        connector_id: start.connector_id as u32,
        id_tag: start.id_tag.as_str().to_owned(),
        meter_start_wh: i64::from(start.meter_start),
        timestamp: start.timestamp.into_inner(),
        reservation_id: start.reservation_id,
    };
    let policy = StartPolicy {
        early_grace: central.early_grace(),
        allow_walk_in: central.settings.allow_walk_in,
    };
    match central.store.start_transaction(&req, &policy).await {
        Ok(outcome) => {
            let t = &outcome.transaction;
            match outcome.refusal {
                Some(why) => info!(
                    transaction = t.id,
                    connector = t.connector_id,
                    why,
                    "start refused"
                ),
                None if outcome.repeated => {
                    info!(
                        transaction = t.id,
                        "repeated StartTransaction answered as before"
                    )
                }
                None => {
                    info!(transaction = t.id, connector = t.connector_id, reservation = ?t.reservation_id, "transaction started");
                    central.starts.started(t);
                    if let Some(cluster) = central.sessions.cluster() {
                        cluster.started(&t.charger_id, t.connector_id, &t.id_tag, t.id);
                    }
                }
            }
            // The ledger's verdict is the answer's status; expiry and parent come from the tag.
            let auth = central.id_tag_auth(&t.id_tag).await.ok().flatten();
            reply(
                message_id,
                &StartTransactionResponse {
                    id_tag_info: tag_info(auth.as_ref(), Some(t.authorization)),
                    transaction_id: t.id,
                },
            )
        }
        Err(e) => ledger_unavailable(message_id, "StartTransaction", &e),
    }
}

async fn stop_transaction(
    central: &Central,
    id: &ChargeBoxId,
    message_id: &str,
    stop: StopTransaction,
) -> String {
    let req = StopRequest {
        charger_id: id.clone(),
        transaction_id: stop.transaction_id,
        meter_stop_wh: i64::from(stop.meter_stop),
        timestamp: stop.timestamp.into_inner(),
        reason: Some(stop.reason.unwrap_or(Reason::Local).as_str().to_owned()),
    };
    let outcome = match central.store.stop_transaction(&req).await {
        Ok(outcome) => outcome,
        Err(e) => return ledger_unavailable(message_id, "StopTransaction", &e),
    };
    crate::metrics::transaction(match &outcome {
        StopOutcome::Stopped { .. } => "stopped",
        StopOutcome::Unchanged(_) => "stop_repeated",
        StopOutcome::Unknown => "stop_unknown",
    });
    match &outcome {
        StopOutcome::Stopped { transaction, .. } => {
            info!(transaction = transaction.id, energy_wh = ?transaction.energy_wh, "transaction stopped")
        }
        StopOutcome::Unchanged(t) if t.status == TransactionStatus::Ended => {
            info!(
                transaction = t.id,
                "repeated StopTransaction answered as before"
            )
        }
        StopOutcome::Unchanged(t) => debug!(transaction = t.id, "stop of a refused start"),
        // Answered regardless: the spec requires it, or the charger retries forever.
        StopOutcome::Unknown => warn!(
            transaction = stop.transaction_id,
            "StopTransaction for a transaction this charger does not hold"
        ),
    }
    // The idTagInfo judges the idTag that stopped, so a repeat gets the same answer.
    let id_tag_info = match stop.id_tag {
        None => None,
        Some(tag) => match central.id_tag_auth(tag.as_str()).await {
            Ok(auth) => Some(tag_info(auth.as_ref(), None)),
            // The stop is committed; the verdict on the tag is optional in the answer.
            Err(_) => None,
        },
    };
    reply(message_id, &StopTransactionResponse { id_tag_info })
}

async fn meter_values(
    central: &Central,
    id: &ChargeBoxId,
    message_id: &str,
    m: MeterValues,
) -> String {
    let readings = energy_readings(&m.meter_value);
    if readings.is_empty() || m.connector_id <= 0 && m.transaction_id.is_none() {
        return reply(message_id, &MeterValuesResponse {});
    }
    let readings = MeterReadings {
        charger_id: id.clone(),
        connector_id: m.connector_id.max(0) as u32,
        transaction_id: m.transaction_id,
        readings,
    };
    match central.store.record_meter_values(&readings).await {
        Ok(Some(_)) => {}
        Ok(None) => debug!(
            transaction = ?m.transaction_id,
            connector = m.connector_id,
            "meter values outside any active transaction, not stored"
        ),
        Err(e) => return ledger_unavailable(message_id, "MeterValues", &e),
    }
    reply(message_id, &MeterValuesResponse {})
}

/// The energy register readings of a MeterValues message, in Wh: per meter value the first
/// total (no phase) Energy.Active.Import.Register sample in Wh or kWh, as plain (Raw) numbers
/// within the 32-bit range of meterStart/meterStop (others are ignored, like unparseable ones).
pub(crate) fn energy_readings(values: &[MeterValue]) -> Vec<(OffsetDateTime, i64)> {
    values
        .iter()
        .filter_map(|mv| {
            mv.sampled_value
                .iter()
                .filter(|s| {
                    s.measurand_or_default() == Some(Measurand::EnergyActiveImportRegister)
                        && s.format_or_default() == Some(ValueFormat::Raw)
                        && s.phase.is_none()
                })
                .find_map(|s| {
                    let value: f64 = s
                        .value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite())?;
                    let wh = match s.unit_or_default() {
                        Some(UnitOfMeasure::Wh) => value,
                        Some(UnitOfMeasure::KWh) => value * 1000.0,
                        _ => return None,
                    }
                    .round();
                    // Readings share meterStart/meterStop's range (a 32-bit Wh count): a
                    // register of 1e308 Wh is a broken meter, not energy, and energy is computed
                    // as reading − meterStart, which must not overflow.
                    let range = f64::from(i32::MIN)..=f64::from(i32::MAX);
                    range
                        .contains(&wh)
                        .then(|| (mv.timestamp.into_inner(), wh as i64))
                })
        })
        .collect()
}

/// Faults reach the ledger (the driver sees them on the reservation); an Available connector
/// lets the dispatcher retry a reservation the charger could not take before.
fn on_connector_status(
    central: &Central,
    id: &ChargeBoxId,
    connector: u32,
    status: ChargePointStatus,
) {
    let ack = match status {
        ChargePointStatus::Faulted => ChargerAck::Faulted,
        ChargePointStatus::Unavailable => ChargerAck::Unavailable,
        ChargePointStatus::Available => {
            central.signal(Signal::ConnectorAvailable(id.clone(), connector));
            return;
        }
        _ => return,
    };
    // Rare, and the answer must not wait for the database: recorded in the background.
    let store = central.store.clone();
    let (id, grace) = (id.clone(), central.early_grace());
    tokio::spawn(async move {
        let now = OffsetDateTime::now_utc();
        match store
            .record_connector_fault(&id, connector, ack, now, grace)
            .await
        {
            Ok(changed) if !changed.is_empty() => {
                info!(charger = %id, connector, ack = ack.as_str(), reservations = changed.len(), "connector fault shown on reservations")
            }
            Ok(_) => {}
            Err(e) => error!(charger = %id, error = %e, "could not record a connector fault"),
        }
    });
}

fn authorization(a: Authorization) -> AuthorizationStatus {
    match a {
        Authorization::Accepted => AuthorizationStatus::Accepted,
        Authorization::Blocked => AuthorizationStatus::Blocked,
        Authorization::Expired => AuthorizationStatus::Expired,
        Authorization::Invalid => AuthorizationStatus::Invalid,
        Authorization::ConcurrentTx => AuthorizationStatus::ConcurrentTx,
    }
}

fn refuse_frame(message_id: &str, why: &str) -> String {
    crate::metrics::callerror_sent(ErrorCode::PropertyConstraintViolation);
    ocpp::encode_call_error(
        message_id,
        ErrorCode::PropertyConstraintViolation,
        why,
        None,
    )
}

/// Whether the ledger knows `connector` of this charger, adding it when the charger reports one
/// above its registered count: chargers are registered by hand and often with too few
/// connectors, and a connector that reports is real. It is recorded (ChargerUpdated, so the
/// log and the console follow) and bookable from then on. Above [`MAX_CONNECTORS`], the
/// ledger's bound, it is refused and nothing is stored. The count is read from the ledger once
/// per session (a charger reports its connectors right after connecting) and cached; an
/// operator's change drops the cache (the dispatcher applies ChargerUpdated).
async fn known_connector(
    central: &Central,
    id: &ChargeBoxId,
    live: &ChargerLive,
    connector: u32,
) -> Result<bool, StoreError> {
    if connector <= live.known_connectors() {
        return Ok(true);
    }
    if connector > MAX_CONNECTORS {
        return Ok(false);
    }
    let Some(record) = central.store.charger(id).await? else {
        // Deleted while connected: its socket is being closed.
        return Ok(true);
    };
    if connector <= record.connectors {
        live.set_known_connectors(record.connectors);
        return Ok(true);
    }
    let patch = ChargerPatch {
        connectors: Some(connector),
        ..ChargerPatch::default()
    };
    match central.store.update_charger(id, &patch).await? {
        Some(grown) => {
            info!(
                registered = record.connectors,
                reported = connector,
                "charger reported a connector beyond its registered count; added"
            );
            live.set_known_connectors(grown.connectors);
        }
        None => return Ok(true),
    }
    Ok(true)
}

/// The ledger failed: the charger is told so (it retries), never a guess.
fn ledger_unavailable(message_id: &str, action: &str, e: &StoreError) -> String {
    error!(action, error = %e, "ledger write failed; answered InternalError");
    crate::metrics::callerror_sent(ErrorCode::InternalError);
    ocpp::encode_call_error(
        message_id,
        ErrorCode::InternalError,
        "the central system could not record this; retry",
        None,
    )
}

fn reply(message_id: &str, payload: &impl Serialize) -> String {
    ocpp::encode_call_result(message_id, payload).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not encode an answer");
        crate::metrics::callerror_sent(ErrorCode::InternalError);
        ocpp::encode_call_error(message_id, ErrorCode::InternalError, "internal error", None)
    })
}

fn boot_info(b: BootNotification) -> BootInfo {
    BootInfo {
        vendor: b.charge_point_vendor.as_str().to_owned(),
        model: b.charge_point_model.as_str().to_owned(),
        serial_number: inner(b.charge_point_serial_number),
        charge_box_serial_number: inner(b.charge_box_serial_number),
        firmware_version: inner(b.firmware_version),
        iccid: inner(b.iccid),
        imsi: inner(b.imsi),
        meter_type: inner(b.meter_type),
        meter_serial_number: inner(b.meter_serial_number),
    }
}

fn inner<const N: usize>(s: Option<CiString<N>>) -> Option<String> {
    s.map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(value: &str, unit: UnitOfMeasure) -> MeterValue {
        let mut sample = SampledValue::new(value);
        sample.unit = Some(unit.into());
        MeterValue {
            timestamp: Timestamp::now(),
            sampled_value: vec![sample],
        }
    }

    /// Energy is reading − meterStart in i64: readings outside meterStart's 32-bit range would
    /// overflow it (found by the hardening property test: 1e308 Wh against meterStart i32::MIN).
    #[test]
    fn energy_readings_stay_in_the_meter_start_range() {
        let wh = |values: &[MeterValue]| -> Vec<i64> {
            energy_readings(values)
                .into_iter()
                .map(|(_, wh)| wh)
                .collect()
        };
        assert_eq!(wh(&[reading("5.5", UnitOfMeasure::KWh)]), vec![5500]);
        assert_eq!(
            wh(&[reading("2147483647", UnitOfMeasure::Wh)]),
            vec![2147483647]
        );
        for absurd in [
            "1e308",
            "-1e308",
            "2147483648",
            "9223372036854775807",
            "NaN",
            "inf",
        ] {
            assert_eq!(
                wh(&[reading(absurd, UnitOfMeasure::Wh)]),
                Vec::<i64>::new(),
                "{absurd}"
            );
        }
        assert_eq!(wh(&[reading("3e6", UnitOfMeasure::KWh)]), Vec::<i64>::new());
    }
}
