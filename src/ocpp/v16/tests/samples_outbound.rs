//! Samples of the actions the server sends only on an operator's request (the toolbox:
//! `POST /chargers/{id}/ocpp/{Action}`): local lists, firmware, diagnostics, smart charging and
//! the security extension's. Same rules as `samples`: a full and a minimal one per message.

use super::samples::{ci, id_tag_info_full, request, response, ts};
use crate::ocpp::v16::*;

fn schedule_full() -> ChargingSchedule {
    ChargingSchedule {
        duration: Some(3600),
        start_schedule: Some(ts("2026-11-24T18:00:00Z")),
        charging_rate_unit: ChargingRateUnitType::W,
        charging_schedule_period: vec![ChargingSchedulePeriod {
            start_period: 0,
            limit: 11000.0,
            number_phases: Some(3),
        }],
        min_charging_rate: Some(1400.5),
    }
}

fn schedule_minimal() -> ChargingSchedule {
    ChargingSchedule {
        duration: None,
        start_schedule: None,
        charging_rate_unit: ChargingRateUnitType::A,
        charging_schedule_period: vec![ChargingSchedulePeriod {
            start_period: 0,
            limit: 16.0,
            number_phases: None,
        }],
        min_charging_rate: None,
    }
}

fn hash_data() -> CertificateHashData {
    CertificateHashData {
        hash_algorithm: HashAlgorithm::Sha256,
        issuer_name_hash: ci("6f1e2a9c4b7d0e3f"),
        issuer_key_hash: ci("0a1b2c3d4e5f6a7b"),
        serial_number: ci("01A4F3"),
    }
}

#[test]
fn get_local_list_version() {
    request(&GetLocalListVersion {}, &GetLocalListVersion {});
    let answer = GetLocalListVersionResponse { list_version: 7 };
    response::<GetLocalListVersion>(&answer, &answer);
}

#[test]
fn send_local_list() {
    request(
        &SendLocalList {
            list_version: 8,
            local_authorization_list: Some(vec![AuthorizationData {
                id_tag: ci("04A2B3C4D5E6F7"),
                id_tag_info: Some(id_tag_info_full()),
            }]),
            update_type: UpdateType::Differential,
        },
        &SendLocalList {
            list_version: 1,
            local_authorization_list: None,
            update_type: UpdateType::Full,
        },
    );
    let answer = SendLocalListResponse {
        status: UpdateStatus::VersionMismatch,
    };
    response::<SendLocalList>(&answer, &answer);
}

#[test]
fn update_firmware() {
    request(
        &UpdateFirmware {
            location: Uri::new("https://cs.example.com/firmware/2.1.bin").unwrap(),
            retries: Some(3),
            retrieve_date: ts("2026-11-24T02:00:00Z"),
            retry_interval: Some(600),
        },
        &UpdateFirmware {
            location: Uri::new("ftp://10.0.0.1/fw.bin").unwrap(),
            retries: None,
            retrieve_date: ts("2026-11-24T02:00:00Z"),
            retry_interval: None,
        },
    );
    response::<UpdateFirmware>(&UpdateFirmwareResponse {}, &UpdateFirmwareResponse {});
}

#[test]
fn get_diagnostics() {
    request(
        &GetDiagnostics {
            location: Uri::new("ftp://user:secret@cs.example.com/diagnostics/").unwrap(),
            retries: Some(2),
            retry_interval: Some(60),
            start_time: Some(ts("2026-11-23T00:00:00Z")),
            stop_time: Some(ts("2026-11-24T00:00:00Z")),
        },
        &GetDiagnostics {
            location: Uri::new("https://cs.example.com/diagnostics").unwrap(),
            retries: None,
            retry_interval: None,
            start_time: None,
            stop_time: None,
        },
    );
    response::<GetDiagnostics>(
        &GetDiagnosticsResponse {
            file_name: Some(ci("diag-CP-0001-20261124.zip")),
        },
        &GetDiagnosticsResponse::default(),
    );
}

#[test]
fn set_charging_profile() {
    let profile = |schedule| ChargingProfile {
        charging_profile_id: 12,
        transaction_id: None,
        stack_level: 1,
        charging_profile_purpose: ChargingProfilePurposeType::TxDefaultProfile,
        charging_profile_kind: ChargingProfileKindType::Absolute,
        recurrency_kind: None,
        valid_from: None,
        valid_to: None,
        charging_schedule: schedule,
    };
    let full = SetChargingProfile {
        connector_id: 1,
        cs_charging_profiles: ChargingProfile {
            transaction_id: Some(1234),
            charging_profile_kind: ChargingProfileKindType::Recurring,
            recurrency_kind: Some(RecurrencyKindType::Weekly),
            valid_from: Some(ts("2026-11-24T00:00:00Z")),
            valid_to: Some(ts("2026-12-24T00:00:00Z")),
            ..profile(schedule_full())
        },
    };
    let minimal = SetChargingProfile {
        connector_id: 0,
        cs_charging_profiles: profile(schedule_minimal()),
    };
    request(&full, &minimal);
    let answer = SetChargingProfileResponse {
        status: ChargingProfileStatus::NotSupported,
    };
    response::<SetChargingProfile>(&answer, &answer);
}

