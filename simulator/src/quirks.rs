//! Field habits (`--quirks`): the ways real charge points bend OCPP 1.6J that a lenient central
//! system takes and a strict one refuses. Each quirk rewrites the payloads a station sends
//! (BootNotification, StatusNotification, MeterValues, Start/StopTransaction) or how it
//! connects (subprotocol spelling, trailing slash); with none set nothing is touched, so a run
//! without `--quirks` sends exactly what it always did. Pure: no I/O, no randomness.

use std::fmt;

use serde_json::{Map, Value, json};

/// One habit. Names (`--quirks` list items) are kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Boot serial numbers longer than the schema's 25 (CiString25) characters, as whole
    /// fleets of wallboxes send them.
    LongSerial,
    /// `null` for optional fields instead of leaving them out.
    Nulls,
    /// Members the schema does not define (vendor extensions).
    ExtraFields,
    /// `sampledValue.value` as a JSON number, where the schema wants a string.
    NumericMeter,
    /// Integers sent as strings (`"meterStart": "1234"`).
    StringNumbers,
    /// Measurands, units and locations outside the 1.6 enums, and enum values in other case.
    Measurands,
    /// Enum values (status, error code, stop reason) in other letter case.
    EnumCase,
    /// `"7400,0"`: a decimal comma in `sampledValue.value`.
    CommaDecimal,
    /// `OCPP1.6` offered in `Sec-WebSocket-Protocol` instead of `ocpp1.6`.
    SubprotocolCase,
    /// The endpoint with a trailing slash: `/ocpp/{id}/`.
    TrailingSlash,
}

