//! The measured phase of `--mode idle` and `--mode charge` for one charger: the clock of a real
//! site. In charge mode drivers arrive (closed loop: a pause after the last one left; paced: on
//! a fixed schedule), optionally book the connector over REST first, authorise, charge with a
//! MeterValues sample every interval, stop and leave. In both modes sessions started remotely
//! are sampled until stopped remotely, Heartbeats go out at the interval the central system
//! set, and reservations expire on time. The `Station` does the talking; this only decides when.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::charge_point::SessionPhase;
use crate::latency::Action;
use crate::messages::{self, StopReason};
use crate::rng::Rng;
use crate::station::{PlugIn, Station, StationError};

/// What each simulated driver does in `--mode charge`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    /// idTags are `{id_tag_prefix}{n:05}`, n the charger's number (`SIMTAG-00001`).
    pub id_tag_prefix: String,
    /// Between MeterValues samples while charging.
    pub meter_interval: Duration,
    /// Samples per session; the transaction stops right after the last one (after one
    /// interval when 0).
    pub meter_values: u32,
    /// After a session ends, before the next driver arrives (closed loop).
    pub pause: Duration,
    /// Share of sessions (0–1) that book the connector over the REST API first and then
    /// start on the reservation the charger receives (needs `--api-url`).
    pub reserve_share: f64,
}

impl Default for SessionPlan {
    fn default() -> SessionPlan {
        SessionPlan {
            id_tag_prefix: "SIMTAG-".to_owned(),
            meter_interval: Duration::from_secs(5),
            meter_values: 3,
            pause: Duration::from_secs(1),
            reserve_share: 0.0,
        }
    }
}

impl SessionPlan {
    /// The idTag of charger number `n`.
    pub fn id_tag(&self, n: usize) -> String {
        format!("{}{n:05}", self.id_tag_prefix)
    }

    /// One session from arrival to the next arrival, when nothing waits.
    pub fn cycle(&self) -> Duration {
        self.meter_interval * self.meter_values.max(1) + self.pause
    }
}

/// How long a driver who booked waits for the charger to receive the reservation before
/// plugging in anyway (the central system then links the start by charger, connector and idTag).
const RESERVATION_WAIT: Duration = Duration::from_secs(5);

/// Where to book slots: echarging's REST API as the operator, for the charger's customer.
#[derive(Debug, Clone)]
pub struct Booker {
    pub http: reqwest::Client,
    pub api_url: String,
    pub token: String,
}

/// What the drivers' bookings got.
#[derive(Debug, Clone, Default)]
pub struct BookingTally {
    pub made: u64,
    pub refused: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// One charger's driver for one booking: who books where.
pub(crate) struct BookingSeat<'a> {
    pub booker: &'a Booker,
    pub charger_id: &'a str,
    pub customer_id: i64,
}

/// Sampling of one charging session.
#[derive(Debug, Clone, Copy)]
struct Sampling {
    next: Instant,
    last: Instant,
    /// Samples still to take before stopping; `None` runs until stopped from outside.
    left: Option<u32>,
}

/// The measured-phase clock of one charger.
pub(crate) struct Site {
    id_tag: String,
    plan: SessionPlan,
    /// Local sessions at all (charge mode), and paced at this period if set.
    local_sessions: bool,
    period: Option<Duration>,
    sampling: Vec<Option<Sampling>>,
    next_arrival: Option<Instant>,
    /// The connector booked, until when to wait for its ReserveNow, and when the booking was sent.
    awaiting_reservation: Option<(u32, Instant, Instant)>,
    next_heartbeat: Option<Instant>,
    rotation: u32,
    rng: Rng,
    pub skipped: u64,
    pub bookings: BookingTally,
}

impl Site {
    /// `offset` (0–1) staggers this charger's first arrival and heartbeat over a period, so
    /// thousands of chargers do not all act in the same instant.
    pub(crate) fn new(
        plan: &SessionPlan,
        id_tag: String,
        local_sessions: bool,
        period: Option<Duration>,
        connectors: u32,
        seed: u64,
    ) -> Site {
        Site {
            id_tag,
            plan: plan.clone(),
            local_sessions,
            period,
            sampling: vec![None; connectors as usize],
            next_arrival: None,
            awaiting_reservation: None,
            next_heartbeat: None,
            rotation: seed as u32,
            rng: Rng::new(seed),
            skipped: 0,
            bookings: BookingTally::default(),
        }
    }

