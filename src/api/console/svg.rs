//! Server-drawn pictures: a day's or a week's timeline of bookings per connector, the fleet
//! load chart, the fleet's energy per day and a running transaction's energy. Plain SVG inside
//! the page (no script, no external file), with a text alternative beside each. Pure drawing: it
//! reads nothing but its arguments.

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
    /// The booking's id, shown to the operator (`data-booking`); `None` on the driver's page,
    /// where another customer's booking must not be told apart.
    pub booking: Option<i32>,
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
                    rect class=(format!("block {}", b.class)) data-booking=[b.booking] x=(LEFT + x0) y=((i64::from(b.connector) - 1) * ROW + 4) width=(x1 - x0) height=(ROW - 8) {
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

/// Pixels per day-row lane in the week view, and the width of its day labels.
const WEEK_LEFT: i64 = 92;
/// Two minutes per pixel: a day is 720 px wide.
const WEEK_DAY: i64 = MINUTES / 2;

/// Seven UTC days from `first` as rows (each with one thin lane per connector), hours marked;
/// a booking across midnight is drawn on both days. Each block carries `data-day`.
pub fn week(first: time::Date, connectors: u32, blocks: &[Block], caption: &str) -> Markup {
    let lanes = i64::from(connectors.clamp(1, 20));
    let lane = (24 / lanes).max(5);
    let row = lanes * lane + 8;
    let height = 7 * row + 20;
    let width = WEEK_LEFT + WEEK_DAY + 24;
    let now = OffsetDateTime::now_utc();
    let days: Vec<(i64, time::Date)> = (0..7)
        .scan(Some(first), |d, i| {
            let day = (*d)?;
            *d = day.next_day();
            Some((i, day))
        })
        .collect();
    html! {
        svg.timeline.week viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(caption) {
            title { (caption) }
            @for h in (0..=24).step_by(3) {
                line.tick x1=(WEEK_LEFT + h * 30) x2=(WEEK_LEFT + h * 30) y1="0" y2=(7 * row) {}
                text.hour x=(WEEK_LEFT + h * 30) y=(7 * row + 16) text-anchor="middle" { (format!("{h:02}")) }
            }
            @for (i, day) in &days {
                @let top = i * row;
                @let start = day.midnight().assume_utc();
                text.conn x="4" y=(top + row / 2 + 5) { (day_label(*day)) }
                @for c in 0..lanes {
                    rect.lane x=(WEEK_LEFT) y=(top + 4 + c * lane) width=(WEEK_DAY) height=(lane - 1) {}
                }
                @for b in blocks {
                    @let minute = |t: OffsetDateTime| (t - start).whole_minutes().clamp(0, MINUTES);
                    @let (x0, x1) = (minute(b.start), minute(b.end));
                    @if x1 > x0 && i64::from(b.connector) >= 1 && i64::from(b.connector) <= lanes {
                        rect class=(format!("block {}", b.class)) data-booking=[b.booking] data-day=(super::day_text(*day))
                            x=(WEEK_LEFT + x0 / 2) y=(top + 4 + (i64::from(b.connector) - 1) * lane)
                            width=(((x1 - x0) / 2).max(1)) height=(lane - 1) {
                            title { (day_label(*day)) ": " (b.label) }
                        }
                    }
                }
                @if now > start && now < start + time::Duration::DAY {
                    @let x = WEEK_LEFT + (now - start).whole_minutes().clamp(0, MINUTES) / 2;
                    line.now x1=(x) x2=(x) y1=(top) y2=(top + row) {}
                }
            }
        }
    }
}

/// `Mon 12-07`.
fn day_label(d: time::Date) -> String {
    let name = match d.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    format!("{name} {:02}-{:02}", u8::from(d.month()), d.day())
}

/// Energy (kWh) of one running transaction over time, from `(when, Wh since its start)`
/// points in time order, the first at its start. The line ends at the latest reading.
pub fn energy_chart(points: &[(OffsetDateTime, i64)], caption: &str) -> Markup {
    let (w, h) = (600.0_f64, 160.0_f64);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! {};
    };
    let span = (last.0 - first.0).as_seconds_f64().max(60.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(0) as f64 / 1000.0;
    let top = nice_top(max);
    let xy = |t: OffsetDateTime, wh: i64| {
        let x = 44.0 + (t - first.0).as_seconds_f64().clamp(0.0, span) / span * (w - 54.0);
        let y = 10.0 + (1.0 - (wh.max(0) as f64 / 1000.0) / top) * (h - 30.0);
        format!("{x:.1},{y:.1}")
    };
    let line: Vec<String> = points.iter().map(|&(t, wh)| xy(t, wh)).collect();
    let minutes = (last.0 - first.0).whole_minutes().max(0);
    html! {
        svg.chart.energy viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(caption) {
            title { (caption) }
            line.axis x1="44" y1=(h - 20.0) x2=(w - 10.0) y2=(h - 20.0) {}
            line.axis x1="44" y1="10" x2="44" y2=(h - 20.0) {}
            text.hour x="40" y="16" text-anchor="end" { (fmt_kwh(top)) }
            text.hour x="40" y=(h - 20.0) text-anchor="end" { "0" }
            text.hour x="44" y=(h - 4.0) { (super::hhmm(first.0)) " start" }
            text.hour x=(w - 10.0) y=(h - 4.0) text-anchor="end" { "+" (minutes) " min (kWh)" }
            @if line.len() >= 2 {
                polyline.load points=(line.join(" ")) {}
            }
            @for p in line.iter().skip(1) {
                @let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                circle.point cx=(x) cy=(y) r="3" {}
            }
        }
    }
}

/// Energy per UTC day as bars, oldest left; each bar carries `data-day` and `data-wh`.
pub fn day_bars(days: &[(time::Date, i64)], caption: &str) -> Markup {
    let (w, h) = (600.0_f64, 160.0_f64);
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(0) as f64 / 1000.0;
    let top = nice_top(max);
    let n = days.len().max(1) as f64;
    let slot = (w - 54.0) / n;
    html! {
        svg.chart.days viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(caption) {
            title { (caption) }
            line.axis x1="44" y1=(h - 20.0) x2=(w - 10.0) y2=(h - 20.0) {}
            line.axis x1="44" y1="10" x2="44" y2=(h - 20.0) {}
            text.hour x="40" y="16" text-anchor="end" { (fmt_kwh(top)) }
            text.hour x="40" y=(h - 20.0) text-anchor="end" { "0" }
            @for (i, (day, wh)) in days.iter().enumerate() {
                @let kwh = (*wh).max(0) as f64 / 1000.0;
                @let bar = kwh / top * (h - 30.0);
                @let x = 44.0 + i as f64 * slot;
                rect.bar data-day=(super::day_text(*day)) data-wh=(wh) x=(format!("{:.1}", x + slot * 0.15)) y=(format!("{:.1}", h - 20.0 - bar)) width=(format!("{:.1}", slot * 0.7)) height=(format!("{bar:.1}")) {
                    title { (super::day_text(*day)) ": " (super::kwh(*wh)) }
                }
                @if i % 2 == days.len() % 2 || i + 1 == days.len() {
                    text.hour x=(format!("{:.1}", x + slot / 2.0)) y=(h - 4.0) text-anchor="middle" { (format!("{:02}", day.day())) }
                }
            }
        }
    }
}

/// A round axis top at or above `max` kWh (1, 2, 5 × 10ⁿ), never 0.
fn nice_top(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let mut step = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * step >= max {
            step *= m;
            return step;
        }
    }
    step * 10.0
}

fn fmt_kwh(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_and_above_the_data() {
        assert_eq!(nice_top(0.0), 1.0);
        assert_eq!(nice_top(3.0), 5.0);
        assert_eq!(nice_top(12.0), 20.0);
        assert_eq!(nice_top(0.4), 0.5);
        assert_eq!(nice_top(100.0), 100.0);
        assert_eq!(nice_top(f64::NAN), 1.0);
    }

    #[test]
    fn a_week_draws_a_booking_across_midnight_on_both_days() {
        let first = time::macros::date!(2026 - 12 - 07);
        let block = Block {
            connector: 1,
            start: time::macros::datetime!(2026-12-08 23:00 UTC),
            end: time::macros::datetime!(2026-12-09 01:00 UTC),
            class: "booked".into(),
            label: "#5".into(),
            booking: Some(5),
        };
        let svg = week(first, 2, &[block], "week").into_string();
        assert!(svg.contains(r#"data-day="2026-12-08""#), "{svg}");
        assert!(svg.contains(r#"data-day="2026-12-09""#), "{svg}");
        assert_eq!(svg.matches("data-booking=\"5\"").count(), 2);
        assert!(svg.contains("Mon 12-07") && svg.contains("Sun 12-13"));
    }
}
