//! Typed OCPP actions: the `Action` trait that pairs a request with its response and wire
//! name, payload decoding with OCPP error codes, and `ChargePointRequest`, the closed set of
//! requests a charger may send us.
//!
//! Decoding is where a CALL gets its CALLERROR: an unknown action is `NotImplemented`, a
//! 1.6 action a charger has no business sending is `NotSupported`, a bad payload gets the
//! code `decode` derives from the serde error.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::decode;
use super::error::{DecodeError, ErrorCode};
use super::lenient::{Decoded, Deviation, Rule, Strictness, decode_payload_with};
use super::messages::{
    Authorize, BootNotification, DataTransfer, DiagnosticsStatusNotification,
    FirmwareStatusNotification, Heartbeat, LogStatusNotification, MeterValues,
    SecurityEventNotification, SignCertificate, SignedFirmwareStatusNotification, StartTransaction,
    StatusNotification, StopTransaction,
};

/// An OCPP request type: its wire name and the type of the answer.
pub trait Action: Serialize + DeserializeOwned + Send + 'static {
    const NAME: &'static str;
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// Decodes a CALL or CALLRESULT payload (`Call::payload.get()`) into `T`, or says which
/// CALLERROR to answer with (see `decode.rs` for the code each failure gets).
pub fn decode_payload<T: DeserializeOwned>(payload: &str) -> Result<T, DecodeError> {
    serde_json::from_str(payload).map_err(|error| decode::describe(&error, payload))
}

/// Requests a charge point sends to the central system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargePointRequest {
    Authorize(Authorize),
    BootNotification(BootNotification),
    DataTransfer(DataTransfer),
    DiagnosticsStatusNotification(DiagnosticsStatusNotification),
    FirmwareStatusNotification(FirmwareStatusNotification),
    Heartbeat(Heartbeat),
    LogStatusNotification(LogStatusNotification),
    MeterValues(MeterValues),
    SecurityEventNotification(SecurityEventNotification),
    SignCertificate(SignCertificate),
    SignedFirmwareStatusNotification(SignedFirmwareStatusNotification),
    StartTransaction(StartTransaction),
    StatusNotification(StatusNotification),
    StopTransaction(StopTransaction),
}

impl ChargePointRequest {
    /// Decodes a CALL from a charger.
    ///
    /// An action name OCPP 1.6 (security extension included) does not define gets
    /// `NotImplemented` ("Requested Action is not known by receiver"); one it defines but we do
    /// not accept from a charger (ReserveNow, CertificateSigned, …) gets `NotSupported`
    /// ("Requested Action is recognized but not supported by the receiver").
    pub fn decode(action: &str, payload: &RawValue) -> Result<Self, DecodeError> {
        Self::decode_with(action, payload, Strictness::Strict).map(|decoded| decoded.value)
    }

