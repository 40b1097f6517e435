//! The payloads a plausible charge point sends, and the minimal valid answer it gives to each
//! request a central system may make. Every payload here validates against the official
//! OCPP 1.6J schemas (lengths and enums included). Pure data, no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// BootNotification for `charge_box_id`: fixed vendor/model/firmware, serials derived from the
/// id (cut to the schema's 25 characters).
pub fn boot_notification(charge_box_id: &str) -> Value {
    let serial: String = format!("SN-{charge_box_id}").chars().take(25).collect();
    let meter_serial: String = format!("MTR-{charge_box_id}").chars().take(25).collect();
    json!({
        "chargePointVendor": "Echarging Labs",
        "chargePointModel": "SimCharge AC22",
        "chargePointSerialNumber": serial,
        "chargeBoxSerialNumber": serial,
        "firmwareVersion": "1.8.3+sim",
        "meterType": "Eastron SDM630",
        "meterSerialNumber": meter_serial,
    })
}

/// StatusNotification for one connector, stamped now.
pub fn status_notification(connector_id: u32, status: &str, error_code: &str) -> Value {
    json!({
        "connectorId": connector_id,
        "errorCode": error_code,
        "status": status,
        "timestamp": now_rfc3339(),
    })
}

/// The smallest schema-valid CALLRESULT payload a charger gives to a central-system request,
/// agreeing wherever there is a choice; `None` for an action it does not know (answer
/// `NotImplemented`).
pub fn default_answer(action: &str) -> Option<Value> {
    let answer = match action {
        "CancelReservation"
        | "ChangeAvailability"
        | "ChangeConfiguration"
        | "ClearCache"
        | "ClearChargingProfile"
        | "RemoteStartTransaction"
        | "RemoteStopTransaction"
        | "ReserveNow"
        | "Reset"
        | "SendLocalList"
        | "SetChargingProfile"
        | "TriggerMessage" => {
            json!({"status": "Accepted"})
        }
        "UnlockConnector" => json!({"status": "Unlocked"}),
        "GetCompositeSchedule" => json!({"status": "Rejected"}),
        "DataTransfer" => json!({"status": "UnknownVendorId"}),
        "GetLocalListVersion" => json!({"listVersion": 0}),
        "GetConfiguration" => json!({"configurationKey": [], "unknownKey": []}),
        "GetDiagnostics" | "UpdateFirmware" => json!({}),
        _ => return None,
    };
    Some(answer)
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2025-03-01T12:30:05.123Z`.
pub fn now_rfc3339() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since_epoch.as_secs(), since_epoch.subsec_millis())
}

fn rfc3339(unix_seconds: u64, millis: u32) -> String {
    let days = unix_seconds / 86_400;
    let secs_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_740_832_205, 123), "2025-03-01T12:30:05.123Z");
        assert_eq!(rfc3339(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn boot_payload_respects_schema_lengths() {
        let boot = boot_notification("A-VERY-LONG-CHARGE-BOX-IDENTIFIER-0001");
        for (field, max) in [
            ("chargePointVendor", 20),
            ("chargePointModel", 20),
            ("chargePointSerialNumber", 25),
            ("chargeBoxSerialNumber", 25),
            ("firmwareVersion", 50),
            ("meterType", 25),
            ("meterSerialNumber", 25),
        ] {
            let len = boot[field].as_str().map(|s| s.chars().count());
            assert!(len.is_some_and(|n| n <= max), "{field}: {len:?}");
        }
    }

    #[test]
    fn answers_known_requests_only() {
        assert_eq!(
            default_answer("ReserveNow"),
            Some(json!({"status": "Accepted"}))
        );
        assert_eq!(
            default_answer("UnlockConnector"),
            Some(json!({"status": "Unlocked"}))
        );
        assert_eq!(default_answer("Heartbeat"), None);
        assert_eq!(default_answer("NoSuchAction"), None);
    }
}