impl Quirk {
    pub const ALL: [Quirk; 10] = [
        Quirk::LongSerial,
        Quirk::Nulls,
        Quirk::ExtraFields,
        Quirk::NumericMeter,
        Quirk::StringNumbers,
        Quirk::Measurands,
        Quirk::EnumCase,
        Quirk::CommaDecimal,
        Quirk::SubprotocolCase,
        Quirk::TrailingSlash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quirk::LongSerial => "long-serial",
            Quirk::Nulls => "nulls",
            Quirk::ExtraFields => "extra-fields",
            Quirk::NumericMeter => "numeric-meter",
            Quirk::StringNumbers => "string-numbers",
            Quirk::Measurands => "measurands",
            Quirk::EnumCase => "enum-case",
            Quirk::CommaDecimal => "comma-decimal",
            Quirk::SubprotocolCase => "subprotocol-case",
            Quirk::TrailingSlash => "trailing-slash",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Named sets of quirks, for `--quirks PROFILE`.
pub const PROFILES: &[(&str, &[Quirk])] = &[
    ("none", &[]),
    ("all", &Quirk::ALL),
    // What issue reports and the public station templates show of these families: serials past
    // 25 characters (Schneider EVlink), vendor members and nulls in the Boot.
    (
        "schneider",
        &[Quirk::LongSerial, Quirk::ExtraFields, Quirk::Nulls],
    ),
    // Meter values as numbers or with decimal commas, and measurands off the 1.6 list.
    (
        "meter-firmware",
        &[Quirk::NumericMeter, Quirk::CommaDecimal, Quirk::Measurands],
    ),
];

/// A set of quirks; empty by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks(u16);

impl Quirks {
    pub fn none() -> Quirks {
        Quirks(0)
    }

    pub fn all() -> Quirks {
        Quirks::of(&Quirk::ALL)
    }

    pub fn of(list: &[Quirk]) -> Quirks {
        Quirks(list.iter().fold(0, |bits, q| bits | q.bit()))
    }

    /// `all`, a profile name, or a comma-separated list of quirk and profile names.
    pub fn parse(spec: &str) -> Result<Quirks, String> {
        let mut set = Quirks::none();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((_, list)) = PROFILES.iter().find(|(name, _)| *name == item) {
                set.0 |= Quirks::of(list).0;
            } else if let Some(q) = Quirk::ALL.iter().find(|q| q.name() == item) {
                set.0 |= q.bit();
            } else {
                let quirks: Vec<_> = Quirk::ALL.iter().map(|q| q.name()).collect();
                let profiles: Vec<_> = PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown quirk `{item}`: expected {} or a profile ({})",
                    quirks.join(", "),
                    profiles.join(", ")
                ));
            }
        }
        Ok(set)
    }

    pub fn has(self, q: Quirk) -> bool {
        self.0 & q.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The subprotocols to offer instead of `offered`, when a quirk changes them.
    pub fn subprotocols(self, offered: &[String]) -> Vec<String> {
        if self.has(Quirk::SubprotocolCase) {
            offered.iter().map(|p| p.to_uppercase()).collect()
        } else {
            offered.to_vec()
        }
    }

    /// The payload of `action` as a charger with these habits sends it; `payload` is the
    /// schema-valid one. Actions the quirks do not concern come back unchanged.
    pub fn apply(self, action: &str, payload: &Value) -> Value {
        let mut p = payload.clone();
        let Some(obj) = p.as_object_mut() else {
            return p;
        };
        match action {
            "BootNotification" => self.boot(obj),
            "StatusNotification" => self.status(obj),
            "MeterValues" => self.meter_values(obj),
            "StartTransaction" => self.start(obj),
            "StopTransaction" => self.stop(obj),
            _ => {}
        }
        p
    }

    fn boot(self, obj: &mut Map<String, Value>) {
        if self.has(Quirk::LongSerial) {
            // Factory serials with a product reference in front run past 25 characters.
            for key in ["chargePointSerialNumber", "chargeBoxSerialNumber"] {
                if let Some(Value::String(s)) = obj.get(key) {
                    let long = format!("EVB1A22P4RI-{s}-3N1915043A");
                    obj.insert(key.into(), json!(long));
                }
            }
            if let Some(Value::String(s)) = obj.get("meterSerialNumber") {
                let long = format!("{s}-MID-B23-112-100-0001");
                obj.insert("meterSerialNumber".into(), json!(long));
            }
        }
        if self.has(Quirk::Nulls) {
            obj.insert("iccid".into(), Value::Null);
            obj.insert("imsi".into(), Value::Null);
        }
        if self.has(Quirk::ExtraFields) {
            obj.insert("chargePointSerial".into(), json!("sim"));
            obj.insert("hardwareVersion".into(), json!("HW-2.1"));
        }
    }

    fn status(self, obj: &mut Map<String, Value>) {
        if self.has(Quirk::Nulls) {
            obj.insert("info".into(), Value::Null);
            obj.insert("vendorErrorCode".into(), Value::Null);
        }
        if self.has(Quirk::ExtraFields) {
            obj.insert("evseId".into(), json!(1));
        }
        if self.has(Quirk::EnumCase) {
            for key in ["status", "errorCode"] {
                if let Some(Value::String(s)) = obj.get(key) {
                    let upper = s.to_uppercase();
                    obj.insert(key.into(), json!(upper));
                }
            }
        }
    }

    fn start(self, obj: &mut Map<String, Value>) {
        if self.has(Quirk::Nulls) && !obj.contains_key("reservationId") {
            obj.insert("reservationId".into(), Value::Null);
        }
        if self.has(Quirk::ExtraFields) {
            obj.insert("vendorId".into(), json!("sim"));
        }
        if self.has(Quirk::StringNumbers) {
            stringify(obj, "meterStart");
        }
    }

    fn stop(self, obj: &mut Map<String, Value>) {
        if self.has(Quirk::Nulls) && !obj.contains_key("idTag") {
            obj.insert("idTag".into(), Value::Null);
        }
        if self.has(Quirk::ExtraFields) {
            obj.insert("vendorId".into(), json!("sim"));
        }
        if self.has(Quirk::StringNumbers) {
            stringify(obj, "meterStop");
        }
        if self.has(Quirk::EnumCase)
            && let Some(Value::String(s)) = obj.get("reason")
        {
            let lower = s.to_lowercase();
            obj.insert("reason".into(), json!(lower));
        }
    }

    fn meter_values(self, obj: &mut Map<String, Value>) {
        if self.has(Quirk::ExtraFields) {
            obj.insert("vendorId".into(), json!("sim"));
        }
        let Some(Value::Array(readings)) = obj.get_mut("meterValue") else {
            return;
        };
        for reading in readings.iter_mut() {
            let Some(Value::Array(samples)) = reading.get_mut("sampledValue") else {
                continue;
            };
            for sample in samples.iter_mut() {
                self.sample(sample);
            }
            if self.has(Quirk::Measurands) {
                // Beside the register, what wallboxes report in units off the 1.6 list: line
                // frequency in "Hz" (the list has none) and a body temperature in "C" (the
                // list says "Celcius"/"Celsius").
                samples.push(json!({"value": "49.99", "context": "Sample.Periodic",
                    "measurand": "Frequency", "unit": "Hz"}));
                samples.push(json!({"value": "31.5", "context": "Sample.Periodic",
                    "measurand": "Temperature", "unit": "C", "location": "Body"}));
            }
        }
    }

    fn sample(self, sample: &mut Value) {
        let register = sample["measurand"] == "Energy.Active.Import.Register";
        let Some(Value::String(text)) = sample.get("value") else {
            return;
        };
        let text = text.clone();
        // The decimal comma is a habit of the gauges (power, current) that firmwares print
        // with a fraction; the register keeps its integer form, as a number with
        // numeric-meter. Together each value shows one habit.
        if self.has(Quirk::CommaDecimal) && !register && !text.contains(['.', ',']) {
            sample["value"] = json!(format!("{text},0"));
        } else if self.has(Quirk::NumericMeter)
            && let Ok(n) = text.parse::<i64>()
        {
            sample["value"] = json!(n);
        }
    }
}

