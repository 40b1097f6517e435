//! Every enum the schemas of our actions define, value for value and in order, against our
//! Rust enums; and no schema enum left without a Rust counterpart.

use serde_json::Value;

use super::schema::schema;
use crate::ocpp::v16::*;

macro_rules! wire {
    ($enum:ty) => {
        <$enum>::ALL
            .iter()
            .map(|value| value.as_str())
            .collect::<Vec<_>>()
    };
}

const SAMPLED_VALUE: &str = "/items/properties/sampledValue/items/properties";
const PROFILE: &str = "/properties/chargingProfile/properties";

/// (schema file, JSON pointer of the property, our spellings)
fn table() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let id_tag_status = "/properties/idTagInfo/properties/status".to_owned();
    let mut table = vec![
        (
            "AuthorizeResponse.json",
            id_tag_status.clone(),
            wire!(AuthorizationStatus),
        ),
        (
            "StartTransactionResponse.json",
            id_tag_status.clone(),
            wire!(AuthorizationStatus),
        ),
        (
            "StopTransactionResponse.json",
            id_tag_status,
            wire!(AuthorizationStatus),
        ),
        (
            "ChangeAvailability.json",
            "/properties/type".into(),
            wire!(AvailabilityType),
        ),
        ("Reset.json", "/properties/type".into(), wire!(ResetType)),
        (
            "StatusNotification.json",
            "/properties/errorCode".into(),
            wire!(ChargePointErrorCode),
        ),
        (
            "StopTransaction.json",
            "/properties/reason".into(),
            wire!(Reason),
        ),
        (
            "TriggerMessage.json",
            "/properties/requestedMessage".into(),
            wire!(MessageTrigger),
        ),
        (
            "RemoteStartTransaction.json",
            format!("{PROFILE}/chargingProfilePurpose"),
            wire!(ChargingProfilePurposeType),
        ),
        (
            "RemoteStartTransaction.json",
            format!("{PROFILE}/chargingProfileKind"),
            wire!(ChargingProfileKindType),
        ),
        (
            "RemoteStartTransaction.json",
            format!("{PROFILE}/recurrencyKind"),
            wire!(RecurrencyKindType),
        ),
        (
            "RemoteStartTransaction.json",
            format!("{PROFILE}/chargingSchedule/properties/chargingRateUnit"),
            wire!(ChargingRateUnitType),
        ),
    ];
    for (file, values) in [
        ("BootNotificationResponse.json", wire!(RegistrationStatus)),
        ("StatusNotification.json", wire!(ChargePointStatus)),
        ("ChangeAvailabilityResponse.json", wire!(AvailabilityStatus)),
        (
            "ChangeConfigurationResponse.json",
            wire!(ConfigurationStatus),
        ),
        ("ClearCacheResponse.json", wire!(ClearCacheStatus)),
        ("DataTransferResponse.json", wire!(DataTransferStatus)),
        (
            "RemoteStartTransactionResponse.json",
            wire!(RemoteStartStopStatus),
        ),
        (
            "RemoteStopTransactionResponse.json",
            wire!(RemoteStartStopStatus),
        ),
        ("ResetResponse.json", wire!(ResetStatus)),
        ("ReserveNowResponse.json", wire!(ReservationStatus)),
        (
            "CancelReservationResponse.json",
            wire!(CancelReservationStatus),
        ),
        ("TriggerMessageResponse.json", wire!(TriggerMessageStatus)),
        ("UnlockConnectorResponse.json", wire!(UnlockStatus)),
        (
            "DiagnosticsStatusNotification.json",
            wire!(DiagnosticsStatus),
        ),
        ("FirmwareStatusNotification.json", wire!(FirmwareStatus)),
        ("SendLocalListResponse.json", wire!(UpdateStatus)),
        (
            "SetChargingProfileResponse.json",
            wire!(ChargingProfileStatus),
        ),
        (
            "ClearChargingProfileResponse.json",
            wire!(ClearChargingProfileStatus),
        ),
        (
            "GetCompositeScheduleResponse.json",
            wire!(GetCompositeScheduleStatus),
        ),
    ] {
        table.push((file, "/properties/status".to_owned(), values));
    }
    table.extend(outbound_table());
    let without_hertz: Vec<&str> = wire!(UnitOfMeasure)
        .into_iter()
        .filter(|unit| *unit != "Hertz")
        .collect();
    for (file, array, units) in [
        (
            "MeterValues.json",
            "/properties/meterValue",
            wire!(UnitOfMeasure),
        ),
        (
            "StopTransaction.json",
            "/properties/transactionData",
            without_hertz,
        ),
    ] {
        let at = |name: &str| format!("{array}{SAMPLED_VALUE}/{name}");
        table.push((file, at("context"), wire!(ReadingContext)));
        table.push((file, at("format"), wire!(ValueFormat)));
        table.push((file, at("measurand"), wire!(Measurand)));
        table.push((file, at("phase"), wire!(Phase)));
        table.push((file, at("location"), wire!(Location)));
        table.push((file, at("unit"), units));
    }
    table
}

