//! One virtual charge point's state as a real one keeps it: each connector's status, the
//! reservations it holds, its sessions (transactions), its energy meter and configuration keys;
//! and the answer it gives to each request a central system may send (ReserveNow,
//! RemoteStart/StopTransaction, TriggerMessage, ChangeAvailability, Reset, Get/ChangeConfiguration,
//! ...). Pure: the caller passes the time in, carries out what an answer asks for (`FollowUp`)
//! and reads status changes off with `take_status_changes`, so each transition is announced once.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::messages::{self, StopReason};

/// A connector's status as StatusNotification reports it (OCPP 1.6 ChargePointStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorStatus {
    Available,
    Preparing,
    Charging,
    SuspendedEVSE,
    SuspendedEV,
    Finishing,
    Reserved,
    Unavailable,
    Faulted,
}

impl ConnectorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Available => "Available",
            ConnectorStatus::Preparing => "Preparing",
            ConnectorStatus::Charging => "Charging",
            ConnectorStatus::SuspendedEVSE => "SuspendedEVSE",
            ConnectorStatus::SuspendedEV => "SuspendedEV",
            ConnectorStatus::Finishing => "Finishing",
            ConnectorStatus::Reserved => "Reserved",
            ConnectorStatus::Unavailable => "Unavailable",
            ConnectorStatus::Faulted => "Faulted",
        }
    }

    /// The StatusNotification errorCode that goes with this status.
    pub fn error_code(self) -> &'static str {
        match self {
            ConnectorStatus::Faulted => "OtherError",
            _ => "NoError",
        }
    }
}

/// A reservation the charge point accepted with ReserveNow.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub id: i64,
    pub connector: u32,
    pub id_tag: String,
    /// As the central system sent it.
    pub expiry_date: String,
    pub expiry_ms: i64,
}

/// Where a session is. A session starts when a driver is authorised (or a remote start is
/// accepted) and ends when the cable is unplugged after the transaction stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPhase {
    /// Authorising, or StartTransaction sent and not answered yet.
    Preparing,
    /// The central system accepted the transaction: energy flows.
    Charging,
    /// StopTransaction queued; the cable is still in.
    Finishing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id_tag: String,
    /// The reservation this session uses (sent in StartTransaction).
    pub reservation_id: Option<i64>,
    /// Known once StartTransaction is answered.
    pub transaction_id: Option<i64>,
    pub meter_start_wh: i64,
    pub phase: SessionPhase,
    /// Started by RemoteStartTransaction rather than by a driver at the charger.
    pub remote: bool,
    /// Stopped because the load run ended, not because the session was over.
    pub cut_short: bool,
}

/// What a StartTransaction must carry for a session that just began.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStart {
    pub connector: u32,
    pub id_tag: String,
    pub meter_start_wh: i64,
    pub reservation_id: Option<i64>,
}

/// What a StopTransaction must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStop {
    pub connector: u32,
    pub transaction_id: i64,
    pub id_tag: String,
    pub meter_stop_wh: i64,
    pub reason: StopReason,
}

/// Why a session cannot begin on a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    NoSuchConnector,
    Faulted,
    Unavailable,
    /// A session is already on it.
    Occupied,
    /// Reserved for another idTag.
    ReservedForOther,
}

/// A message the central system asked for with TriggerMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    BootNotification,
    Heartbeat,
    StatusNotification,
    MeterValues,
}

/// Work an answered request leaves for the charge point to do, after the answer is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// RemoteStartTransaction accepted: the session has begun, send its StartTransaction.
    StartTransaction(SessionStart),
    /// RemoteStopTransaction accepted: send this StopTransaction.
    StopTransaction(SessionStop),
    /// Send the requested message (for one connector, or all when `None`).
    Trigger {
        message: Triggered,
        connector: Option<u32>,
    },
    /// Stop every transaction, drop the connection, connect again and boot.
    Reset { hard: bool },
    /// UpdateFirmware accepted: download `location`, report each step with
    /// FirmwareStatusNotification (Downloading, Downloaded or DownloadFailed, Installing,
    /// Installed), as a charger does.
    UpdateFirmware { location: String },
    /// GetDiagnostics answered with `file_name`: upload it to `location`, reporting
    /// DiagnosticsStatusNotification Uploading, then Uploaded or UploadFailed.
    UploadDiagnostics { location: String, file_name: String },
}

/// The answer to a server request: a CALLRESULT payload or a CALLERROR.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Result(Value),
    Error {
        code: &'static str,
        description: String,
    },
}

/// The outcome of one server request.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub answer: Answer,
    pub follow_up: Option<FollowUp>,
    /// A ReserveNow arrived for a connector that still held another, unexpired reservation:
    /// two live bookings on one connector at once, which the ledger must never allow.
    pub double_booking: bool,
    /// The request broke its schema (the answer is then a CALLERROR saying how).
    pub malformed: bool,
}

impl Handled {
    fn answer(payload: Value) -> Handled {
        Handled {
            answer: Answer::Result(payload),
            follow_up: None,
            double_booking: false,
            malformed: false,
        }
    }

    fn status(status: &str) -> Handled {
        Handled::answer(json!({ "status": status }))
    }

    fn then(mut self, follow_up: FollowUp) -> Handled {
        self.follow_up = Some(follow_up);
        self
    }

    fn error(code: &'static str, description: String) -> Handled {
        Handled {
            answer: Answer::Error { code, description },
            follow_up: None,
            double_booking: false,
            malformed: false,
        }
    }

    fn malformed(code: &'static str, description: String) -> Handled {
        Handled {
            malformed: true,
            ..Handled::error(code, description)
        }
    }
}

#[derive(Debug, Clone)]
struct Connector {
    operative: bool,
    faulted: bool,
    reservation: Option<Reservation>,
    session: Option<Session>,
    /// The energy register (Wh): only ever rises.
    register_wh: i64,
    /// The status last handed out by `take_status_changes`.
    announced: Option<ConnectorStatus>,
}

