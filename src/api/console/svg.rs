//! Server-drawn pictures: a day's timeline of bookings per connector and the fleet load chart.
//! Plain SVG inside the page (no script, no external file), with a text alternative beside each.

use maud::{Markup, html};
use time::OffsetDateTime;

use super::load::Sample;

/// One booking on the timeline.
pub struct Block {
    pub connector: u32,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// A CSS class: the reservation status in lower case, or `free`.
    pub class: String,
    pub label: String,
}

const ROW: i64 = 28;
const LEFT: i64 = 40;
const MINUTES: i64 = 24 * 60;

/// Connectors 1..=n as rows across the UTC day that starts at `day`, hours marked.
pub fn timeline(day: OffsetDateTime, connectors: u32, blocks: &[Block], caption: &str) -> Markup {
    let rows = i64::from(connectors.clamp(1, 100));
    let height = rows * ROW + 20;
    // Room on the right for the last hour label.
    let width = LEFT + MINUTES + 24;
    let minute = |t: OffsetDateTime| ((t - day).whole_minutes()).clamp(0, MINUTES);
    html! {
        svg.timeline viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(caption) {
            title { (caption) }
            @for h in (0..=24).step_by(3) {
                line.tick x1=(LEFT + h * 60) x2=(LEFT + h * 60) y1="0" y2=(rows * ROW) {}
                text.hour x=(LEFT + h * 60) y=(rows * ROW + 16) text-anchor="middle" { (format!("{h:02}")) }
            }
            @for c in 1..=rows {
                text.conn x="4" y=((c - 1) * ROW + 19) { "#" (c) }
                rect.lane x=(LEFT) y=((c - 1) * ROW + 4) width=(MINUTES) height=(ROW - 8) {}
            }
            @for b in blocks {
                @let (x0, x1) = (minute(b.start), minute(b.end));
                @if x1 > x0 && i64::from(b.connector) >= 1 && i64::from(b.connector) <= rows {
                    rect class=(format!("block {}", b.class)) x=(LEFT + x0) y=((i64::from(b.connector) - 1) * ROW + 4) width=(x1 - x0) height=(ROW - 8) {
                        title { (b.label) }
                    }
                }
            }
            @let now = OffsetDateTime::now_utc();
            @if now > day && now < day + time::Duration::DAY {
                line.now x1=(LEFT + minute(now)) x2=(LEFT + minute(now)) y1="0" y2=(rows * ROW) {}
            }
        }
    }
}

/// The fleet's kW over the samples kept (oldest left), scaled to the largest.
pub fn load_chart(samples: &[Sample]) -> Markup {
    let (w, h) = (600.0_f64, 160.0_f64);
    let max = samples.iter().map(|s| s.kw).fold(0.0_f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max * 1.1 };
    // Placed by age on a one-hour axis, so a young server's few samples sit at the right.
    let now = OffsetDateTime::now_utc();
    let points: Vec<String> = samples
        .iter()
        .map(|s| {
            let age = (now - s.at).as_seconds_f64().clamp(0.0, 3600.0);
            let x = 40.0 + (1.0 - age / 3600.0) * (w - 50.0);
            let y = 10.0 + (1.0 - s.kw / top) * (h - 30.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let last = samples.last().map_or(0.0, |s| s.kw);
    let caption = format!("Fleet load now {last:.1} kW; peak {max:.1} kW over the last hour");
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(caption) {
            title { (caption) }
            line.axis x1="40" y1=(h - 20.0) x2=(w - 10.0) y2=(h - 20.0) {}
            line.axis x1="40" y1="10" x2="40" y2=(h - 20.0) {}
            text.hour x="36" y="16" text-anchor="end" { (format!("{top:.0}")) }
            text.hour x="36" y=(h - 20.0) text-anchor="end" { "0" }
            text.hour x="40" y=(h - 4.0) { "−1 h" }
            text.hour x=(w - 10.0) y=(h - 4.0) text-anchor="end" { "now (kW)" }
            @if points.len() >= 2 {
                polyline.load points=(points.join(" ")) {}
            } @else {
                text.hour x=(w / 2.0) y=(h / 2.0) text-anchor="middle" { "collecting samples…" }
            }
        }
    }
}