impl fmt::Display for Quirks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Quirk::ALL
            .iter()
            .filter(|q| self.has(**q))
            .map(|q| q.name())
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

fn stringify(obj: &mut Map<String, Value>, key: &str) {
    if let Some(n) = obj.get(key).and_then(Value::as_i64) {
        obj.insert(key.into(), json!(n.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{self, StopReason};

    fn only(q: Quirk) -> Quirks {
        Quirks::of(&[q])
    }

    #[test]
    fn no_quirks_change_nothing() {
        let boot = messages::boot_notification("SIM-00001");
        let meter = messages::meter_values(1, Some(7), 12_000, 7_400, "Sample.Periodic");
        let status = messages::status_notification(1, "Available", "NoError");
        for (action, p) in [
            ("BootNotification", &boot),
            ("MeterValues", &meter),
            ("StatusNotification", &status),
        ] {
            assert_eq!(&Quirks::none().apply(action, p), p);
        }
        assert_eq!(
            Quirks::none().subprotocols(&["ocpp1.6".into()]),
            ["ocpp1.6"]
        );
    }

    #[test]
    fn parse_lists_and_profiles() {
        assert_eq!(Quirks::parse("all").unwrap(), Quirks::all());
        assert_eq!(Quirks::parse("none").unwrap(), Quirks::none());
        let q = Quirks::parse("long-serial, nulls,comma-decimal").unwrap();
        assert!(q.has(Quirk::LongSerial) && q.has(Quirk::Nulls) && q.has(Quirk::CommaDecimal));
        assert!(!q.has(Quirk::ExtraFields));
        assert_eq!(q.to_string(), "long-serial,nulls,comma-decimal");
        let s = Quirks::parse("schneider,subprotocol-case").unwrap();
        assert!(s.has(Quirk::LongSerial) && s.has(Quirk::SubprotocolCase));
        let err = Quirks::parse("long-serial,bogus").unwrap_err();
        assert!(
            err.contains("`bogus`") && err.contains("long-serial"),
            "{err}"
        );
        for q in Quirk::ALL {
            assert_eq!(Quirks::parse(q.name()).unwrap(), only(q));
        }
    }

    #[test]
    fn long_serial_runs_past_25() {
        let p = only(Quirk::LongSerial).apply(
            "BootNotification",
            &messages::boot_notification("SIM-00001"),
        );
        for key in [
            "chargePointSerialNumber",
            "chargeBoxSerialNumber",
            "meterSerialNumber",
        ] {
            let s = p[key].as_str().unwrap();
            assert!(
                s.chars().count() > 25 && s.chars().count() <= 500,
                "{key}: {s}"
            );
        }
        assert_eq!(p["chargePointVendor"], "Echarging Labs");
    }

    #[test]
    fn nulls_fill_optional_fields() {
        let n = only(Quirk::Nulls);
        let boot = n.apply(
            "BootNotification",
            &messages::boot_notification("SIM-00001"),
        );
        assert!(boot["iccid"].is_null() && boot.get("iccid").is_some());
        let status = n.apply(
            "StatusNotification",
            &messages::status_notification(1, "Available", "NoError"),
        );
        assert!(status.get("info").is_some_and(Value::is_null));
        let start = n.apply(
            "StartTransaction",
            &messages::start_transaction(1, "T", 0, None),
        );
        assert!(start.get("reservationId").is_some_and(Value::is_null));
        // A real reservationId is never replaced.
        let start = n.apply(
            "StartTransaction",
            &messages::start_transaction(1, "T", 0, Some(4)),
        );
        assert_eq!(start["reservationId"], 4);
        let stop = n.apply(
            "StopTransaction",
            &messages::stop_transaction(9, None, 10, StopReason::Local),
        );
        assert!(stop.get("idTag").is_some_and(Value::is_null));
    }

    #[test]
    fn extra_fields_add_members() {
        let x = only(Quirk::ExtraFields);
        let boot = x.apply(
            "BootNotification",
            &messages::boot_notification("SIM-00001"),
        );
        assert_eq!(boot["hardwareVersion"], "HW-2.1");
        let status = x.apply(
            "StatusNotification",
            &messages::status_notification(1, "Available", "NoError"),
        );
        assert_eq!(status["evseId"], 1);
        let meter = x.apply(
            "MeterValues",
            &messages::meter_values(1, None, 1, 2, "Trigger"),
        );
        assert_eq!(meter["vendorId"], "sim");
    }

    #[test]
    fn numeric_meter_sends_numbers() {
        let p = only(Quirk::NumericMeter).apply(
            "MeterValues",
            &messages::meter_values(1, Some(3), 12_345, 7_400, "Sample.Periodic"),
        );
        let samples = p["meterValue"][0]["sampledValue"].as_array().unwrap();
        assert_eq!(samples[0]["value"], json!(12_345));
        assert_eq!(samples[1]["value"], json!(7_400));
    }

    #[test]
    fn comma_decimal_only_on_gauges() {
        let p = only(Quirk::CommaDecimal).apply(
            "MeterValues",
            &messages::meter_values(1, Some(3), 12_345, 7_400, "Sample.Periodic"),
        );
        let samples = p["meterValue"][0]["sampledValue"].as_array().unwrap();
        assert_eq!(samples[0]["value"], "12345");
        assert_eq!(samples[1]["value"], "7400,0");
    }

    #[test]
    fn numeric_and_comma_together_split_the_samples() {
        let p = Quirks::all().apply(
            "MeterValues",
            &messages::meter_values(1, Some(3), 12_345, 7_400, "Sample.Periodic"),
        );
        let samples = p["meterValue"][0]["sampledValue"].as_array().unwrap();
        assert_eq!(samples[0]["value"], json!(12_345));
        assert_eq!(samples[1]["value"], "7400,0");
    }

    #[test]
    fn measurands_add_off_list_samples() {
        let p = only(Quirk::Measurands).apply(
            "MeterValues",
            &messages::meter_values(1, Some(3), 1, 2, "Sample.Periodic"),
        );
        let samples = p["meterValue"][0]["sampledValue"].as_array().unwrap();
        assert_eq!(samples.len(), 4);
        assert!(samples.iter().any(|s| s["unit"] == "Hz"));
        assert!(samples.iter().any(|s| s["unit"] == "C"));
        // The energy register is still first and as it was.
        assert_eq!(samples[0]["measurand"], "Energy.Active.Import.Register");
        assert_eq!(samples[0]["value"], "1");
    }

    #[test]
    fn string_numbers_and_enum_case() {
        let q = Quirks::of(&[Quirk::StringNumbers, Quirk::EnumCase]);
        let start = q.apply(
            "StartTransaction",
            &messages::start_transaction(1, "T", 1234, None),
        );
        assert_eq!(start["meterStart"], "1234");
        assert_eq!(start["connectorId"], 1);
        let stop = q.apply(
            "StopTransaction",
            &messages::stop_transaction(9, Some("T"), 5678, StopReason::Remote),
        );
        assert_eq!(stop["meterStop"], "5678");
        assert_eq!(stop["reason"], "remote");
        assert_eq!(stop["transactionId"], 9);
        let status = q.apply(
            "StatusNotification",
            &messages::status_notification(2, "SuspendedEV", "NoError"),
        );
        assert_eq!(status["status"], "SUSPENDEDEV");
        assert_eq!(status["errorCode"], "NOERROR");
    }

    #[test]
    fn subprotocol_case_upper_cases_the_offer() {
        let q = only(Quirk::SubprotocolCase);
        assert_eq!(q.subprotocols(&["ocpp1.6".into()]), ["OCPP1.6"]);
        // Other actions are never touched.
        let hb = json!({});
        assert_eq!(Quirks::all().apply("Heartbeat", &hb), hb);
        let auth = messages::authorize("T");
        assert_eq!(Quirks::all().apply("Authorize", &auth), auth);
    }
}