impl Connector {
    fn status(&self) -> ConnectorStatus {
        if self.faulted {
            return ConnectorStatus::Faulted;
        }
        match self.session.as_ref().map(|s| s.phase) {
            Some(SessionPhase::Preparing) => ConnectorStatus::Preparing,
            Some(SessionPhase::Charging) => ConnectorStatus::Charging,
            Some(SessionPhase::Finishing) => ConnectorStatus::Finishing,
            None if !self.operative => ConnectorStatus::Unavailable,
            None if self.reservation.is_some() => ConnectorStatus::Reserved,
            None => ConnectorStatus::Available,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Integer,
    Boolean,
    List,
}

#[derive(Debug, Clone)]
struct ConfigKey {
    key: &'static str,
    value: String,
    readonly: bool,
    kind: KeyKind,
}

/// The power a charging connector draws (W): 11 kW, a common AC wallbox.
pub const CHARGING_POWER_W: u32 = 11_000;

/// One virtual charge point. Small on purpose: a load run holds one per simulated charger.
#[derive(Debug, Clone)]
pub struct ChargePoint {
    connectors: Vec<Connector>,
    config: Vec<ConfigKey>,
    /// The local authorization list: its version (0: none yet) and its idTags.
    local_list_version: i64,
    local_list: std::collections::BTreeSet<String>,
}

impl ChargePoint {
    /// `connectors` connectors (at least one), all Available and operative, each energy register
    /// starting at `register_wh`.
    pub fn new(connectors: u32, register_wh: i64) -> ChargePoint {
        let connector = Connector {
            operative: true,
            faulted: false,
            reservation: None,
            session: None,
            register_wh,
            announced: None,
        };
        let key = |key, value: &str, readonly, kind| ConfigKey {
            key,
            value: value.to_owned(),
            readonly,
            kind,
        };
        use KeyKind::*;
        let n = connectors.max(1);
        ChargePoint {
            local_list_version: 0,
            local_list: Default::default(),
            connectors: vec![connector; n as usize],
            config: vec![
                key("AuthorizeRemoteTxRequests", "false", false, Boolean),
                key("ClockAlignedDataInterval", "0", false, Integer),
                key("ConnectionTimeOut", "60", false, Integer),
                key("HeartbeatInterval", "300", false, Integer),
                key("LocalAuthorizeOffline", "false", false, Boolean),
                key("LocalPreAuthorize", "false", false, Boolean),
                key("MeterValueSampleInterval", "60", false, Integer),
                key(
                    "MeterValuesSampledData",
                    "Energy.Active.Import.Register,Power.Active.Import",
                    false,
                    List,
                ),
                key("NumberOfConnectors", &n.to_string(), true, Integer),
                key("ReserveConnectorZeroSupported", "false", true, Boolean),
                key("StopTransactionOnInvalidId", "true", false, Boolean),
                key(
                    "SupportedFeatureProfiles",
                    "Core,Reservation,RemoteTrigger",
                    true,
                    List,
                ),
                key("TransactionMessageAttempts", "3", false, Integer),
                key("TransactionMessageRetryInterval", "10", false, Integer),
            ],
        }
    }

    pub fn connectors(&self) -> u32 {
        self.connectors.len() as u32
    }

    /// The status `connector` (1-based) is in now; `None` for a connector that does not exist.
    pub fn status(&self, connector: u32) -> Option<ConnectorStatus> {
        self.connector(connector).map(Connector::status)
    }

    pub fn session(&self, connector: u32) -> Option<&Session> {
        self.connector(connector)?.session.as_ref()
    }

    /// The reservation held on `connector`, if any.
    pub fn reservation(&self, connector: u32) -> Option<&Reservation> {
        self.connector(connector)?.reservation.as_ref()
    }

    /// Every reservation held, by connector.
    pub fn reservations(&self) -> impl Iterator<Item = &Reservation> {
        self.connectors
            .iter()
            .filter_map(|c| c.reservation.as_ref())
    }

    pub fn register_wh(&self, connector: u32) -> Option<i64> {
        self.connector(connector).map(|c| c.register_wh)
    }

    /// The connector running `transaction_id`, if any.
    pub fn connector_of(&self, transaction_id: i64) -> Option<u32> {
        self.ids().find(|&c| {
            self.session(c)
                .is_some_and(|s| s.transaction_id == Some(transaction_id))
        })
    }

    /// A configuration key's value.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|k| k.key.eq_ignore_ascii_case(key))
            .map(|k| k.value.as_str())
    }

    /// Sets a key from the charger's own side (e.g. the interval BootNotification gave), even a
    /// read-only one; unknown keys are ignored.
    pub fn set_config(&mut self, key: &str, value: &str) {
        if let Some(k) = self.config.iter_mut().find(|k| k.key == key) {
            k.value = value.to_owned();
        }
    }

    /// `HeartbeatInterval` as a duration; `None` when 0 (no heartbeats).
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        self.config("HeartbeatInterval")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
    }

    /// A hardware fault (or its repair) on `connector`, for tests and fault scenarios.
    pub fn set_faulted(&mut self, connector: u32, faulted: bool) {
        if let Some(c) = self.connector_mut(connector) {
            c.faulted = faulted;
        }
    }

    /// The statuses that changed since the last call, to send as StatusNotifications in order.
    pub fn take_status_changes(&mut self) -> Vec<(u32, ConnectorStatus)> {
        let mut changes = Vec::new();
        for (i, c) in self.connectors.iter_mut().enumerate() {
            let now = c.status();
            if c.announced != Some(now) {
                c.announced = Some(now);
                changes.push((i as u32 + 1, now));
            }
        }
        changes
    }

    /// After (re)booting every status must be told again.
    pub fn forget_announced(&mut self) {
        for c in &mut self.connectors {
            c.announced = None;
        }
    }

    /// Drops reservations that expired by `now_ms`; returns how many.
    pub fn expire_reservations(&mut self, now_ms: i64) -> usize {
        let mut expired = 0;
        for c in &mut self.connectors {
            if c.reservation
                .as_ref()
                .is_some_and(|r| r.expiry_ms <= now_ms)
            {
                c.reservation = None;
                expired += 1;
            }
        }
        expired
    }

    /// When the next held reservation expires (Unix ms).
    pub fn next_expiry_ms(&self) -> Option<i64> {
        self.reservations().map(|r| r.expiry_ms).min()
    }

    /// Whether `id_tag` could begin a session on `connector` now.
    pub fn can_begin(&self, connector: u32, id_tag: &str) -> Result<(), Busy> {
        let c = self.connector(connector).ok_or(Busy::NoSuchConnector)?;
        if c.faulted {
            return Err(Busy::Faulted);
        }
        if c.session.is_some() {
            return Err(Busy::Occupied);
        }
        if !c.operative {
            return Err(Busy::Unavailable);
        }
        match &c.reservation {
            Some(r) if !r.id_tag.eq_ignore_ascii_case(id_tag) => Err(Busy::ReservedForOther),
            _ => Ok(()),
        }
    }

