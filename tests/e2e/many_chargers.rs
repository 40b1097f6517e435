//! End-to-end at scale: a few hundred simulated chargers (the simulator's load runner) are
//! provisioned over REST, connect, boot, report status and run heartbeats against the real
//! server; every one must be held, no CALLERROR may occur, and the server must see them all.

use std::time::Duration;

use crate::support::{TOKEN, spawn_app};
use echarging_sim::{LoadConfig, Mode, Provisioning, load};

const CHARGERS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_chargers_boot_and_heartbeat() {
    let app = spawn_app().await;
    let mut cfg = LoadConfig::new(app.ws_url.clone(), CHARGERS, Mode::Heartbeat { rate: None });
    cfg.id_prefix = "MANY-".into();
    cfg.duration = Duration::from_secs(2);
    cfg.provision = Some(Provisioning {
        api_url: app.base.clone(),
        token: TOKEN.into(),
    });
    let report = load::run(cfg).await.expect("load run");

    assert_eq!(
        report.connected, CHARGERS,
        "failures: {:?}",
        report.failures
    );
    assert!(report.call_errors.is_empty(), "{:?}", report.call_errors);
    let hb = &report.actions["Heartbeat"];
    assert!(
        hb.count >= CHARGERS as u64,
        "every charger got heartbeats answered"
    );
    assert_eq!(report.actions["BootNotification"].count, CHARGERS as u64);

    let list = app.list_chargers("").await;
    assert_eq!(list.len(), CHARGERS);
    // What they reported at boot is there for every one of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = app.list_chargers("").await;
        let booted = list.iter().filter(|c| c["vendor"].is_string()).count();
        if booted == CHARGERS {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{booted} booted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await;
}