#[test]
fn clear_charging_profile() {
    request(
        &ClearChargingProfile {
            id: Some(12),
            connector_id: Some(1),
            charging_profile_purpose: Some(ChargingProfilePurposeType::TxDefaultProfile),
            stack_level: Some(1),
        },
        &ClearChargingProfile::default(),
    );
    let answer = ClearChargingProfileResponse {
        status: ClearChargingProfileStatus::Unknown,
    };
    response::<ClearChargingProfile>(&answer, &answer);
}

#[test]
fn get_composite_schedule() {
    request(
        &GetCompositeSchedule {
            connector_id: 1,
            duration: 86400,
            charging_rate_unit: Some(ChargingRateUnitType::W),
        },
        &GetCompositeSchedule {
            connector_id: 0,
            duration: 3600,
            charging_rate_unit: None,
        },
    );
    response::<GetCompositeSchedule>(
        &GetCompositeScheduleResponse {
            status: GetCompositeScheduleStatus::Accepted,
            connector_id: Some(1),
            schedule_start: Some(ts("2026-11-24T18:00:00Z")),
            charging_schedule: Some(schedule_full()),
        },
        &GetCompositeScheduleResponse {
            status: GetCompositeScheduleStatus::Rejected,
            connector_id: None,
            schedule_start: None,
            charging_schedule: None,
        },
    );
}

#[test]
fn extended_trigger_message() {
    request(
        &ExtendedTriggerMessage {
            requested_message: ExtendedMessageTrigger::SignChargePointCertificate,
            connector_id: Some(0),
        },
        &ExtendedTriggerMessage {
            requested_message: ExtendedMessageTrigger::LogStatusNotification,
            connector_id: None,
        },
    );
    let answer = ExtendedTriggerMessageResponse {
        status: TriggerMessageStatus::Accepted,
    };
    response::<ExtendedTriggerMessage>(&answer, &answer);
}

#[test]
fn certificate_signed() {
    let sample = CertificateSigned {
        certificate_chain: ci("-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"),
    };
    request(&sample, &sample);
    let answer = CertificateSignedResponse {
        status: CertificateSignedStatus::Rejected,
    };
    response::<CertificateSigned>(&answer, &answer);
}

#[test]
fn install_certificate() {
    let sample = InstallCertificate {
        certificate_type: CertificateUse::CentralSystemRootCertificate,
        certificate: ci("-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----"),
    };
    request(&sample, &sample);
    let answer = InstallCertificateResponse {
        status: InstallCertificateStatus::Failed,
    };
    response::<InstallCertificate>(&answer, &answer);
}

#[test]
fn get_installed_certificate_ids() {
    let sample = GetInstalledCertificateIds {
        certificate_type: CertificateUse::ManufacturerRootCertificate,
    };
    request(&sample, &sample);
    response::<GetInstalledCertificateIds>(
        &GetInstalledCertificateIdsResponse {
            certificate_hash_data: Some(vec![hash_data()]),
            status: GetInstalledCertificateStatus::Accepted,
        },
        &GetInstalledCertificateIdsResponse {
            certificate_hash_data: None,
            status: GetInstalledCertificateStatus::NotFound,
        },
    );
}

#[test]
fn delete_certificate() {
    let sample = DeleteCertificate {
        certificate_hash_data: hash_data(),
    };
    request(&sample, &sample);
    let answer = DeleteCertificateResponse {
        status: DeleteCertificateStatus::NotFound,
    };
    response::<DeleteCertificate>(&answer, &answer);
}

#[test]
fn get_log() {
    request(
        &GetLog {
            log: LogParameters {
                remote_location: ci("https://cs.example.com/logs/"),
                oldest_timestamp: Some(ts("2026-11-23T00:00:00Z")),
                latest_timestamp: Some(ts("2026-11-24T00:00:00Z")),
            },
            log_type: LogType::SecurityLog,
            request_id: 42,
            retries: Some(3),
            retry_interval: Some(120),
        },
        &GetLog {
            log: LogParameters {
                remote_location: ci("https://cs.example.com/logs/"),
                oldest_timestamp: None,
                latest_timestamp: None,
            },
            log_type: LogType::DiagnosticsLog,
            request_id: 43,
            retries: None,
            retry_interval: None,
        },
    );
    response::<GetLog>(
        &GetLogResponse {
            status: LogStatus::Accepted,
            filename: Some(ci("security-20261124.log")),
        },
        &GetLogResponse {
            status: LogStatus::Rejected,
            filename: None,
        },
    );
}

#[test]
fn signed_update_firmware() {
    let firmware = |install| Firmware {
        location: ci("https://cs.example.com/firmware/2.1.bin"),
        retrieve_date_time: ts("2026-11-24T02:00:00Z"),
        install_date_time: install,
        signing_certificate: ci("-----BEGIN CERTIFICATE-----\nMIID...\n-----END CERTIFICATE-----"),
        signature: ci("MEUCIQDx..."),
    };
    request(
        &SignedUpdateFirmware {
            retries: Some(3),
            retry_interval: Some(600),
            request_id: 7,
            firmware: firmware(Some(ts("2026-11-24T03:00:00Z"))),
        },
        &SignedUpdateFirmware {
            retries: None,
            retry_interval: None,
            request_id: 8,
            firmware: firmware(None),
        },
    );
    let answer = SignedUpdateFirmwareResponse {
        status: SignedUpdateFirmwareStatus::InvalidCertificate,
    };
    response::<SignedUpdateFirmware>(&answer, &answer);
}