    /// The connector a driver with `id_tag` would use: one reserved for them, else the first
    /// free one from `from` on (wrapping), so successive sessions rotate over the connectors.
    pub fn connector_for(&self, id_tag: &str, from: u32) -> Option<u32> {
        let reserved = self.ids().find(|&c| {
            self.reservation(c)
                .is_some_and(|r| r.id_tag.eq_ignore_ascii_case(id_tag))
                && self.can_begin(c, id_tag).is_ok()
        });
        let n = self.connectors();
        reserved.or_else(|| {
            (0..n)
                .map(|k| (from.max(1) - 1 + k) % n + 1)
                .find(|&c| self.can_begin(c, id_tag).is_ok())
        })
    }

    /// A driver is authorised (or a remote start accepted) on `connector`: the session begins
    /// (Preparing) and takes the reservation this idTag holds there.
    pub fn begin_session(
        &mut self,
        connector: u32,
        id_tag: &str,
        remote: bool,
    ) -> Result<SessionStart, Busy> {
        self.can_begin(connector, id_tag)?;
        let c = self.connector_mut(connector).ok_or(Busy::NoSuchConnector)?;
        let reservation_id = c.reservation.take().map(|r| r.id);
        c.session = Some(Session {
            id_tag: id_tag.to_owned(),
            reservation_id,
            transaction_id: None,
            meter_start_wh: c.register_wh,
            phase: SessionPhase::Preparing,
            remote,
            cut_short: false,
        });
        Ok(SessionStart {
            connector,
            id_tag: id_tag.to_owned(),
            meter_start_wh: c.register_wh,
            reservation_id,
        })
    }

    /// The central system answered the StartTransaction of the session on `connector`.
    /// Accepted → Charging. Otherwise the charger must still end that transaction (OCPP 1.6
    /// §5.x, StopTransactionOnInvalidId): the StopTransaction to send is returned.
    pub fn start_answered(
        &mut self,
        connector: u32,
        transaction_id: i64,
        accepted: bool,
    ) -> Option<SessionStop> {
        let c = self.connector_mut(connector)?;
        let session = c.session.as_mut()?;
        session.transaction_id = Some(transaction_id);
        if accepted {
            session.phase = SessionPhase::Charging;
            return None;
        }
        session.phase = SessionPhase::Finishing;
        Some(SessionStop {
            connector,
            transaction_id,
            id_tag: session.id_tag.clone(),
            meter_stop_wh: session.meter_start_wh,
            reason: StopReason::DeAuthorized,
        })
    }

    /// The register after `elapsed` more charging on `connector` (11 kW, at least 1 Wh more
    /// so that every sample rises), and the transaction it belongs to. `None` unless charging.
    pub fn sample(&mut self, connector: u32, elapsed: Duration) -> Option<(i64, i64)> {
        let c = self.connector_mut(connector)?;
        let session = c.session.as_ref()?;
        if session.phase != SessionPhase::Charging {
            return None;
        }
        let transaction_id = session.transaction_id?;
        let wh = (f64::from(CHARGING_POWER_W) * elapsed.as_secs_f64() / 3600.0).ceil() as i64;
        c.register_wh += wh.max(1);
        Some((transaction_id, c.register_wh))
    }

    /// Ends the transaction charging on `connector` (→ Finishing); the StopTransaction to send.
    pub fn stop_session(&mut self, connector: u32, reason: StopReason) -> Option<SessionStop> {
        let c = self.connector_mut(connector)?;
        let session = c.session.as_mut()?;
        if session.phase != SessionPhase::Charging {
            return None;
        }
        session.phase = SessionPhase::Finishing;
        Some(SessionStop {
            connector,
            transaction_id: session.transaction_id?,
            id_tag: session.id_tag.clone(),
            meter_stop_wh: c.register_wh,
            reason,
        })
    }

    /// Marks the session on `connector` as ended by the end of a run rather than by its driver.
    pub fn mark_cut_short(&mut self, connector: u32) {
        if let Some(session) = self
            .connector_mut(connector)
            .and_then(|c| c.session.as_mut())
        {
            session.cut_short = true;
        }
    }

    /// The cable is out (or the session was given up before it started): the connector is
    /// free again; Available, or Unavailable if it was made inoperative meanwhile.
    pub fn end_session(&mut self, connector: u32) -> Option<Session> {
        self.connector_mut(connector)?.session.take()
    }

    /// Connectors 1..=n.
    pub fn ids(&self) -> impl Iterator<Item = u32> + use<> {
        1..=self.connectors()
    }

    /// The answer to a request from the central system, applied to this charge point's state.
    pub fn handle_call(&mut self, action: &str, payload: &Value, now_ms: i64) -> Handled {
        let fields: &[&str] = match action {
            "ReserveNow" => &[
                "connectorId",
                "expiryDate",
                "idTag",
                "parentIdTag",
                "reservationId",
            ],
            "CancelReservation" => &["reservationId"],
            "RemoteStartTransaction" => &["connectorId", "idTag", "chargingProfile"],
            "RemoteStopTransaction" => &["transactionId"],
            "TriggerMessage" => &["requestedMessage", "connectorId"],
            "ChangeAvailability" => &["connectorId", "type"],
            "Reset" => &["type"],
            "GetConfiguration" => &["key"],
            "ChangeConfiguration" => &["key", "value"],
            "UpdateFirmware" => &["location", "retrieveDate", "retries", "retryInterval"],
            "GetDiagnostics" => &[
                "location",
                "retries",
                "retryInterval",
                "startTime",
                "stopTime",
            ],
            "SendLocalList" => &["listVersion", "localAuthorizationList", "updateType"],
            "GetLocalListVersion" => &[],
            _ => {
                return match messages::default_answer(action) {
                    Some(answer) => Handled::answer(answer),
                    None => Handled::error(
                        "NotImplemented",
                        format!("{action} is not implemented by this charge point"),
                    ),
                };
            }
        };
        let request = match Request::new(action, payload, fields) {
            Ok(request) => request,
            Err(handled) => return handled,
        };
        let handled = match action {
            "ReserveNow" => self.reserve_now(&request, now_ms),
            "CancelReservation" => self.cancel_reservation(&request),
            "RemoteStartTransaction" => self.remote_start(&request, now_ms),
            "RemoteStopTransaction" => self.remote_stop(&request),
            "TriggerMessage" => self.trigger_message(&request),
            "ChangeAvailability" => self.change_availability(&request),
            "Reset" => reset(&request),
            "GetConfiguration" => self.get_configuration(&request),
            "UpdateFirmware" => update_firmware(&request),
            "GetDiagnostics" => get_diagnostics(&request),
            "SendLocalList" => self.send_local_list(&request),
            "GetLocalListVersion" => Ok(Handled::answer(
                json!({"listVersion": self.local_list_version}),
            )),
            _ => self.change_configuration(&request),
        };
        handled.unwrap_or_else(|bad| bad)
    }