    /// [`Self::decode`], reading off-spec payloads as `strictness` allows (see `lenient`).
    pub fn decode_with(
        action: &str,
        payload: &RawValue,
        strictness: Strictness,
    ) -> Result<Decoded<Self>, DecodeError> {
        fn typed<T: DeserializeOwned>(
            payload: &str,
            strictness: Strictness,
            wrap: fn(T) -> ChargePointRequest,
        ) -> Result<Decoded<ChargePointRequest>, DecodeError> {
            decode_payload_with(payload, strictness).map(|d| Decoded {
                value: wrap(d.value),
                deviations: d.deviations,
            })
        }
        let payload = payload.get();
        let mut decoded = match action {
            "Authorize" => typed(payload, strictness, Self::Authorize),
            "BootNotification" => typed(payload, strictness, Self::BootNotification),
            "DataTransfer" => typed(payload, strictness, Self::DataTransfer),
            "DiagnosticsStatusNotification" => {
                typed(payload, strictness, Self::DiagnosticsStatusNotification)
            }
            "FirmwareStatusNotification" => {
                typed(payload, strictness, Self::FirmwareStatusNotification)
            }
            "Heartbeat" => typed(payload, strictness, Self::Heartbeat),
            "LogStatusNotification" => typed(payload, strictness, Self::LogStatusNotification),
            "MeterValues" => typed(payload, strictness, Self::MeterValues),
            "SecurityEventNotification" => {
                typed(payload, strictness, Self::SecurityEventNotification)
            }
            "SignCertificate" => typed(payload, strictness, Self::SignCertificate),
            "SignedFirmwareStatusNotification" => {
                typed(payload, strictness, Self::SignedFirmwareStatusNotification)
            }
            "StartTransaction" => typed(payload, strictness, Self::StartTransaction),
            "StatusNotification" => typed(payload, strictness, Self::StatusNotification),
            "StopTransaction" => typed(payload, strictness, Self::StopTransaction),
            other if OCPP16_ACTIONS.contains(&other) => Err(DecodeError::new(
                ErrorCode::NotSupported,
                format!("action \"{other}\" is not supported from a charge point"),
            )),
            other => Err(DecodeError::new(
                ErrorCode::NotImplemented,
                format!("unknown action \"{}\"", decode::shorten(other)),
            )),
        }?;
        if strictness == Strictness::Lenient {
            decoded.value.mend_values(&mut decoded.deviations);
        }
        Ok(decoded)
    }

    /// Lenient rules on values that decode fine but mean something else than they say: a
    /// decimal comma in a meter reading.
    fn mend_values(&mut self, deviations: &mut Vec<Deviation>) {
        let (field, values) = match self {
            Self::MeterValues(m) => ("meterValue", &mut m.meter_value),
            Self::StopTransaction(s) => match s.transaction_data.as_mut() {
                Some(data) => ("transactionData", data),
                None => return,
            },
            _ => return,
        };
        for (i, value) in values.iter_mut().enumerate() {
            for (j, sample) in value.sampled_value.iter_mut().enumerate() {
                if sample.mend_decimal_comma() {
                    deviations.push(Deviation {
                        rule: Rule::CommaDecimal,
                        detail: format!("{field}[{i}].sampledValue[{j}].value"),
                    });
                }
            }
        }
    }

    /// The wire name, for logs and metrics.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Authorize(_) => <Authorize as Action>::NAME,
            Self::BootNotification(_) => <BootNotification as Action>::NAME,
            Self::DataTransfer(_) => <DataTransfer as Action>::NAME,
            Self::DiagnosticsStatusNotification(_) => {
                <DiagnosticsStatusNotification as Action>::NAME
            }
            Self::FirmwareStatusNotification(_) => <FirmwareStatusNotification as Action>::NAME,
            Self::Heartbeat(_) => <Heartbeat as Action>::NAME,
            Self::LogStatusNotification(_) => <LogStatusNotification as Action>::NAME,
            Self::MeterValues(_) => <MeterValues as Action>::NAME,
            Self::SecurityEventNotification(_) => <SecurityEventNotification as Action>::NAME,
            Self::SignCertificate(_) => <SignCertificate as Action>::NAME,
            Self::SignedFirmwareStatusNotification(_) => {
                <SignedFirmwareStatusNotification as Action>::NAME
            }
            Self::StartTransaction(_) => <StartTransaction as Action>::NAME,
            Self::StatusNotification(_) => <StatusNotification as Action>::NAME,
            Self::StopTransaction(_) => <StopTransaction as Action>::NAME,
        }
    }
}

/// Every action OCPP 1.6 defines, including the 2020 security extension (one per request
/// schema in `schemas/ocpp16/`, vendored; a test keeps the two in step).
pub const OCPP16_ACTIONS: &[&str] = &[
    "Authorize",
    "BootNotification",
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "DeleteCertificate",
    "DiagnosticsStatusNotification",
    "ExtendedTriggerMessage",
    "FirmwareStatusNotification",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "Heartbeat",
    "InstallCertificate",
    "LogStatusNotification",
    "MeterValues",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SecurityEventNotification",
    "SendLocalList",
    "SetChargingProfile",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
];