/// The toolbox actions' enums: inline in the 1.6 schemas, under `definitions` in the security
/// extension's.
fn outbound_table() -> Vec<(&'static str, String, Vec<&'static str>)> {
    const CS_PROFILE: &str = "/properties/csChargingProfiles/properties";
    let mut table = vec![
        (
            "SendLocalList.json",
            "/properties/updateType".to_owned(),
            wire!(UpdateType),
        ),
        (
            "SendLocalList.json",
            "/properties/localAuthorizationList/items/properties/idTagInfo/properties/status"
                .to_owned(),
            wire!(AuthorizationStatus),
        ),
        (
            "SetChargingProfile.json",
            format!("{CS_PROFILE}/chargingProfilePurpose"),
            wire!(ChargingProfilePurposeType),
        ),
        (
            "SetChargingProfile.json",
            format!("{CS_PROFILE}/chargingProfileKind"),
            wire!(ChargingProfileKindType),
        ),
        (
            "SetChargingProfile.json",
            format!("{CS_PROFILE}/recurrencyKind"),
            wire!(RecurrencyKindType),
        ),
        (
            "SetChargingProfile.json",
            format!("{CS_PROFILE}/chargingSchedule/properties/chargingRateUnit"),
            wire!(ChargingRateUnitType),
        ),
        (
            "ClearChargingProfile.json",
            "/properties/chargingProfilePurpose".to_owned(),
            wire!(ChargingProfilePurposeType),
        ),
        (
            "GetCompositeSchedule.json",
            "/properties/chargingRateUnit".to_owned(),
            wire!(ChargingRateUnitType),
        ),
        (
            "GetCompositeScheduleResponse.json",
            "/properties/chargingSchedule/properties/chargingRateUnit".to_owned(),
            wire!(ChargingRateUnitType),
        ),
    ];
    for (file, definition, values) in [
        (
            "ExtendedTriggerMessage.json",
            "MessageTriggerEnumType",
            wire!(ExtendedMessageTrigger),
        ),
        (
            "ExtendedTriggerMessageResponse.json",
            "TriggerMessageStatusEnumType",
            wire!(TriggerMessageStatus),
        ),
        (
            "CertificateSignedResponse.json",
            "CertificateSignedStatusEnumType",
            wire!(CertificateSignedStatus),
        ),
        (
            "InstallCertificate.json",
            "CertificateUseEnumType",
            wire!(CertificateUse),
        ),
        (
            "InstallCertificateResponse.json",
            "InstallCertificateStatusEnumType",
            wire!(InstallCertificateStatus),
        ),
        (
            "GetInstalledCertificateIds.json",
            "CertificateUseEnumType",
            wire!(CertificateUse),
        ),
        (
            "GetInstalledCertificateIdsResponse.json",
            "GetInstalledCertificateStatusEnumType",
            wire!(GetInstalledCertificateStatus),
        ),
        (
            "GetInstalledCertificateIdsResponse.json",
            "HashAlgorithmEnumType",
            wire!(HashAlgorithm),
        ),
        (
            "DeleteCertificate.json",
            "HashAlgorithmEnumType",
            wire!(HashAlgorithm),
        ),
        (
            "DeleteCertificateResponse.json",
            "DeleteCertificateStatusEnumType",
            wire!(DeleteCertificateStatus),
        ),
        ("GetLog.json", "LogEnumType", wire!(LogType)),
        ("GetLogResponse.json", "LogStatusEnumType", wire!(LogStatus)),
        (
            "SignedUpdateFirmwareResponse.json",
            "UpdateFirmwareStatusEnumType",
            wire!(SignedUpdateFirmwareStatus),
        ),
        (
            "LogStatusNotification.json",
            "UploadLogStatusEnumType",
            wire!(UploadLogStatus),
        ),
        (
            "SignedFirmwareStatusNotification.json",
            "FirmwareStatusEnumType",
            wire!(SignedFirmwareStatus),
        ),
        (
            "SignCertificateResponse.json",
            "GenericStatusEnumType",
            wire!(GenericStatus),
        ),
    ] {
        table.push((file, format!("/definitions/{definition}"), values));
    }
    table
}

