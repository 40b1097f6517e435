//! A virtual charge point on the wire: one `Charger` connection driven by a `ChargePoint`'s
//! state. It answers every request of the central system as a real charger would and then does
//! what the answer promised (StartTransaction after RemoteStartTransaction, StopTransaction after
//! RemoteStopTransaction, triggered messages, a reboot after Reset), sends a StatusNotification
//! for each status change, delivers transaction messages through its `TxQueue` (re-sent after a
//! reconnect, before anything newer) and reconnects with backoff when the connection drops.
//! It keeps no clock of its own: the caller (a test, or the load run) decides when a driver
//! plugs in, when the meter is sampled and when a session stops.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::charge_point::{
    Answer, Busy, CHARGING_POWER_W, ChargePoint, ConnectorStatus, FollowUp, SessionStart,
    SessionStop, Triggered,
};
use crate::charger::{CallOutcome, Charger, ClientError, Incoming};
use crate::connect::{ChargerConfig, ConnectError};
use crate::latency::{Action, LatencyBatch};
use crate::messages::{self, StopReason};
use crate::quirks::Quirks;
use crate::tx_queue::{TxAction, TxQueue};

/// How a station is set up.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub charger: ChargerConfig,
    pub connectors: u32,
    /// Where every connector's energy register starts (Wh).
    pub register_wh: i64,
    /// Transaction messages kept while they cannot be delivered (see `TxQueue::push`).
    pub tx_queue_capacity: usize,
    /// Field habits applied to every CALL the station sends (none by default). The connection
    /// side (subprotocol, trailing slash) is set on `charger` by whoever builds the config.
    pub quirks: Quirks,
}

impl StationConfig {
    pub fn new(charger: ChargerConfig, connectors: u32) -> StationConfig {
        StationConfig {
            charger,
            connectors,
            register_wh: 0,
            tx_queue_capacity: 1000,
            quirks: Quirks::none(),
        }
    }
}

/// Why the station stopped talking.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    /// The connection dropped (or could not be opened); `reconnect` may bring it back.
    #[error("connection lost: {0}")]
    Lost(String),
    /// Something reconnecting does not fix, e.g. a BootNotification that was not Accepted.
    #[error("{0}")]
    Failed(String),
}

impl StationError {
    fn lost(what: &str, err: impl std::fmt::Display) -> StationError {
        StationError::Lost(format!("{what}: {err}"))
    }
}

/// What happened when a driver presented an idTag at a connector.
#[derive(Debug, Clone, PartialEq)]
pub enum PlugIn {
    /// Authorised: the session began and its StartTransaction went out (or is queued).
    Started(SessionStart),
    /// Authorize answered with this status (or a CALLERROR code, `timeout` or `malformed
    /// answer`): no session.
    Refused(String),
    /// The connector cannot take a session now.
    Busy(Busy),
}

/// What the station counted, for a report. Counts by name are only allocated when non-empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationStats {
    /// CALLERROR answers to our CALLs, by error code.
    pub call_errors: BTreeMap<String, u64>,
    /// The same CALLERRORs by `Action: code`, to tell which message a server refused.
    pub call_errors_by_action: BTreeMap<String, u64>,
    /// Requests from the central system answered, by action.
    pub server_calls: BTreeMap<String, u64>,
    /// Requests from the central system that broke their schema, by action.
    pub bad_server_calls: BTreeMap<String, u64>,
    /// CALLRESULTs to our CALLs that lacked what their schema requires, by action.
    pub bad_answers: BTreeMap<String, u64>,
    /// Our CALLs that got no answer in time, by action.
    pub timeouts: BTreeMap<String, u64>,
    /// Authorize answered with a status other than Accepted.
    pub authorize_refused: u64,
    pub starts_accepted: u64,
    /// StartTransactions sent with the reservationId the charger held for that idTag.
    pub starts_with_reservation: u64,
    /// StartTransaction answered with a status other than Accepted.
    pub starts_refused: u64,
    /// StopTransaction answered for a transaction that had been accepted.
    pub sessions_completed: u64,
    /// Of those, sessions stopped early because measuring ended (`end_measurement`).
    pub sessions_cut_short: u64,
    /// Transaction messages sent again after a lost connection or a timeout.
    pub tx_resent: u64,
    /// Transaction messages given up on (never answered after every attempt, or queue full).
    pub tx_dropped: u64,
    pub reconnects: u64,
    /// UpdateFirmware carried out to Installed, or failed at the download.
    pub firmware_installed: u64,
    pub firmware_failed: u64,
    /// ReserveNow accepted.
    pub reservations_accepted: u64,
    /// ReserveNow for a connector that still held another live reservation.
    pub double_bookings_seen: u64,
}

