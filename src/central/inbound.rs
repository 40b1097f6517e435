//! What the central system answers to each request a charger sends. Boot, Heartbeat and
//! StatusNotification update the live state here; the transaction messages (Authorize,
//! Start/StopTransaction, MeterValues) get spec-valid answers that hold no ledger meaning yet:
//! the charging issue links them to reservations. Every arm answers: nothing drops the socket.

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::live::ChargerLive;
use super::{Central, ChargeBoxId};
use crate::booking::charger::{BootInfo, ConnectorStatus};
use crate::ocpp::{self, ChargePointRequest as Req, ErrorCode, messages::*, types::*};

/// The CALLRESULT (or CALLERROR) frame answering `request`.
pub(crate) fn answer(
    central: &Central,
    id: &ChargeBoxId,
    live: &ChargerLive,
    message_id: &str,
    request: Req,
) -> String {
    match request {
        Req::BootNotification(boot) => {
            info!(vendor = %boot.charge_point_vendor, model = %boot.charge_point_model, "boot");
            central.live.record_boot(id, live, boot_info(boot));
            reply(
                message_id,
                &BootNotificationResponse {
                    status: RegistrationStatus::Accepted,
                    current_time: Timestamp::now(),
                    interval: central.settings.heartbeat_interval.as_secs() as i32,
                },
            )
        }
        Req::Heartbeat(_) => reply(
            message_id,
            &HeartbeatResponse {
                current_time: Timestamp::now(),
            },
        ),
        Req::StatusNotification(s) => {
            if s.connector_id < 0 {
                crate::metrics::callerror_sent(ErrorCode::PropertyConstraintViolation);
                return ocpp::encode_call_error(
                    message_id,
                    ErrorCode::PropertyConstraintViolation,
                    "connectorId must not be negative",
                    None,
                );
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
        // No idTag is known to the ledger yet, so none is authorised: the honest answer.
        Req::Authorize(_) => reply(
            message_id,
            &AuthorizeResponse {
                id_tag_info: not_authorised(),
            },
        ),
        Req::StartTransaction(start) => {
            warn!(
                connector = start.connector_id,
                "StartTransaction refused: no ledger for idTags yet"
            );
            // The charger must receive a transactionId even when refused (OCPP 1.6 §6.46); it
            // stops at once on a status other than Accepted, so 0 names no transaction.
            reply(
                message_id,
                &StartTransactionResponse {
                    id_tag_info: not_authorised(),
                    transaction_id: 0,
                },
            )
        }
        Req::StopTransaction(stop) => {
            warn!(
                transaction = stop.transaction_id,
                "StopTransaction for a transaction the ledger does not hold"
            );
            // Answered regardless: the spec requires it, or the charger retries forever.
            reply(message_id, &StopTransactionResponse { id_tag_info: None })
        }
        Req::MeterValues(_) => reply(message_id, &MeterValuesResponse {}),
        Req::DataTransfer(d) => {
            info!(vendor = %d.vendor_id, "DataTransfer from an unknown vendor");
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
            reply(message_id, &DiagnosticsStatusNotificationResponse {})
        }
        Req::FirmwareStatusNotification(f) => {
            info!(status = f.status.as_str(), "firmware status");
            reply(message_id, &FirmwareStatusNotificationResponse {})
        }
    }
}

fn not_authorised() -> IdTagInfo {
    IdTagInfo {
        status: AuthorizationStatus::Invalid,
        expiry_date: None,
        parent_id_tag: None,
    }
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
