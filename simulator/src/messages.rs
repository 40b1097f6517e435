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

/// Authorize for an idTag.
pub fn authorize(id_tag: &str) -> Value {
    json!({"idTag": id_tag})
}

/// StartTransaction as the charger sends it the moment the session starts.
pub fn start_transaction(
    connector_id: u32,
    id_tag: &str,
    meter_start_wh: i64,
    reservation_id: Option<i64>,
) -> Value {
    let mut payload = json!({
        "connectorId": connector_id,
        "idTag": id_tag,
        "meterStart": meter_start_wh,
        "timestamp": now_rfc3339(),
    });
    if let Some(id) = reservation_id {
        payload["reservationId"] = json!(id);
    }
    payload
}

/// Why a transaction stopped, in OCPP 1.6's words (`StopTransaction.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The driver ended it at the charger.
    Local,
    /// RemoteStopTransaction.
    Remote,
    /// The central system did not accept the idTag at StartTransaction.
    DeAuthorized,
    SoftReset,
    HardReset,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Local => "Local",
            StopReason::Remote => "Remote",
            StopReason::DeAuthorized => "DeAuthorized",
            StopReason::SoftReset => "SoftReset",
            StopReason::HardReset => "HardReset",
        }
    }
}

/// StopTransaction for `transaction_id`, stamped now.
pub fn stop_transaction(
    transaction_id: i64,
    id_tag: Option<&str>,
    meter_stop_wh: i64,
    reason: StopReason,
) -> Value {
    let mut payload = json!({
        "transactionId": transaction_id,
        "meterStop": meter_stop_wh,
        "timestamp": now_rfc3339(),
        "reason": reason.as_str(),
    });
    if let Some(tag) = id_tag {
        payload["idTag"] = json!(tag);
    }
    payload
}

/// MeterValues with the energy register (Wh) and the power drawn (W), stamped now; part of a
/// transaction when `transaction_id` is given. `context` is `Sample.Periodic` for the regular
/// samples, `Trigger` when the central system asked for it.
pub fn meter_values(
    connector_id: u32,
    transaction_id: Option<i64>,
    register_wh: i64,
    power_w: u32,
    context: &str,
) -> Value {
    let mut payload = json!({
        "connectorId": connector_id,
        "meterValue": [{
            "timestamp": now_rfc3339(),
            "sampledValue": [
                {
                    "value": register_wh.to_string(),
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "location": "Outlet",
                    "unit": "Wh",
                },
                {
                    "value": power_w.to_string(),
                    "context": context,
                    "measurand": "Power.Active.Import",
                    "location": "Outlet",
                    "unit": "W",
                },
            ],
        }],
    });
    if let Some(id) = transaction_id {
        payload["transactionId"] = json!(id);
    }
    payload
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

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time (`Z` or `±hh:mm`, optional
/// fraction), e.g. a ReserveNow `expiryDate`; `None` when it is not one.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if sep(at, b".") {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = &text[start..end.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
        at = end;
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && sep(at + 3, b":") => {
            let minutes = digits(at + 1..at + 3)? * 60 + digits(at + 4..at + 6)?;
            if sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC with milliseconds of a Unix time in milliseconds (non-negative).
pub fn rfc3339_from_ms(unix_ms: i64) -> String {
    let ms = unix_ms.max(0) as u64;
    rfc3339(ms / 1000, (ms % 1000) as u32)
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
    fn parses_rfc3339_back() {
        for ms in [0, 951_782_400_005, 1_740_832_205_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_from_ms(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:30:00-00:30"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2025-03-01T12:30:05.1Z"),
            Some(1_740_832_205_100)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-03-01T12:30:05.123456Z"),
            Some(1_740_832_205_123)
        );
        for bad in [
            "",
            "2025-03-01",
            "2025-03-01T12:30:05",
            "2025-13-01T12:30:05Z",
            "2025-03-01T12:30:05.Z",
            "2025-03-01T12:30:05+0100",
            "2025-03-01T12:30:05Zjunk",
            "2025-03-0xT12:30:05Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn transaction_payloads_carry_what_the_schemas_require() {
        let start = start_transaction(1, "SIMTAG-00001", 1000, Some(7));
        assert_eq!(start["reservationId"], 7);
        assert!(
            start_transaction(1, "T", 0, None)
                .get("reservationId")
                .is_none()
        );
        let stop = stop_transaction(42, Some("T"), 1015, StopReason::DeAuthorized);
        assert_eq!(stop["reason"], "DeAuthorized");
        assert_eq!(stop["transactionId"], 42);
        let meter = meter_values(2, Some(42), 1015, 11_000, "Sample.Periodic");
        assert_eq!(meter["transactionId"], 42);
        assert_eq!(meter["meterValue"][0]["sampledValue"][0]["value"], "1015");
        assert!(
            meter_values(2, None, 1, 0, "Trigger")
                .get("transactionId")
                .is_none()
        );
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