/// How a CALL of ours ended.
enum Reply {
    Answered(Value),
    CallError(String),
    TimedOut,
}

/// A charge point with its connection. Large-ish (a WebSocket, its state, its queue): a load
/// run keeps it boxed.
pub struct Station {
    charger: Charger,
    cfg: ChargerConfig,
    quirks: Quirks,
    cp: ChargePoint,
    queue: TxQueue,
    follow_ups: VecDeque<FollowUp>,
    /// A Reset to carry out once everything before it is delivered.
    reboot: bool,
    stats: StationStats,
    latency: Option<LatencyBatch>,
    /// Set by `end_measurement`: stops from now on cut sessions short.
    measurement_ended: bool,
    /// Answers after this instant are not timed: when a run's deadline passes, every charger
    /// winds down at once, and a CALL caught in that burst measures the burst, not the load.
    measure_until: Option<Instant>,
}

impl Station {
    /// Opens the connection; sends nothing. Call `boot` and `announce` next.
    pub async fn connect(cfg: StationConfig) -> Result<Station, ConnectError> {
        let charger = Box::pin(Charger::connect(&cfg.charger)).await?;
        Ok(Station {
            charger,
            cp: ChargePoint::new(cfg.connectors, cfg.register_wh),
            queue: TxQueue::new(cfg.tx_queue_capacity),
            cfg: cfg.charger,
            quirks: cfg.quirks,
            follow_ups: VecDeque::new(),
            reboot: false,
            stats: StationStats::default(),
            latency: None,
            measurement_ended: false,
            measure_until: None,
        })
    }

    /// Times every CALL of ours that has a latency `Action` into `batch`.
    pub fn set_latency(&mut self, batch: LatencyBatch) {
        self.latency = Some(batch);
    }

    /// Records a delay measured outside the CALLs (while timing is on).
    pub fn record_latency(&mut self, action: Action, elapsed: Duration) {
        if let Some(batch) = self.latency.as_mut() {
            batch.record(action, elapsed);
        }
    }

    /// Stops timing (flushing what was timed) and marks sessions stopped from now on as cut
    /// short: what happens after a load run's deadline is winding down, not load.
    /// Time only answers that arrive by `deadline` (the end of the measured phase).
    pub fn set_measure_until(&mut self, deadline: Instant) {
        self.measure_until = Some(deadline);
    }

    pub fn end_measurement(&mut self) {
        self.latency = None;
        self.measurement_ended = true;
    }

    pub fn charger(&self) -> &Charger {
        &self.charger
    }

    /// The raw connection, e.g. for Heartbeat load or malformed-frame tests.
    pub fn charger_mut(&mut self) -> &mut Charger {
        &mut self.charger
    }

    pub fn charge_point(&self) -> &ChargePoint {
        &self.cp
    }

    /// The state, to change it from the charger's side (e.g. a fault); `pump` announces it.
    pub fn charge_point_mut(&mut self) -> &mut ChargePoint {
        &mut self.cp
    }

    pub fn stats(&self) -> &StationStats {
        &self.stats
    }

    /// Transaction messages not yet answered.
    pub fn queued_tx(&self) -> usize {
        self.queue.len()
    }