#[test]
fn enums_match_the_schemas_exactly() {
    for (file, pointer, ours) in table() {
        let schema = schema(file);
        let values = schema
            .pointer(&format!("{pointer}/enum"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{file}{pointer} has no enum"));
        let theirs: Vec<&str> = values.iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(ours, theirs, "{file}{pointer}");
    }
}

#[test]
fn every_schema_enum_is_in_the_table() {
    fn find(value: &Value, pointer: String, out: &mut Vec<String>) {
        if let Value::Object(members) = value {
            if members.contains_key("enum") {
                out.push(pointer.clone());
            }
            for (key, member) in members {
                find(member, format!("{pointer}/{key}"), out);
            }
        }
    }
    let table = table();
    for name in [
        "Authorize",
        "BootNotification",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "DataTransfer",
        "GetConfiguration",
        "Heartbeat",
        "MeterValues",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "UnlockConnector",
        "ReserveNow",
        "CancelReservation",
        "TriggerMessage",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "GetLocalListVersion",
        "SendLocalList",
        "UpdateFirmware",
        "GetDiagnostics",
        "SetChargingProfile",
        "ClearChargingProfile",
        "GetCompositeSchedule",
        "ExtendedTriggerMessage",
        "CertificateSigned",
        "InstallCertificate",
        "GetInstalledCertificateIds",
        "DeleteCertificate",
        "GetLog",
        "SignedUpdateFirmware",
        "SecurityEventNotification",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
        "SignCertificate",
    ] {
        for file in [format!("{name}.json"), format!("{name}Response.json")] {
            let mut found = Vec::new();
            find(&schema(&file), String::new(), &mut found);
            for pointer in found {
                assert!(
                    table.iter().any(|(f, p, _)| *f == file && *p == pointer),
                    "{file}{pointer}: enum without a Rust counterpart in the table"
                );
            }
        }
    }
}

#[test]
fn enums_parse_what_they_print() {
    for value in Measurand::ALL {
        assert_eq!(Measurand::parse(value.as_str()), Some(*value));
        assert_eq!(value.to_string(), value.as_str());
        let json = serde_json::to_string(value).unwrap();
        assert_eq!(serde_json::from_str::<Measurand>(&json).unwrap(), *value);
    }
    assert_eq!(
        UnitOfMeasure::parse("Celcius"),
        Some(UnitOfMeasure::Celcius)
    );
    assert_eq!(UnitOfMeasure::parse("kwh"), None);
    assert_eq!(Phase::L1N.as_str(), "L1-N");
}
