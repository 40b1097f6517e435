//! One realistic sample per request and response of every action we implement: a "full" one
//! (every property at every level, so the schema mutation walk reaches every rule) and, where
//! there are optional fields, a "minimal" one (exactly the required properties). Charger →
//! central system requests also go through a CALL frame and `ChargePointRequest::decode`.

use std::fmt::Debug;

use super::schema::{check_full, check_minimal, check_round_trip};
use crate::ocpp::v16::*;

pub(super) fn ci<const N: usize>(text: &str) -> CiString<N> {
    CiString::new(text).expect("sample strings fit")
}

pub(super) fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("sample timestamps parse")
}

pub(super) fn request<A: Action + PartialEq + Debug>(full: &A, minimal: &A) {
    let file = format!("{}.json", A::NAME);
    check_full(&file, full);
    check_minimal(&file, minimal);
}

pub(super) fn response<A: Action>(full: &A::Response, minimal: &A::Response)
where
    A::Response: PartialEq + Debug,
{
    let file = format!("{}Response.json", A::NAME);
    check_full(&file, full);
    check_minimal(&file, minimal);
}

/// An empty answer whose schema (the security extension's style) lists no properties at all:
/// there is no rule to mutate, only the round trip and the schema to check.
fn empty_response<A: Action>(answer: &A::Response)
where
    A::Response: PartialEq + Debug,
{
    let value = check_round_trip(&format!("{}Response.json", A::NAME), answer);
    assert_eq!(value, serde_json::json!({}));
}

/// The sample as a charger would send it: a CALL frame, parsed and decoded by action name.
fn from_charger<A: Action + Clone + Debug>(sample: &A, expected: fn(A) -> ChargePointRequest) {
    let text = encode_call("19223201", A::NAME, sample).expect("encodes");
    let Ok(Frame::Call(call)) = Frame::parse(&text) else {
        panic!("{text} is not a CALL");
    };
    assert_eq!(call.action, A::NAME);
    let decoded = ChargePointRequest::decode(&call.action, call.payload)
        .unwrap_or_else(|error| panic!("{text}: {error}"));
    assert_eq!(decoded.action(), A::NAME);
    assert_eq!(decoded, expected(sample.clone()));
}

pub(super) fn id_tag_info_full() -> IdTagInfo {
    IdTagInfo {
        status: AuthorizationStatus::Accepted,
        expiry_date: Some(ts("2026-12-31T23:59:59.000Z")),
        parent_id_tag: Some(ci("FLEET-0042")),
    }
}

fn sampled_value_full() -> SampledValue {
    SampledValue {
        value: "1234.5".into(),
        context: Some(ReadingContext::SamplePeriodic.into()),
        format: Some(ValueFormat::Raw.into()),
        measurand: Some(Measurand::EnergyActiveImportRegister.into()),
        phase: Some(Phase::L1N.into()),
        location: Some(Location::Outlet.into()),
        unit: Some(UnitOfMeasure::KWh.into()),
    }
}

fn meter_value_full() -> MeterValue {
    MeterValue {
        timestamp: ts("2026-11-24T05:46:01.123Z"),
        sampled_value: vec![sampled_value_full()],
    }
}

#[test]
fn authorize() {
    let sample = Authorize {
        id_tag: ci("04A2B3C4D5E6F7"),
    };
    request(&sample, &sample);
    from_charger(&sample, ChargePointRequest::Authorize);
    response::<Authorize>(
        &AuthorizeResponse {
            id_tag_info: id_tag_info_full(),
        },
        &AuthorizeResponse {
            id_tag_info: IdTagInfo::new(AuthorizationStatus::Invalid),
        },
    );
}

#[test]
fn boot_notification() {
    let full = BootNotification {
        charge_point_vendor: ci("Alfen BV"),
        charge_point_model: ci("NG920-61024"),
        charge_point_serial_number: Some(ci("ACE0123456")),
        charge_box_serial_number: Some(ci("ACE0123456-B")),
        firmware_version: Some(ci("5.8.1-4123")),
        iccid: Some(ci("89314404000012345678")),
        imsi: Some(ci("204080012345678")),
        meter_type: Some(ci("Inepro PRO380-Mod")),
        meter_serial_number: Some(ci("22334455")),
    };
    let minimal = BootNotification {
        charge_point_vendor: ci("Wallbox"),
        charge_point_model: ci("Pulsar Plus"),
        charge_point_serial_number: None,
        charge_box_serial_number: None,
        firmware_version: None,
        iccid: None,
        imsi: None,
        meter_type: None,
        meter_serial_number: None,
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::BootNotification);
    from_charger(&minimal, ChargePointRequest::BootNotification);
    let accepted = BootNotificationResponse {
        status: RegistrationStatus::Accepted,
        current_time: ts("2026-11-24T05:46:01.123Z"),
        interval: 300,
    };
    response::<BootNotification>(&accepted, &accepted);
}