    /// BootNotification; an Accepted answer's interval becomes `HeartbeatInterval`. Any other
    /// status is `Failed`. Returns the answer.
    pub async fn boot(&mut self) -> Result<Value, StationError> {
        let payload = messages::boot_notification(self.charger.charge_box_id());
        match self.call("BootNotification", &payload).await? {
            Reply::Answered(answer) => match answer["status"].as_str() {
                Some("Accepted") => {
                    if let Some(interval) = answer["interval"].as_u64() {
                        self.cp
                            .set_config("HeartbeatInterval", &interval.to_string());
                    }
                    Ok(answer)
                }
                status => Err(StationError::Failed(format!(
                    "boot: status {}",
                    status.unwrap_or("missing or not a string")
                ))),
            },
            Reply::CallError(code) => Err(StationError::Failed(format!("boot: CALLERROR {code}"))),
            Reply::TimedOut => Err(StationError::Failed("boot: timed out".into())),
        }
    }

    /// A StatusNotification for every connector (as after a boot), then everything else owed.
    pub async fn announce(&mut self) -> Result<(), StationError> {
        self.cp.forget_announced();
        self.pump().await
    }

    /// Delivers everything owed, in this order, until nothing is left: answers to requests that
    /// arrived, status changes, what answered requests promised, queued transaction messages,
    /// and a pending reboot. OCPP allows one CALL of ours in flight, so this is sequential.
    pub async fn pump(&mut self) -> Result<(), StationError> {
        loop {
            if let Some((id, action, payload)) = self.charger.queued_call() {
                self.answer(&id, &action, &payload).await?;
                continue;
            }
            let changes = self.cp.take_status_changes();
            if !changes.is_empty() {
                for (connector, status) in changes {
                    let payload = messages::status_notification(
                        connector,
                        status.as_str(),
                        status.error_code(),
                    );
                    self.call("StatusNotification", &payload).await?;
                }
                continue;
            }
            if let Some(follow_up) = self.follow_ups.pop_front() {
                self.carry_out(follow_up).await?;
                continue;
            }
            if !self.queue.is_empty() {
                self.deliver_front().await?;
                continue;
            }
            if std::mem::take(&mut self.reboot) {
                self.restart().await?;
                continue;
            }
            return Ok(());
        }
    }

    /// Waits up to `timeout` for one frame and deals with it (then `pump`s). `Ok(false)` when
    /// nothing arrived.
    pub async fn serve(&mut self, timeout: Duration) -> Result<bool, StationError> {
        match tokio::time::timeout(timeout, self.charger.read_incoming()).await {
            Err(_) => Ok(false),
            Ok(incoming) => self.handle(incoming).await.map(|()| true),
        }
    }