    fn reserve_now(&mut self, req: &Request, now_ms: i64) -> Result<Handled, Handled> {
        let connector = req.integer("connectorId")?;
        let expiry_date = req.string("expiryDate", None)?;
        let id_tag = req.string("idTag", Some(20))?;
        req.optional_string("parentIdTag", Some(20))?;
        let reservation_id = req.integer("reservationId")?;
        let expiry_ms = messages::parse_rfc3339_ms(expiry_date).ok_or_else(|| {
            Handled::malformed(
                "TypeConstraintViolation",
                "ReserveNow.expiryDate is not an RFC 3339 date-time".into(),
            )
        })?;
        self.expire_reservations(now_ms);
        // ReserveConnectorZeroSupported is false: connector 0 is refused like a missing one.
        let Some(target) = u32::try_from(connector)
            .ok()
            .filter(|&c| c >= 1 && c <= self.connectors())
        else {
            return Ok(Handled::status("Rejected"));
        };
        if expiry_ms <= now_ms {
            return Ok(Handled::status("Rejected"));
        }
        // The same reservationId again replaces the reservation (OCPP 1.6 §5.13): a central
        // system re-sending it after a reconnect, or moving it.
        let replaced = self.take_reservation(reservation_id);
        let c = &self.connectors[target as usize - 1];
        let refusal = if c.faulted {
            Some("Faulted")
        } else if c.session.is_some() {
            Some("Occupied")
        } else if !c.operative {
            Some("Unavailable")
        } else if c.reservation.is_some() {
            Some("Occupied")
        } else {
            None
        };
        if let Some(status) = refusal {
            let mut handled = Handled::status(status);
            handled.double_booking = c.reservation.is_some();
            if let Some(old) = replaced {
                let at = old.connector as usize - 1;
                self.connectors[at].reservation = Some(old);
            }
            return Ok(handled);
        }
        self.connectors[target as usize - 1].reservation = Some(Reservation {
            id: reservation_id,
            connector: target,
            id_tag: id_tag.to_owned(),
            expiry_date: expiry_date.to_owned(),
            expiry_ms,
        });
        Ok(Handled::status("Accepted"))
    }

    fn cancel_reservation(&mut self, req: &Request) -> Result<Handled, Handled> {
        let id = req.integer("reservationId")?;
        let status = match self.take_reservation(id) {
            Some(_) => "Accepted",
            None => "Rejected",
        };
        Ok(Handled::status(status))
    }

    fn remote_start(&mut self, req: &Request, now_ms: i64) -> Result<Handled, Handled> {
        let id_tag = req.string("idTag", Some(20))?;
        let connector = req.optional_integer("connectorId")?;
        if let Some(profile) = req.get("chargingProfile")
            && !profile.is_object()
        {
            return Err(Handled::malformed(
                "TypeConstraintViolation",
                "RemoteStartTransaction.chargingProfile must be an object".into(),
            ));
        }
        self.expire_reservations(now_ms);
        let connector = match connector {
            Some(c) => u32::try_from(c).ok().filter(|&c| c >= 1),
            None => self.connector_for(id_tag, 1),
        };
        // AuthorizeRemoteTxRequests is false: the session begins without an Authorize.
        match connector.map(|c| self.begin_session(c, id_tag, true)) {
            Some(Ok(start)) => {
                Ok(Handled::status("Accepted").then(FollowUp::StartTransaction(start)))
            }
            _ => Ok(Handled::status("Rejected")),
        }
    }

    fn remote_stop(&mut self, req: &Request) -> Result<Handled, Handled> {
        let transaction_id = req.integer("transactionId")?;
        let stop = self
            .connector_of(transaction_id)
            .and_then(|c| self.stop_session(c, StopReason::Remote));
        Ok(match stop {
            Some(stop) => Handled::status("Accepted").then(FollowUp::StopTransaction(stop)),
            None => Handled::status("Rejected"),
        })
    }

    fn trigger_message(&mut self, req: &Request) -> Result<Handled, Handled> {
        let requested = req.string("requestedMessage", None)?;
        let connector = req.optional_integer("connectorId")?;
        let message = match requested {
            "BootNotification" => Triggered::BootNotification,
            "Heartbeat" => Triggered::Heartbeat,
            "StatusNotification" => Triggered::StatusNotification,
            "MeterValues" => Triggered::MeterValues,
            "DiagnosticsStatusNotification" | "FirmwareStatusNotification" => {
                return Ok(Handled::status("NotImplemented"));
            }
            other => {
                return Err(Handled::malformed(
                    "PropertyConstraintViolation",
                    format!("TriggerMessage.requestedMessage `{other}` is not a MessageTrigger"),
                ));
            }
        };
        let connector = match connector {
            // Connector 0 is the charge point as a whole: everything.
            None | Some(0) => None,
            Some(c) => match u32::try_from(c).ok().filter(|&c| c <= self.connectors()) {
                Some(c) => Some(c),
                None => return Ok(Handled::status("Rejected")),
            },
        };
        Ok(Handled::status("Accepted").then(FollowUp::Trigger { message, connector }))
    }

