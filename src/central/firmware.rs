//! What chargers report about firmware updates and log uploads: each charger's last
//! FirmwareStatusNotification, DiagnosticsStatusNotification and, from the security extension,
//! LogStatusNotification and SignedFirmwareStatusNotification, with when it came, and the last
//! [`HISTORY`] of each. Kept in memory on the node holding the socket (a restart forgets it;
//! the charger reports again on its next update); it decides nothing and sends nothing.

use std::collections::VecDeque;

use dashmap::DashMap;
use time::OffsetDateTime;

use crate::domain::ChargeBoxId;

/// How many past statuses of each kind are kept per charger.
pub const HISTORY: usize = 20;

/// One status a charger reported, and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub status: String,
    pub at: OffsetDateTime,
}

/// The statuses of one kind a charger reported, newest last.
#[derive(Debug, Clone, Default)]
pub struct StatusTrail {
    pub history: VecDeque<Reported>,
}

impl StatusTrail {
    pub fn last(&self) -> Option<&Reported> {
        self.history.back()
    }

    fn push(&mut self, reported: Reported) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(reported);
    }
}

/// Which notification a status came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Firmware,
    Diagnostics,
    /// LogStatusNotification (a GetLog upload).
    Log,
    /// SignedFirmwareStatusNotification (a SignedUpdateFirmware).
    SignedFirmware,
}

/// Every charger's trails. Entries are short-lived DashMap guards, never held across `.await`.
#[derive(Default)]
pub struct FileStatuses {
    firmware: DashMap<ChargeBoxId, StatusTrail>,
    diagnostics: DashMap<ChargeBoxId, StatusTrail>,
    logs: DashMap<ChargeBoxId, StatusTrail>,
    signed_firmware: DashMap<ChargeBoxId, StatusTrail>,
}

impl FileStatuses {
    fn map(&self, kind: Kind) -> &DashMap<ChargeBoxId, StatusTrail> {
        match kind {
            Kind::Firmware => &self.firmware,
            Kind::Diagnostics => &self.diagnostics,
            Kind::Log => &self.logs,
            Kind::SignedFirmware => &self.signed_firmware,
        }
    }

    pub fn record(&self, kind: Kind, id: &ChargeBoxId, status: &str) {
        self.map(kind)
            .entry(id.clone())
            .or_default()
            .push(Reported {
                status: status.to_string(),
                at: OffsetDateTime::now_utc(),
            });
    }

    pub fn trail(&self, kind: Kind, id: &ChargeBoxId) -> Option<StatusTrail> {
        self.map(kind).get(id).map(|t| t.clone())
    }

    /// A deleted charger's trails go with it.
    pub fn forget(&self, id: &ChargeBoxId) {
        self.firmware.remove(id);
        self.diagnostics.remove(id);
        self.logs.remove(id);
        self.signed_firmware.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_keeps_the_last_few_newest_last() {
        let statuses = FileStatuses::default();
        let id = ChargeBoxId::parse("CP-1").unwrap();
        for n in 0..HISTORY + 5 {
            statuses.record(Kind::Firmware, &id, &format!("S{n}"));
        }
        let trail = statuses.trail(Kind::Firmware, &id).unwrap();
        assert_eq!(trail.history.len(), HISTORY);
        assert_eq!(trail.history[0].status, "S5");
        assert_eq!(trail.last().unwrap().status, format!("S{}", HISTORY + 4));
        assert!(statuses.trail(Kind::Diagnostics, &id).is_none());
        statuses.record(Kind::Log, &id, "Uploaded");
        assert_eq!(statuses.trail(Kind::Log, &id).unwrap().history.len(), 1);
        assert!(statuses.trail(Kind::SignedFirmware, &id).is_none());
        statuses.forget(&id);
        assert!(statuses.trail(Kind::Log, &id).is_none());
    }
}