    /// Keeps serving until `duration` has passed.
    pub async fn serve_for(&mut self, duration: Duration) -> Result<(), StationError> {
        let until = Instant::now() + duration;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.serve(left).await?;
        }
    }

    /// The next frame from the socket; cancel-safe, for `select!` loops (then `handle` it).
    pub async fn next_frame(&mut self) -> Result<Incoming, ClientError> {
        self.charger.read_incoming().await
    }

    /// Deals with one frame from `next_frame`: answers a request, notices a close.
    pub async fn handle(
        &mut self,
        incoming: Result<Incoming, ClientError>,
    ) -> Result<(), StationError> {
        match incoming {
            Ok(Incoming::Call {
                id,
                action,
                payload,
            }) => {
                self.answer(&id, &action, &payload).await?;
                self.pump().await
            }
            Ok(Incoming::Close { code, reason }) => Err(StationError::Lost(match code {
                Some(code) => format!("closed by the server (code {code}: {reason})"),
                None => "connection ended by the server".to_owned(),
            })),
            // Late answers to CALLs we gave up on, raw or binary frames: nothing to say.
            Ok(_) => Ok(()),
            Err(e) => Err(StationError::lost("connection", e)),
        }
    }

    pub async fn heartbeat(&mut self) -> Result<(), StationError> {
        self.heartbeat_since(Instant::now()).await
    }

    /// A Heartbeat timed from `since`: its scheduled time in an open loop, so that a server
    /// that falls behind shows its queueing delay in the latency.
    pub async fn heartbeat_since(&mut self, since: Instant) -> Result<(), StationError> {
        self.call_from("Heartbeat", &json!({}), since).await?;
        self.pump().await
    }

    /// A driver presents `id_tag` at `connector`: Authorize, and if Accepted the session begins
    /// (Preparing) and its StartTransaction is sent, with the reservation this idTag holds on
    /// that connector.
    pub async fn plug_in(&mut self, connector: u32, id_tag: &str) -> Result<PlugIn, StationError> {
        if let Err(busy) = self.cp.can_begin(connector, id_tag) {
            return Ok(PlugIn::Busy(busy));
        }
        // A CALLERROR, a timeout or a malformed answer is counted where it belongs (and
        // fails the run's checks); only a real verdict counts as a refusal.
        let status = match self.call("Authorize", &messages::authorize(id_tag)).await? {
            Reply::Answered(answer) => match answer["idTagInfo"]["status"].as_str() {
                Some(status) => {
                    if status != "Accepted" {
                        self.stats.authorize_refused += 1;
                    }
                    status.to_owned()
                }
                None => {
                    self.bad_answer("Authorize");
                    "malformed answer".to_owned()
                }
            },
            Reply::CallError(code) => code,
            Reply::TimedOut => "timeout".to_owned(),
        };
        if status != "Accepted" {
            self.pump().await?;
            return Ok(PlugIn::Refused(status));
        }
        // Nothing was answered between the check and here, so the connector is still free.
        let start = match self.cp.begin_session(connector, id_tag, false) {
            Ok(start) => start,
            Err(busy) => return Ok(PlugIn::Busy(busy)),
        };
        self.queue_start(&start);
        self.pump().await?;
        Ok(PlugIn::Started(start))
    }

    /// Samples the meter of the session charging on `connector` (`elapsed` of charging since
    /// the last sample) and sends MeterValues. `Ok(false)` when nothing charges there.
    pub async fn sample(
        &mut self,
        connector: u32,
        elapsed: Duration,
    ) -> Result<bool, StationError> {
        let Some((transaction_id, register_wh)) = self.cp.sample(connector, elapsed) else {
            return Ok(false);
        };
        let payload = messages::meter_values(
            connector,
            Some(transaction_id),
            register_wh,
            CHARGING_POWER_W,
            "Sample.Periodic",
        );
        if !self.queue.push(TxAction::MeterValues, connector, payload) {
            self.stats.tx_dropped += 1;
        }
        self.pump().await?;
        Ok(true)
    }

    /// Stops the transaction charging on `connector` and sends StopTransaction; the cable is
    /// unplugged (Finishing → Available) once it is answered. `Ok(false)` when nothing charges.
    pub async fn stop(&mut self, connector: u32, reason: StopReason) -> Result<bool, StationError> {
        let Some(stop) = self.cp.stop_session(connector, reason) else {
            return Ok(false);
        };
        if self.measurement_ended {
            self.cp.mark_cut_short(connector);
        }
        self.queue_stop(&stop);
        self.pump().await?;
        Ok(true)
    }

    /// Reconnects after a lost connection: waits out `backoff` before each attempt, gives up
    /// (`Failed`) when the next attempt would start after `give_up`. Once connected: boot,
    /// a status for every connector, then the transaction messages still unanswered, in order.
    pub async fn reconnect(
        &mut self,
        backoff: &mut Backoff,
        give_up: Instant,
    ) -> Result<(), StationError> {
        loop {
            let wait = backoff.next_delay();
            if Instant::now() + wait >= give_up {
                return Err(StationError::Failed(
                    "could not reconnect in time".to_owned(),
                ));
            }
            tokio::time::sleep(wait).await;
            if Box::pin(self.charger.reconnect(&self.cfg)).await.is_err() {
                continue;
            }
            match self.after_connect().await {
                Ok(()) => {
                    backoff.reset();
                    self.stats.reconnects += 1;
                    return Ok(());
                }
                Err(StationError::Lost(_)) => continue,
                Err(failed) => return Err(failed),
            }
        }
    }

    /// Says goodbye with a close frame (1000), waiting at most a second.
    pub async fn close(&mut self, reason: &str) {
        let bye = self.charger.send_close(1000, reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
    }

    async fn after_connect(&mut self) -> Result<(), StationError> {
        Box::pin(self.boot()).await?;
        self.announce().await
    }

    /// Answers one request of the central system and keeps what it promised for `pump`.
    async fn answer(
        &mut self,
        id: &str,
        action: &str,
        payload: &Value,
    ) -> Result<(), StationError> {
        let handled = self
            .cp
            .handle_call(action, payload, messages::now_unix_ms());
        count(&mut self.stats.server_calls, action);
        if handled.malformed {
            count(&mut self.stats.bad_server_calls, action);
        }
        if handled.double_booking {
            self.stats.double_bookings_seen += 1;
        }
        let sent = match &handled.answer {
            Answer::Result(answer) => {
                if action == "ReserveNow" && answer["status"] == "Accepted" {
                    self.stats.reservations_accepted += 1;
                }
                self.charger.reply(id, answer.clone()).await
            }
            Answer::Error { code, description } => {
                self.charger.reply_error(id, code, description).await
            }
        };
        sent.map_err(|e| StationError::lost(&format!("answering {action}"), e))?;
        if let Some(follow_up) = handled.follow_up {
            self.follow_ups.push_back(follow_up);
        }
        Ok(())
    }

    async fn carry_out(&mut self, follow_up: FollowUp) -> Result<(), StationError> {
        match follow_up {
            FollowUp::StartTransaction(start) => self.queue_start(&start),
            FollowUp::StopTransaction(stop) => self.queue_stop(&stop),
            FollowUp::Trigger { message, connector } => {
                self.send_triggered(message, connector).await?
            }
            FollowUp::Reset { hard } => {
                // Transactions end before the reboot (OCPP 1.6 §5.14); their StopTransactions
                // are delivered first, the reboot waits at the back of the line.
                let reason = if hard {
                    StopReason::HardReset
                } else {
                    StopReason::SoftReset
                };
                for connector in self.cp.ids() {
                    if let Some(stop) = self.cp.stop_session(connector, reason) {
                        self.queue_stop(&stop);
                    }
                }
                self.reboot = true;
            }
            FollowUp::UpdateFirmware { location } => self.update_firmware(&location).await?,
            FollowUp::UploadDiagnostics {
                location,
                file_name,
            } => self.upload_diagnostics(&location, &file_name).await?,
        }
        Ok(())
    }

    /// Uploads a small diagnostics file to `location` (HTTP PUT of `location/file_name`, as the
    /// server's upload locations take it) and reports each step.
    async fn upload_diagnostics(
        &mut self,
        location: &str,
        file_name: &str,
    ) -> Result<(), StationError> {
        let status = |s: &str| json!({"status": s});
        self.call("DiagnosticsStatusNotification", &status("Uploading"))
            .await?;
        let body = format!(
            "{} diagnostics at {}\n",
            self.charger.charge_box_id(),
            messages::now_rfc3339()
        );
        let url = format!("{}/{file_name}", location.trim_end_matches('/'));
        let ok = http()
            .put(url)
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let done = if ok { "Uploaded" } else { "UploadFailed" };
        self.call("DiagnosticsStatusNotification", &status(done))
            .await?;
        Ok(())
    }

    /// Downloads the firmware and reports each step. The download is awaited in the station's
    /// own task (a real charger does it beside its OCPP loop; a simulated one's file is small).
    async fn update_firmware(&mut self, location: &str) -> Result<(), StationError> {
        let status = |s: &str| json!({"status": s});
        self.call("FirmwareStatusNotification", &status("Downloading"))
            .await?;
        match download(location).await {
            Ok(_bytes) => {
                for step in ["Downloaded", "Installing", "Installed"] {
                    self.call("FirmwareStatusNotification", &status(step))
                        .await?;
                }
                self.stats.firmware_installed += 1;
            }
            Err(_) => {
                self.call("FirmwareStatusNotification", &status("DownloadFailed"))
                    .await?;
                self.stats.firmware_failed += 1;
            }
        }
        Ok(())
    }

    async fn send_triggered(
        &mut self,
        message: Triggered,
        connector: Option<u32>,
    ) -> Result<(), StationError> {
        let connectors: Vec<u32> = match connector {
            Some(c) => vec![c],
            None => self.cp.ids().collect(),
        };
        match message {
            Triggered::BootNotification => {
                let payload = messages::boot_notification(self.charger.charge_box_id());
                self.call("BootNotification", &payload).await?;
            }
            Triggered::Heartbeat => {
                self.call("Heartbeat", &json!({})).await?;
            }
            Triggered::StatusNotification => {
                for c in connectors {
                    if let Some(status) = self.cp.status(c) {
                        let payload =
                            messages::status_notification(c, status.as_str(), status.error_code());
                        self.call("StatusNotification", &payload).await?;
                    }
                }
            }
            Triggered::MeterValues => {
                for c in connectors {
                    let session = self.cp.session(c);
                    let charging = session
                        .and_then(|s| s.transaction_id)
                        .filter(|_| self.cp.status(c) == Some(ConnectorStatus::Charging));
                    let power = if charging.is_some() {
                        CHARGING_POWER_W
                    } else {
                        0
                    };
                    let register = self.cp.register_wh(c).unwrap_or_default();
                    let payload = messages::meter_values(c, charging, register, power, "Trigger");
                    self.call("MeterValues", &payload).await?;
                }
            }
        }
        Ok(())
    }

    /// Reset: close, connect again at once, boot. A failure here is a lost
    /// connection like any other; the caller's reconnect takes over.
    async fn restart(&mut self) -> Result<(), StationError> {
        self.close("reset").await;
        // Sessions ended with their StopTransactions; any left (never started) end with the
        // reboot too.
        for connector in self.cp.ids() {
            self.cp.end_session(connector);
        }
        Box::pin(self.charger.reconnect(&self.cfg))
            .await
            .map_err(|e| StationError::lost("reconnecting after Reset", e))?;
        Box::pin(self.boot()).await?;
        // `pump` goes on with a status for every connector and whatever is queued.
        self.cp.forget_announced();
        Ok(())
    }

    fn queue_start(&mut self, start: &SessionStart) {
        if start.reservation_id.is_some() {
            self.stats.starts_with_reservation += 1;
        }
        let payload = messages::start_transaction(
            start.connector,
            &start.id_tag,
            start.meter_start_wh,
            start.reservation_id,
        );
        self.queue
            .push(TxAction::StartTransaction, start.connector, payload);
    }

    fn queue_stop(&mut self, stop: &SessionStop) {
        let payload = messages::stop_transaction(
            stop.transaction_id,
            Some(&stop.id_tag),
            stop.meter_stop_wh,
            stop.reason,
        );
        self.queue
            .push(TxAction::StopTransaction, stop.connector, payload);
    }

    /// Sends the oldest unanswered transaction message and acts on its answer.
    async fn deliver_front(&mut self) -> Result<(), StationError> {
        let Some(message) = self.queue.front() else {
            return Ok(());
        };
        let (action, connector) = (message.action, message.connector);
        // The payload stays queued until answered; the send borrows a copy.
        let payload = message.payload.clone();
        if self.queue.mark_sent() {
            self.stats.tx_resent += 1;
        }
        let reply = self.call(action.name(), &payload).await?;
        let answer = match reply {
            Reply::TimedOut => {
                let attempts = self
                    .cp
                    .config("TransactionMessageAttempts")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3u32)
                    .max(1);
                if self.queue.mark_timed_out() < attempts {
                    return Ok(());
                }
                self.stats.tx_dropped += 1;
                None
            }
            Reply::CallError(_) => None,
            Reply::Answered(answer) => Some(answer),
        };
        self.queue.pop();
        match action {
            TxAction::StartTransaction => self.start_answered(connector, answer.as_ref()),
            TxAction::StopTransaction => {
                let deauthorized = payload["reason"] == StopReason::DeAuthorized.as_str();
                // The driver unplugs: Finishing → Available.
                let session = self.cp.end_session(connector);
                if answer.is_some() && !deauthorized {
                    self.stats.sessions_completed += 1;
                    if session.is_some_and(|s| s.cut_short) {
                        self.stats.sessions_cut_short += 1;
                    }
                }
            }
            TxAction::MeterValues => {}
        }
        Ok(())
    }

    fn start_answered(&mut self, connector: u32, answer: Option<&Value>) {
        let Some(answer) = answer else {
            // A CALLERROR or no answer at all: the charger cannot know a transactionId to
            // stop, so the session is given up.
            self.cp.end_session(connector);
            return;
        };
        let status = answer["idTagInfo"]["status"].as_str();
        let Some((transaction_id, status)) = answer["transactionId"].as_i64().zip(status) else {
            self.bad_answer("StartTransaction");
            self.cp.end_session(connector);
            return;
        };
        let accepted = status == "Accepted";
        if accepted {
            self.stats.starts_accepted += 1;
        } else {
            self.stats.starts_refused += 1;
        }
        if let Some(stop) = self.cp.start_answered(connector, transaction_id, accepted) {
            self.queue_stop(&stop);
        }
    }

    fn bad_answer(&mut self, action: &str) {
        count(&mut self.stats.bad_answers, action);
    }

    /// One CALL, timed. A lost connection is an error; a CALLERROR or a timeout is counted and
    /// handed back for the caller to decide.
    async fn call(&mut self, action: &str, payload: &Value) -> Result<Reply, StationError> {
        self.call_from(action, payload, Instant::now()).await
    }

    /// `call`, its latency measured from `since`.
    async fn call_from(
        &mut self,
        action: &str,
        payload: &Value,
        since: Instant,
    ) -> Result<Reply, StationError> {
        // The schema-valid payload is built everywhere else; habits bend it only here, on the
        // way out, so what the station believes it sent (its state, its queue) stays exact.
        let quirked;
        let payload = if self.quirks.is_empty() {
            payload
        } else {
            quirked = self.quirks.apply(action, payload);
            &quirked
        };
        // One CALL at a time: any answer still queued belongs to a CALL given up on.
        self.charger.discard_stray_answers();
        let deadline = Instant::now() + self.charger.call_timeout();
        let sent = tokio::time::timeout_at(deadline, self.charger.send_call(action, payload)).await;
        let outcome = match sent {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(id)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.charger.await_answer(&id)).await {
                    Err(_) => Err(ClientError::Timeout),
                    Ok(outcome) => outcome,
                }
            }
        };
        let reply = match outcome {
            Ok(CallOutcome::Result(answer)) => Reply::Answered(answer),
            Ok(CallOutcome::Error { code, .. }) => {
                count(&mut self.stats.call_errors, &code);
                count(
                    &mut self.stats.call_errors_by_action,
                    &format!("{action}: {code}"),
                );
                Reply::CallError(code)
            }
            Err(ClientError::Timeout) => {
                count(&mut self.stats.timeouts, action);
                return Ok(Reply::TimedOut);
            }
            Err(e) => return Err(StationError::lost(action, e)),
        };
        if let (Some(batch), Some(timed)) = (self.latency.as_mut(), Action::from_name(action))
            && self.measure_until.is_none_or(|end| Instant::now() <= end)
        {
            batch.record(timed, since.elapsed());
        }
        Ok(reply)
    }
}

fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// One HTTP client for every station's firmware downloads (a client per station would hold
/// a connection pool each).
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap_or_default()
    })
}

/// GETs a firmware file; its size in bytes, or why not.
async fn download(location: &str) -> Result<usize, String> {
    let response = http()
        .get(location)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response
        .bytes()
        .await
        .map(|b| b.len())
        .map_err(|e| e.to_string())
}