#[test]
fn change_availability() {
    let sample = ChangeAvailability {
        connector_id: 1,
        kind: AvailabilityType::Inoperative,
    };
    request(&sample, &sample);
    let answer = ChangeAvailabilityResponse {
        status: AvailabilityStatus::Scheduled,
    };
    response::<ChangeAvailability>(&answer, &answer);
}

#[test]
fn change_configuration() {
    let sample = ChangeConfiguration {
        key: ci("HeartbeatInterval"),
        value: ci("300"),
    };
    request(&sample, &sample);
    let answer = ChangeConfigurationResponse {
        status: ConfigurationStatus::RebootRequired,
    };
    response::<ChangeConfiguration>(&answer, &answer);
}

#[test]
fn clear_cache() {
    request(&ClearCache {}, &ClearCache {});
    let answer = ClearCacheResponse {
        status: ClearCacheStatus::Accepted,
    };
    response::<ClearCache>(&answer, &answer);
}

#[test]
fn data_transfer() {
    let full = DataTransfer {
        vendor_id: ci("com.alfen"),
        message_id: Some(ci("ChargingCurve")),
        data: Some(r#"{"curve":[11,16,32]}"#.into()),
    };
    let minimal = DataTransfer {
        vendor_id: ci("com.alfen"),
        message_id: None,
        data: None,
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::DataTransfer);
    response::<DataTransfer>(
        &DataTransferResponse {
            status: DataTransferStatus::Accepted,
            data: Some("ok".into()),
        },
        &DataTransferResponse {
            status: DataTransferStatus::UnknownVendorId,
            data: None,
        },
    );
}

#[test]
fn get_configuration() {
    request(
        &GetConfiguration {
            key: Some(vec![
                ci("HeartbeatInterval"),
                ci("MeterValueSampleInterval"),
            ]),
        },
        &GetConfiguration { key: None },
    );
    response::<GetConfiguration>(
        &GetConfigurationResponse {
            configuration_key: Some(vec![KeyValue {
                key: ci("HeartbeatInterval"),
                readonly: false,
                value: Some(ci("300")),
            }]),
            unknown_key: Some(vec![ci("VendorSpecificKey")]),
        },
        &GetConfigurationResponse::default(),
    );
}

#[test]
fn heartbeat() {
    request(&Heartbeat {}, &Heartbeat {});
    from_charger(&Heartbeat {}, ChargePointRequest::Heartbeat);
    let answer = HeartbeatResponse {
        current_time: ts("2026-11-24T05:46:01.123Z"),
    };
    response::<Heartbeat>(&answer, &answer);
}

#[test]
fn meter_values() {
    let full = MeterValues {
        connector_id: 1,
        transaction_id: Some(1234),
        meter_value: vec![meter_value_full()],
    };
    let minimal = MeterValues {
        connector_id: 0,
        transaction_id: None,
        meter_value: vec![MeterValue {
            timestamp: ts("2026-11-24T05:46:01Z"),
            sampled_value: vec![SampledValue::new("15000")],
        }],
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::MeterValues);
    from_charger(&minimal, ChargePointRequest::MeterValues);
    response::<MeterValues>(&MeterValuesResponse {}, &MeterValuesResponse {});
}

#[test]
fn remote_start_transaction() {
    let full = RemoteStartTransaction {
        connector_id: Some(1),
        id_tag: ci("04A2B3C4D5E6F7"),
        charging_profile: Some(ChargingProfile {
            charging_profile_id: 1,
            transaction_id: Some(1234),
            stack_level: 0,
            charging_profile_purpose: ChargingProfilePurposeType::TxProfile,
            charging_profile_kind: ChargingProfileKindType::Recurring,
            recurrency_kind: Some(RecurrencyKindType::Daily),
            valid_from: Some(ts("2026-11-24T00:00:00Z")),
            valid_to: Some(ts("2026-11-25T00:00:00Z")),
            charging_schedule: ChargingSchedule {
                duration: Some(3600),
                start_schedule: Some(ts("2026-11-24T18:00:00Z")),
                charging_rate_unit: ChargingRateUnitType::A,
                charging_schedule_period: vec![ChargingSchedulePeriod {
                    start_period: 0,
                    limit: 16.0,
                    number_phases: Some(3),
                }],
                min_charging_rate: Some(6.5),
            },
        }),
    };
    let minimal = RemoteStartTransaction {
        connector_id: None,
        id_tag: ci("04A2B3C4D5E6F7"),
        charging_profile: None,
    };
    request(&full, &minimal);
    let answer = RemoteStartTransactionResponse {
        status: RemoteStartStopStatus::Accepted,
    };
    response::<RemoteStartTransaction>(&answer, &answer);
}

#[test]
fn remote_stop_transaction() {
    let sample = RemoteStopTransaction {
        transaction_id: 1234,
    };
    request(&sample, &sample);
    let answer = RemoteStopTransactionResponse {
        status: RemoteStartStopStatus::Rejected,
    };
    response::<RemoteStopTransaction>(&answer, &answer);
}

#[test]
fn reset() {
    let sample = Reset {
        kind: ResetType::Soft,
    };
    request(&sample, &sample);
    let answer = ResetResponse {
        status: ResetStatus::Accepted,
    };
    response::<Reset>(&answer, &answer);
}

#[test]
fn start_transaction() {
    let full = StartTransaction {
        connector_id: 1,
        id_tag: ci("04A2B3C4D5E6F7"),
        meter_start: 15000,
        reservation_id: Some(77),
        timestamp: ts("2026-11-24T05:46:01.123Z"),
    };
    let minimal = StartTransaction {
        reservation_id: None,
        ..full.clone()
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::StartTransaction);
    from_charger(&minimal, ChargePointRequest::StartTransaction);
    response::<StartTransaction>(
        &StartTransactionResponse {
            id_tag_info: id_tag_info_full(),
            transaction_id: 1234,
        },
        &StartTransactionResponse {
            id_tag_info: IdTagInfo::new(AuthorizationStatus::Blocked),
            transaction_id: 0,
        },
    );
}

#[test]
fn status_notification() {
    let full = StatusNotification {
        connector_id: 2,
        error_code: ChargePointErrorCode::ConnectorLockFailure,
        info: Some(ci("Lock motor timeout")),
        status: ChargePointStatus::Faulted,
        timestamp: Some(ts("2026-11-24T05:46:01.123Z")),
        vendor_id: Some(ci("com.alfen")),
        vendor_error_code: Some(ci("E-0123")),
    };
    let minimal = StatusNotification {
        connector_id: 1,
        error_code: ChargePointErrorCode::NoError,
        info: None,
        status: ChargePointStatus::Available,
        timestamp: None,
        vendor_id: None,
        vendor_error_code: None,
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::StatusNotification);
    from_charger(&minimal, ChargePointRequest::StatusNotification);
    response::<StatusNotification>(
        &StatusNotificationResponse {},
        &StatusNotificationResponse {},
    );
}

#[test]
fn stop_transaction() {
    let full = StopTransaction {
        id_tag: Some(ci("04A2B3C4D5E6F7")),
        meter_stop: 20500,
        timestamp: ts("2026-11-24T07:46:01.123Z"),
        transaction_id: 1234,
        reason: Some(Reason::EVDisconnected),
        transaction_data: Some(vec![meter_value_full()]),
    };
    let minimal = StopTransaction {
        id_tag: None,
        meter_stop: 20500,
        timestamp: ts("2026-11-24T07:46:01Z"),
        transaction_id: 1234,
        reason: None,
        transaction_data: None,
    };
    request(&full, &minimal);
    from_charger(&full, ChargePointRequest::StopTransaction);
    from_charger(&minimal, ChargePointRequest::StopTransaction);
    response::<StopTransaction>(
        &StopTransactionResponse {
            id_tag_info: Some(id_tag_info_full()),
        },
        &StopTransactionResponse::default(),
    );
}

#[test]
fn unlock_connector() {
    let sample = UnlockConnector { connector_id: 1 };
    request(&sample, &sample);
    let answer = UnlockConnectorResponse {
        status: UnlockStatus::Unlocked,
    };
    response::<UnlockConnector>(&answer, &answer);
}

#[test]
fn reserve_now() {
    let full = ReserveNow {
        connector_id: 1,
        expiry_date: ts("2026-11-24T06:15:00Z"),
        id_tag: ci("04A2B3C4D5E6F7"),
        parent_id_tag: Some(ci("FLEET-0042")),
        reservation_id: 77,
    };
    let minimal = ReserveNow {
        parent_id_tag: None,
        ..full.clone()
    };
    request(&full, &minimal);
    let answer = ReserveNowResponse {
        status: ReservationStatus::Occupied,
    };
    response::<ReserveNow>(&answer, &answer);
}

#[test]
fn cancel_reservation() {
    let sample = CancelReservation { reservation_id: 77 };
    request(&sample, &sample);
    let answer = CancelReservationResponse {
        status: CancelReservationStatus::Accepted,
    };
    response::<CancelReservation>(&answer, &answer);
}

#[test]
fn trigger_message() {
    request(
        &TriggerMessage {
            requested_message: MessageTrigger::StatusNotification,
            connector_id: Some(1),
        },
        &TriggerMessage {
            requested_message: MessageTrigger::Heartbeat,
            connector_id: None,
        },
    );
    let answer = TriggerMessageResponse {
        status: TriggerMessageStatus::NotImplemented,
    };
    response::<TriggerMessage>(&answer, &answer);
}

#[test]
fn diagnostics_status_notification() {
    let sample = DiagnosticsStatusNotification {
        status: DiagnosticsStatus::Idle,
    };
    request(&sample, &sample);
    from_charger(&sample, ChargePointRequest::DiagnosticsStatusNotification);
    let answer = DiagnosticsStatusNotificationResponse {};
    response::<DiagnosticsStatusNotification>(&answer, &answer);
}

#[test]
fn firmware_status_notification() {
    let sample = FirmwareStatusNotification {
        status: FirmwareStatus::Installed,
    };
    request(&sample, &sample);
    from_charger(&sample, ChargePointRequest::FirmwareStatusNotification);
    let answer = FirmwareStatusNotificationResponse {};
    response::<FirmwareStatusNotification>(&answer, &answer);
}

#[test]
fn security_event_notification() {
    request(
        &SecurityEventNotification {
            kind: ci("InvalidCentralSystemCertificate"),
            timestamp: ts("2026-11-24T05:46:01.123Z"),
            tech_info: Some(ci("certificate expired on 2026-11-01")),
        },
        &SecurityEventNotification {
            kind: ci("FirmwareUpdated"),
            timestamp: ts("2026-11-24T05:46:01.123Z"),
            tech_info: None,
        },
    );
    from_charger(
        &SecurityEventNotification {
            kind: ci("SettingSystemTime"),
            timestamp: ts("2026-11-24T05:46:01.123Z"),
            tech_info: Some(ci("ntp")),
        },
        ChargePointRequest::SecurityEventNotification,
    );
    empty_response::<SecurityEventNotification>(&SecurityEventNotificationResponse {});
}

#[test]
fn log_status_notification() {
    let full = LogStatusNotification {
        status: UploadLogStatus::Uploaded,
        request_id: Some(7),
    };
    request(
        &full,
        &LogStatusNotification {
            status: UploadLogStatus::Idle,
            request_id: None,
        },
    );
    from_charger(&full, ChargePointRequest::LogStatusNotification);
    empty_response::<LogStatusNotification>(&LogStatusNotificationResponse {});
}

#[test]
fn signed_firmware_status_notification() {
    let full = SignedFirmwareStatusNotification {
        status: SignedFirmwareStatus::SignatureVerified,
        request_id: Some(3),
    };
    request(
        &full,
        &SignedFirmwareStatusNotification {
            status: SignedFirmwareStatus::InvalidSignature,
            request_id: None,
        },
    );
    from_charger(&full, ChargePointRequest::SignedFirmwareStatusNotification);
    empty_response::<SignedFirmwareStatusNotification>(
        &SignedFirmwareStatusNotificationResponse {},
    );
}

#[test]
fn sign_certificate() {
    let sample = SignCertificate {
        csr: ci("-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----"),
    };
    request(&sample, &sample);
    from_charger(&sample, ChargePointRequest::SignCertificate);
    for status in [GenericStatus::Accepted, GenericStatus::Rejected] {
        let answer = SignCertificateResponse { status };
        response::<SignCertificate>(&answer, &answer);
    }
}