    fn change_availability(&mut self, req: &Request) -> Result<Handled, Handled> {
        let connector = req.integer("connectorId")?;
        let operative = match req.string("type", None)? {
            "Operative" => true,
            "Inoperative" => false,
            other => {
                return Err(Handled::malformed(
                    "PropertyConstraintViolation",
                    format!("ChangeAvailability.type `{other}` is not an AvailabilityType"),
                ));
            }
        };
        let targets: Vec<u32> = match u32::try_from(connector) {
            Ok(0) => self.ids().collect(),
            Ok(c) if c <= self.connectors() => vec![c],
            _ => return Ok(Handled::status("Rejected")),
        };
        let mut busy = false;
        for c in targets {
            let connector = &mut self.connectors[c as usize - 1];
            connector.operative = operative;
            busy |= connector.session.is_some();
        }
        // A running transaction finishes first; the connector turns Unavailable after it.
        let status = if busy && !operative {
            "Scheduled"
        } else {
            "Accepted"
        };
        Ok(Handled::status(status))
    }

    fn get_configuration(&self, req: &Request) -> Result<Handled, Handled> {
        let wanted = match req.get("key") {
            None => None,
            Some(Value::Array(keys)) => {
                let mut names = Vec::with_capacity(keys.len());
                for key in keys {
                    match key.as_str() {
                        Some(k) if k.chars().count() <= 50 => names.push(k),
                        _ => {
                            return Err(Handled::malformed(
                                "TypeConstraintViolation",
                                "GetConfiguration.key must hold strings of at most 50".into(),
                            ));
                        }
                    }
                }
                Some(names)
            }
            Some(_) => {
                return Err(Handled::malformed(
                    "TypeConstraintViolation",
                    "GetConfiguration.key must be an array".into(),
                ));
            }
        };
        let entry = |k: &ConfigKey| json!({"key": k.key, "readonly": k.readonly, "value": k.value});
        let (known, unknown): (Vec<Value>, Vec<&str>) = match wanted {
            // No list (or an empty one): every key.
            None => (self.config.iter().map(entry).collect(), Vec::new()),
            Some(names) if names.is_empty() => (self.config.iter().map(entry).collect(), vec![]),
            Some(names) => {
                let mut known = Vec::new();
                let mut unknown = Vec::new();
                for name in names {
                    match self
                        .config
                        .iter()
                        .find(|k| k.key.eq_ignore_ascii_case(name))
                    {
                        Some(k) => known.push(entry(k)),
                        None => unknown.push(name),
                    }
                }
                (known, unknown)
            }
        };
        let mut answer = json!({ "configurationKey": known });
        if !unknown.is_empty() {
            answer["unknownKey"] = json!(unknown);
        }
        Ok(Handled::answer(answer))
    }

    /// SendLocalList: a full list replaces the one held; a differential adds the entries with
    /// an idTagInfo and removes those without (OCPP 1.6 §5.15). Either way the charger then
    /// holds `listVersion`.
    fn send_local_list(&mut self, req: &Request) -> Result<Handled, Handled> {
        let version = req.integer("listVersion")?;
        let update = req.string("updateType", None)?;
        let entries = match req.get("localAuthorizationList") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(req.wrong_type("localAuthorizationList", "an array")),
        };
        let mut tags = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(tag) = entry.get("idTag").and_then(Value::as_str) else {
                return Err(req.missing("localAuthorizationList[].idTag"));
            };
            tags.push((tag.to_ascii_lowercase(), entry.get("idTagInfo").is_some()));
        }
        match update {
            "Full" => {
                self.local_list = tags.into_iter().map(|(t, _)| t).collect();
            }
            "Differential" => {
                if version < self.local_list_version {
                    return Ok(Handled::status("VersionMismatch"));
                }
                for (tag, keep) in tags {
                    if keep {
                        self.local_list.insert(tag);
                    } else {
                        self.local_list.remove(&tag);
                    }
                }
            }
            other => {
                return Err(
                    req.wrong_type("updateType", &format!("Full or Differential, not {other}"))
                );
            }
        }
        self.local_list_version = version;
        Ok(Handled::status("Accepted"))
    }

    /// The local list as the charger holds it: its version and its idTags (lower case).
    pub fn local_list(&self) -> (i64, Vec<String>) {
        (
            self.local_list_version,
            self.local_list.iter().cloned().collect(),
        )
    }

    fn change_configuration(&mut self, req: &Request) -> Result<Handled, Handled> {
        let key = req.string("key", Some(50))?;
        let value = req.string("value", Some(500))?;
        let Some(entry) = self
            .config
            .iter_mut()
            .find(|k| k.key.eq_ignore_ascii_case(key))
        else {
            return Ok(Handled::status("NotSupported"));
        };
        let valid = match entry.kind {
            KeyKind::Integer => value.trim().parse::<u32>().is_ok(),
            KeyKind::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
            KeyKind::List => !value.trim().is_empty(),
        };
        if entry.readonly || !valid {
            return Ok(Handled::status("Rejected"));
        }
        entry.value = match entry.kind {
            KeyKind::Integer => value.trim().to_owned(),
            KeyKind::Boolean => value.to_ascii_lowercase(),
            KeyKind::List => value.to_owned(),
        };
        Ok(Handled::status("Accepted"))
    }

    fn take_reservation(&mut self, id: i64) -> Option<Reservation> {
        self.connectors
            .iter_mut()
            .find(|c| c.reservation.as_ref().is_some_and(|r| r.id == id))
            .and_then(|c| c.reservation.take())
    }

    fn connector(&self, connector: u32) -> Option<&Connector> {
        self.connectors.get((connector as usize).checked_sub(1)?)
    }

    fn connector_mut(&mut self, connector: u32) -> Option<&mut Connector> {
        self.connectors
            .get_mut((connector as usize).checked_sub(1)?)
    }
}

/// GetDiagnostics: answers the file it will upload, and uploads it afterwards.
fn get_diagnostics(req: &Request) -> Result<Handled, Handled> {
    let location = req.string("location", None)?.to_owned();
    let file_name = "diagnostics.log".to_owned();
    let mut handled = Handled::answer(json!({"fileName": file_name}));
    handled.follow_up = Some(FollowUp::UploadDiagnostics {
        location,
        file_name,
    });
    Ok(handled)
}

/// UpdateFirmware: `{}` at once, the download and install follow (`FollowUp::UpdateFirmware`).
/// The retrieve date is taken as now: a simulated fleet has nothing to wait for.
fn update_firmware(req: &Request) -> Result<Handled, Handled> {
    let location = req.string("location", None)?.to_owned();
    req.string("retrieveDate", None)?;
    let mut handled = Handled::answer(json!({}));
    handled.follow_up = Some(FollowUp::UpdateFirmware { location });
    Ok(handled)
}