    /// Runs until `deadline`, then stops what is charging. Returns on a lost connection so the
    /// caller can reconnect and call again; the site's clock carries on where it was.
    pub(crate) async fn run(
        &mut self,
        station: &mut Station,
        start: Instant,
        deadline: Instant,
        offset: f64,
        seat: Option<&BookingSeat<'_>>,
    ) -> Result<(), StationError> {
        if self.next_heartbeat.is_none()
            && let Some(interval) = station.charge_point().heartbeat_interval()
        {
            self.next_heartbeat = Some(start + interval.mul_f64(offset));
        }
        if self.local_sessions && self.next_arrival.is_none() && !self.local_active(station) {
            let spread = self.period.unwrap_or_else(|| self.plan.cycle());
            self.next_arrival = Some((start + spread.mul_f64(offset)).max(Instant::now()));
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.reconcile(station, now);
            if let Some((connector, until, booked)) = self.awaiting_reservation {
                let ours = station
                    .charge_point()
                    .reservation(connector)
                    .is_some_and(|r| r.id_tag.eq_ignore_ascii_case(&self.id_tag));
                if ours {
                    station.record_latency(Action::BookingToReserveNow, now - booked);
                }
                if ours || now >= until {
                    self.awaiting_reservation = None;
                    self.plug_in(station, connector, now).await?;
                    continue;
                }
            }
            let due = self.next_due(station).unwrap_or(deadline).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => self.run_due(station, seat).await?,
                incoming = station.next_frame() => station.handle(incoming).await?,
            }
        }
        self.wind_down(station).await
    }

    /// Delivers what is queued, then stops every transaction still charging (reason Local)
    /// and waits for those stops to be answered, so the central system's ledger is left tidy.
    async fn wind_down(&mut self, station: &mut Station) -> Result<(), StationError> {
        // Every charger stops at this same instant: a burst worth nothing as a latency sample.
        station.end_measurement();
        station.pump().await?;
        let charging: Vec<u32> = station
            .charge_point()
            .ids()
            .filter(|&c| {
                station
                    .charge_point()
                    .session(c)
                    .is_some_and(|s| s.phase == SessionPhase::Charging)
            })
            .collect();
        for connector in charging {
            station.stop(connector, StopReason::Local).await?;
        }
        Ok(())
    }

    fn local_active(&self, station: &Station) -> bool {
        let cp = station.charge_point();
        self.awaiting_reservation.is_some()
            || cp.ids().any(|c| cp.session(c).is_some_and(|s| !s.remote))
    }

    /// Starts sampling sessions that began charging, forgets those that ended, and (closed
    /// loop) schedules the next driver once the last one left.
    fn reconcile(&mut self, station: &Station, now: Instant) {
        let cp = station.charge_point();
        for (i, sampling) in self.sampling.iter_mut().enumerate() {
            let session = cp.session(i as u32 + 1);
            match session {
                Some(s) if s.phase == SessionPhase::Charging => {
                    if sampling.is_none() {
                        *sampling = Some(Sampling {
                            next: now + self.plan.meter_interval,
                            last: now,
                            left: (!s.remote).then_some(self.plan.meter_values),
                        });
                    }
                }
                _ => *sampling = None,
            }
        }
        if self.local_sessions
            && self.period.is_none()
            && self.next_arrival.is_none()
            && !self.local_active(station)
        {
            self.next_arrival = Some(now + self.plan.pause);
        }
    }

    fn next_due(&self, station: &Station) -> Option<Instant> {
        let expiry = station.charge_point().next_expiry_ms().map(|at| {
            let left = at.saturating_sub(messages::now_unix_ms()).max(0) as u64;
            Instant::now() + Duration::from_millis(left)
        });
        let sampling = self.sampling.iter().flatten().map(|s| s.next);
        let awaiting = self.awaiting_reservation.map(|(_, until, _)| until);
        [self.next_arrival, self.next_heartbeat, expiry, awaiting]
            .into_iter()
            .flatten()
            .chain(sampling)
            .min()
    }

    async fn run_due(
        &mut self,
        station: &mut Station,
        seat: Option<&BookingSeat<'_>>,
    ) -> Result<(), StationError> {
        let now = Instant::now();
        if let Some(at) = self.next_heartbeat
            && at <= now
        {
            let interval = station.charge_point().heartbeat_interval();
            self.next_heartbeat = interval.map(|i| (at + i).max(now));
            station.heartbeat().await?;
        }
        if station
            .charge_point()
            .next_expiry_ms()
            .is_some_and(|at| at <= messages::now_unix_ms())
        {
            station
                .charge_point_mut()
                .expire_reservations(messages::now_unix_ms());
            station.pump().await?;
        }
        for i in 0..self.sampling.len() {
            let Some(mut s) = self.sampling[i].filter(|s| s.next <= now) else {
                continue;
            };
            let connector = i as u32 + 1;
            if s.left != Some(0) {
                station.sample(connector, now - s.last).await?;
                s.left = s.left.map(|n| n - 1);
            }
            s.last = now;
            s.next += self.plan.meter_interval;
            self.sampling[i] = Some(s);
            if s.left == Some(0) {
                self.sampling[i] = None;
                station.stop(connector, StopReason::Local).await?;
            }
        }
        if let Some(at) = self.next_arrival
            && at <= now
        {
            self.next_arrival = self.period.map(|p| (at + p).max(now));
            self.arrive(station, seat, now).await?;
        }
        Ok(())
    }

    /// A driver arrives: picks a connector (theirs if reserved, else rotating over the free
    /// ones), books it first for a share of sessions, then plugs in.
    async fn arrive(
        &mut self,
        station: &mut Station,
        seat: Option<&BookingSeat<'_>>,
        now: Instant,
    ) -> Result<(), StationError> {
        if self.local_active(station) {
            // Paced: the previous driver is still there when the next one is due.
            self.skipped += 1;
            return Ok(());
        }
        let Some(connector) = station.charge_point().connector_for(
            &self.id_tag,
            self.rotation % station.charge_point().connectors() + 1,
        ) else {
            self.skipped += 1;
            return Ok(());
        };
        self.rotation = self.rotation.wrapping_add(1);
        if let Some(seat) = seat
            && self.plan.reserve_share > 0.0
            && station.charge_point().reservation(connector).is_none()
            && self.rng.unit() < self.plan.reserve_share
            && self.book(station, seat, connector).await
        {
            self.awaiting_reservation = Some((connector, now + RESERVATION_WAIT, now));
            return Ok(());
        }
        self.plug_in(station, connector, now).await
    }

    async fn plug_in(
        &mut self,
        station: &mut Station,
        connector: u32,
        now: Instant,
    ) -> Result<(), StationError> {
        match station.plug_in(connector, &self.id_tag).await? {
            PlugIn::Started(_) => {}
            // Refused or taken meanwhile: this driver leaves; the next one comes after a pause.
            PlugIn::Refused(_) => {}
            PlugIn::Busy(_) => self.skipped += 1,
        }
        if self.period.is_none() && !self.local_active(station) {
            self.next_arrival = Some(now + self.plan.pause);
        }
        Ok(())
    }

    /// Books `connector` from now for one session's length (plus a minute); true on 201.
    async fn book(
        &mut self,
        station: &mut Station,
        seat: &BookingSeat<'_>,
        connector: u32,
    ) -> bool {
        let sent = Instant::now();
        let start_ms = messages::now_unix_ms();
        let length = self.plan.cycle() + Duration::from_secs(60);
        let body = json!({
            "chargerId": seat.charger_id,
            "connectorId": connector,
            "customerId": seat.customer_id,
            "idTag": self.id_tag,
            "start": messages::rfc3339_from_ms(start_ms),
            "end": messages::rfc3339_from_ms(start_ms + length.as_millis() as i64),
        });
        let url = format!(
            "{}/api/v1/reservations",
            seat.booker.api_url.trim_end_matches('/')
        );
        let answer = seat
            .booker
            .http
            .post(url)
            .bearer_auth(&seat.booker.token)
            .json(&body)
            .send()
            .await;
        let status = answer.map_or_else(
            |_| "transport".to_owned(),
            |r| r.status().as_u16().to_string(),
        );
        match status.as_str() {
            "201" => {
                station.record_latency(Action::Booking, sent.elapsed());
                self.bookings.made += 1;
                true
            }
            "409" => {
                self.bookings.refused += 1;
                false
            }
            _ => {
                *self.bookings.errors.entry(status).or_default() += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_defaults_and_tags() {
        let plan = SessionPlan::default();
        assert_eq!(plan.id_tag(1), "SIMTAG-00001");
        assert_eq!(plan.id_tag(123_456), "SIMTAG-123456");
        assert_eq!(plan.cycle(), Duration::from_secs(16));
        let none = SessionPlan {
            meter_values: 0,
            ..SessionPlan::default()
        };
        assert_eq!(none.cycle(), Duration::from_secs(6));
    }
}