fn reset(req: &Request) -> Result<Handled, Handled> {
    let hard = match req.string("type", None)? {
        "Hard" => true,
        "Soft" => false,
        other => {
            return Err(Handled::malformed(
                "PropertyConstraintViolation",
                format!("Reset.type `{other}` is not a ResetType"),
            ));
        }
    };
    Ok(Handled::status("Accepted").then(FollowUp::Reset { hard }))
}

/// A request payload checked field by field against its schema; each failure is the
/// CALLERROR the OCPP-J error table names for it.
struct Request<'a> {
    action: &'a str,
    fields: &'a Map<String, Value>,
}

impl<'a> Request<'a> {
    fn new(action: &'a str, payload: &'a Value, allowed: &[&str]) -> Result<Self, Handled> {
        let Some(fields) = payload.as_object() else {
            return Err(Handled::malformed(
                "FormationViolation",
                format!("the {action} payload is not an object"),
            ));
        };
        if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Handled::malformed(
                "FormationViolation",
                format!("{action} has no property `{extra}`"),
            ));
        }
        Ok(Request { action, fields })
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name)
    }

    fn missing(&self, name: &str) -> Handled {
        Handled::malformed(
            "OccurenceConstraintViolation",
            format!("{}.{name} is required", self.action),
        )
    }

    fn wrong_type(&self, name: &str, what: &str) -> Handled {
        Handled::malformed(
            "TypeConstraintViolation",
            format!("{}.{name} must be {what}", self.action),
        )
    }

    fn integer(&self, name: &str) -> Result<i64, Handled> {
        self.optional_integer(name)?
            .ok_or_else(|| self.missing(name))
    }

    fn optional_integer(&self, name: &str) -> Result<Option<i64>, Handled> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(name, "an integer")),
        }
    }

    fn string(&self, name: &str, max_chars: Option<usize>) -> Result<&'a str, Handled> {
        self.optional_string(name, max_chars)?
            .ok_or_else(|| self.missing(name))
    }

    fn optional_string(
        &self,
        name: &str,
        max_chars: Option<usize>,
    ) -> Result<Option<&'a str>, Handled> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .ok_or_else(|| self.wrong_type(name, "a string"))?;
        if let Some(max) = max_chars
            && text.chars().count() > max
        {
            return Err(Handled::malformed(
                "PropertyConstraintViolation",
                format!("{}.{name} is longer than {max} characters", self.action),
            ));
        }
        Ok(Some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectorStatus::*;

    const NOW: i64 = 1_800_000_000_000;

    fn in_an_hour() -> String {
        messages::rfc3339_from_ms(NOW + 3_600_000)
    }

    fn reserve(cp: &mut ChargePoint, id: i64, connector: u32, tag: &str) -> Handled {
        let payload = json!({
            "connectorId": connector,
            "expiryDate": in_an_hour(),
            "idTag": tag,
            "reservationId": id,
        });
        cp.handle_call("ReserveNow", &payload, NOW)
    }

    fn status_of(handled: &Handled) -> &str {
        match &handled.answer {
            Answer::Result(v) => v["status"].as_str().unwrap_or("?"),
            Answer::Error { code, .. } => code,
        }
    }

    /// The whole life of a booked session, as StatusNotifications would report it.
    #[test]
    fn a_reserved_session_walks_through_every_status() {
        let mut cp = ChargePoint::new(2, 1000);
        assert_eq!(cp.take_status_changes(), [(1, Available), (2, Available)]);
        assert!(
            cp.take_status_changes().is_empty(),
            "each change is told once"
        );

        assert_eq!(status_of(&reserve(&mut cp, 7, 1, "TAG-A")), "Accepted");
        assert_eq!(cp.take_status_changes(), [(1, Reserved)]);
        assert_eq!(cp.connector_for("TAG-A", 2), Some(1), "their reserved one");
        assert_eq!(cp.connector_for("TAG-B", 1), Some(2), "not someone else's");
        assert_eq!(cp.can_begin(1, "TAG-B"), Err(Busy::ReservedForOther));

        let start = cp.begin_session(1, "tag-a", false).unwrap();
        assert_eq!(
            start.reservation_id,
            Some(7),
            "idTags compare case-insensitively"
        );
        assert_eq!(start.meter_start_wh, 1000);
        assert!(
            cp.reservation(1).is_none(),
            "the session used the reservation"
        );
        assert_eq!(cp.take_status_changes(), [(1, Preparing)]);

        assert_eq!(cp.start_answered(1, 42, true), None);
        assert_eq!(cp.take_status_changes(), [(1, Charging)]);
        assert_eq!(cp.connector_of(42), Some(1));
        let (tx, first) = cp.sample(1, Duration::from_secs(10)).unwrap();
        assert_eq!((tx, first), (42, 1000 + 31), "11 kW for 10 s, rounded up");
        let (_, second) = cp.sample(1, Duration::ZERO).unwrap();
        assert!(second > first, "the register always rises");

        let stop = cp.stop_session(1, StopReason::Local).unwrap();
        assert_eq!(stop.transaction_id, 42);
        assert_eq!(stop.meter_stop_wh, second);
        assert_eq!(cp.take_status_changes(), [(1, Finishing)]);
        assert!(
            cp.stop_session(1, StopReason::Local).is_none(),
            "stopped once"
        );
        assert!(cp.end_session(1).is_some());
        assert_eq!(cp.take_status_changes(), [(1, Available)]);
    }

    #[test]
    fn a_refused_start_is_stopped_as_deauthorized() {
        let mut cp = ChargePoint::new(1, 500);
        cp.begin_session(1, "UNKNOWN", false).unwrap();
        let stop = cp.start_answered(1, 9, false).unwrap();
        assert_eq!(stop.reason, StopReason::DeAuthorized);
        assert_eq!((stop.transaction_id, stop.meter_stop_wh), (9, 500));
        assert_eq!(cp.status(1), Some(Finishing));
        assert!(
            cp.sample(1, Duration::from_secs(1)).is_none(),
            "no energy flows"
        );
    }

    #[test]
    fn reserve_now_answers_from_the_connector_state() {
        let mut cp = ChargePoint::new(3, 0);
        assert_eq!(status_of(&reserve(&mut cp, 1, 1, "A")), "Accepted");
        let again = reserve(&mut cp, 2, 1, "B");
        assert_eq!(status_of(&again), "Occupied");
        assert!(
            again.double_booking,
            "two live reservations on one connector"
        );
        // The same id again replaces (here: moves) the reservation; not a double booking.
        let moved = reserve(&mut cp, 1, 2, "A");
        assert_eq!(status_of(&moved), "Accepted");
        assert!(!moved.double_booking);
        assert!(cp.reservation(1).is_none());
        assert_eq!(cp.reservation(2).map(|r| r.id), Some(1));

        cp.begin_session(1, "C", false).unwrap();
        let busy = reserve(&mut cp, 3, 1, "A");
        assert_eq!(status_of(&busy), "Occupied");
        assert!(!busy.double_booking, "a session is not a booking");
        cp.set_faulted(3, true);
        assert_eq!(status_of(&reserve(&mut cp, 4, 3, "A")), "Faulted");
        cp.set_faulted(3, false);
        let off = json!({"connectorId": 3, "type": "Inoperative"});
        assert_eq!(
            status_of(&cp.handle_call("ChangeAvailability", &off, NOW)),
            "Accepted"
        );
        assert_eq!(status_of(&reserve(&mut cp, 5, 3, "A")), "Unavailable");
        assert_eq!(status_of(&reserve(&mut cp, 6, 0, "A")), "Rejected");
        assert_eq!(status_of(&reserve(&mut cp, 6, 9, "A")), "Rejected");
        let late = json!({
            "connectorId": 2, "expiryDate": "2020-01-01T00:00:00Z", "idTag": "A",
            "reservationId": 8,
        });
        assert_eq!(
            status_of(&cp.handle_call("ReserveNow", &late, NOW)),
            "Rejected"
        );

        let cancel = |id| json!({ "reservationId": id });
        assert_eq!(
            status_of(&cp.handle_call("CancelReservation", &cancel(1), NOW)),
            "Accepted"
        );
        assert_eq!(
            status_of(&cp.handle_call("CancelReservation", &cancel(1), NOW)),
            "Rejected"
        );
    }

    #[test]
    fn reservations_expire() {
        let mut cp = ChargePoint::new(1, 0);
        reserve(&mut cp, 1, 1, "A");
        assert_eq!(cp.next_expiry_ms(), Some(NOW + 3_600_000));
        assert_eq!(cp.expire_reservations(NOW + 3_599_999), 0);
        assert_eq!(cp.expire_reservations(NOW + 3_600_000), 1);
        assert_eq!(cp.status(1), Some(Available));
        assert_eq!(cp.next_expiry_ms(), None);
    }

    #[test]
    fn remote_start_and_stop() {
        let mut cp = ChargePoint::new(2, 0);
        reserve(&mut cp, 5, 2, "DRIVER");
        let handled = cp.handle_call("RemoteStartTransaction", &json!({"idTag": "DRIVER"}), NOW);
        assert_eq!(status_of(&handled), "Accepted");
        let Some(FollowUp::StartTransaction(start)) = handled.follow_up else {
            panic!("{handled:?}");
        };
        assert_eq!((start.connector, start.reservation_id), (2, Some(5)));
        assert!(cp.session(2).unwrap().remote);
        let busy = cp.handle_call(
            "RemoteStartTransaction",
            &json!({"idTag": "OTHER", "connectorId": 2}),
            NOW,
        );
        assert_eq!(status_of(&busy), "Rejected");
        assert_eq!(busy.follow_up, None);

        let stop = json!({"transactionId": 77});
        assert_eq!(
            status_of(&cp.handle_call("RemoteStopTransaction", &stop, NOW)),
            "Rejected"
        );
        cp.start_answered(2, 77, true);
        let handled = cp.handle_call("RemoteStopTransaction", &stop, NOW);
        assert_eq!(status_of(&handled), "Accepted");
        let Some(FollowUp::StopTransaction(s)) = handled.follow_up else {
            panic!("{handled:?}");
        };
        assert_eq!((s.transaction_id, s.reason), (77, StopReason::Remote));
        assert_eq!(
            status_of(&cp.handle_call("RemoteStopTransaction", &stop, NOW)),
            "Rejected"
        );
    }

    #[test]
    fn availability_is_scheduled_behind_a_running_session() {
        let mut cp = ChargePoint::new(2, 0);
        cp.take_status_changes();
        cp.begin_session(1, "A", false).unwrap();
        let all_off = json!({"connectorId": 0, "type": "Inoperative"});
        let handled = cp.handle_call("ChangeAvailability", &all_off, NOW);
        assert_eq!(status_of(&handled), "Scheduled");
        assert_eq!(cp.take_status_changes(), [(1, Preparing), (2, Unavailable)]);
        cp.end_session(1);
        assert_eq!(cp.take_status_changes(), [(1, Unavailable)]);
        assert_eq!(cp.connector_for("A", 1), None);
        let on = json!({"connectorId": 1, "type": "Operative"});
        assert_eq!(
            status_of(&cp.handle_call("ChangeAvailability", &on, NOW)),
            "Accepted"
        );
        assert_eq!(cp.take_status_changes(), [(1, Available)]);
        let bad = json!({"connectorId": 3, "type": "Operative"});
        assert_eq!(
            status_of(&cp.handle_call("ChangeAvailability", &bad, NOW)),
            "Rejected"
        );
    }

    #[test]
    fn trigger_and_reset_leave_follow_ups() {
        let mut cp = ChargePoint::new(2, 0);
        let trigger = |m: &str, c: Option<u32>| {
            let mut p = json!({ "requestedMessage": m });
            if let Some(c) = c {
                p["connectorId"] = json!(c);
            }
            p
        };
        let handled = cp.handle_call(
            "TriggerMessage",
            &trigger("StatusNotification", Some(2)),
            NOW,
        );
        assert_eq!(
            handled.follow_up,
            Some(FollowUp::Trigger {
                message: Triggered::StatusNotification,
                connector: Some(2)
            })
        );
        let handled = cp.handle_call("TriggerMessage", &trigger("MeterValues", None), NOW);
        assert_eq!(status_of(&handled), "Accepted");
        let handled = cp.handle_call("TriggerMessage", &trigger("Heartbeat", Some(5)), NOW);
        assert_eq!(status_of(&handled), "Rejected");
        let handled = cp.handle_call(
            "TriggerMessage",
            &trigger("FirmwareStatusNotification", None),
            NOW,
        );
        assert_eq!(status_of(&handled), "NotImplemented");
        let handled = cp.handle_call("Reset", &json!({"type": "Hard"}), NOW);
        assert_eq!(handled.follow_up, Some(FollowUp::Reset { hard: true }));
    }

    #[test]
    fn the_local_list_is_kept_and_its_version_told() {
        let mut cp = ChargePoint::new(1, 0);
        let version = |cp: &mut ChargePoint| cp.handle_call("GetLocalListVersion", &json!({}), NOW);
        assert_eq!(
            version(&mut cp).answer,
            Answer::Result(json!({"listVersion": 0}))
        );
        let full = json!({"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "A", "idTagInfo": {"status": "Accepted"}},
            {"idTag": "B", "idTagInfo": {"status": "Accepted"}}]});
        let handled = cp.handle_call("SendLocalList", &full, NOW);
        assert_eq!(
            handled.answer,
            Answer::Result(json!({"status": "Accepted"}))
        );
        let diff = json!({"listVersion": 4, "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "B"}, {"idTag": "C", "idTagInfo": {"status": "Blocked"}}]});
        cp.handle_call("SendLocalList", &diff, NOW);
        assert_eq!(cp.local_list(), (4, vec!["a".to_owned(), "c".to_owned()]));
        assert_eq!(
            version(&mut cp).answer,
            Answer::Result(json!({"listVersion": 4}))
        );
        let stale = json!({"listVersion": 2, "updateType": "Differential"});
        let handled = cp.handle_call("SendLocalList", &stale, NOW);
        assert_eq!(
            handled.answer,
            Answer::Result(json!({"status": "VersionMismatch"}))
        );
    }

    #[test]
    fn get_diagnostics_names_the_file_then_uploads_it() {
        let mut cp = ChargePoint::new(1, 0);
        let handled = cp.handle_call("GetDiagnostics", &json!({"location": "http://cs/up"}), NOW);
        assert_eq!(
            handled.answer,
            Answer::Result(json!({"fileName": "diagnostics.log"}))
        );
        assert!(matches!(
            handled.follow_up,
            Some(FollowUp::UploadDiagnostics { ref location, .. }) if location == "http://cs/up"
        ));
    }

    #[test]
    fn update_firmware_is_answered_then_downloaded() {
        let mut cp = ChargePoint::new(1, 0);
        let handled = cp.handle_call(
            "UpdateFirmware",
            &json!({"location": "http://cs/files/firmware/t/fw.bin",
                "retrieveDate": "2026-12-01T10:00:00Z", "retries": 2}),
            NOW,
        );
        assert_eq!(handled.answer, Answer::Result(json!({})));
        assert_eq!(
            handled.follow_up,
            Some(FollowUp::UpdateFirmware {
                location: "http://cs/files/firmware/t/fw.bin".into()
            })
        );
        let bad = cp.handle_call("UpdateFirmware", &json!({"location": "x"}), NOW);
        assert!(bad.malformed, "retrieveDate is required");
        assert_eq!(bad.follow_up, None);
    }

    #[test]
    fn configuration_keys() {
        let mut cp = ChargePoint::new(2, 0);
        let all = cp.handle_call("GetConfiguration", &json!({}), NOW);
        let Answer::Result(all) = all.answer else {
            panic!()
        };
        let keys = all["configurationKey"].as_array().unwrap();
        assert!(keys.len() >= 10);
        assert!(all.get("unknownKey").is_none());

        let some = json!({"key": ["heartbeatinterval", "NumberOfConnectors", "Nope"]});
        let Answer::Result(some) = cp.handle_call("GetConfiguration", &some, NOW).answer else {
            panic!()
        };
        assert_eq!(
            some,
            json!({
                "configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": false, "value": "300"},
                    {"key": "NumberOfConnectors", "readonly": true, "value": "2"},
                ],
                "unknownKey": ["Nope"],
            })
        );

        let change = |k: &str, v: &str| json!({"key": k, "value": v});
        let mut set =
            |k, v| status_of(&cp.handle_call("ChangeConfiguration", &change(k, v), NOW)).to_owned();
        assert_eq!(set("HeartbeatInterval", "60"), "Accepted");
        assert_eq!(set("HeartbeatInterval", "soon"), "Rejected");
        assert_eq!(set("NumberOfConnectors", "4"), "Rejected");
        assert_eq!(set("StopTransactionOnInvalidId", "FALSE"), "Accepted");
        assert_eq!(set("NoSuchKey", "1"), "NotSupported");
        assert_eq!(cp.heartbeat_interval(), Some(Duration::from_secs(60)));
        assert_eq!(cp.config("StopTransactionOnInvalidId"), Some("false"));
    }

    #[test]
    fn malformed_requests_get_the_callerror_the_spec_names() {
        let mut cp = ChargePoint::new(1, 0);
        let cases = [
            (
                "ReserveNow",
                json!({"connectorId": 1}),
                "OccurenceConstraintViolation",
            ),
            (
                "CancelReservation",
                json!({"reservationId": "7"}),
                "TypeConstraintViolation",
            ),
            (
                "Reset",
                json!({"type": "Medium"}),
                "PropertyConstraintViolation",
            ),
            ("Reset", json!([]), "FormationViolation"),
            (
                "Reset",
                json!({"type": "Soft", "why": "x"}),
                "FormationViolation",
            ),
            (
                "RemoteStartTransaction",
                json!({"idTag": "012345678901234567890"}),
                "PropertyConstraintViolation",
            ),
            (
                "ReserveNow",
                json!({"connectorId": 1, "expiryDate": "tomorrow", "idTag": "A", "reservationId": 1}),
                "TypeConstraintViolation",
            ),
        ];
        for (action, payload, code) in cases {
            let handled = cp.handle_call(action, &payload, NOW);
            assert!(handled.malformed, "{action} {payload}");
            assert!(
                matches!(&handled.answer, Answer::Error { code: c, .. } if *c == code),
                "{action} {payload}: {handled:?}"
            );
        }
        let unknown = cp.handle_call("FlyToTheMoon", &json!({}), NOW);
        assert!(matches!(
            unknown.answer,
            Answer::Error {
                code: "NotImplemented",
                ..
            }
        ));
        assert!(!unknown.malformed);
        let clear = cp.handle_call("ClearCache", &json!({}), NOW);
        assert_eq!(status_of(&clear), "Accepted");
    }
}
