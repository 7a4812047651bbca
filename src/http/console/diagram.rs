//! A call's timeline laid out as a sequence diagram: one lane per device,
//! one for the controller and one for the RTC service; every request,
//! answer, event and RTC report an arrow with its time. Drawn as inline SVG
//! by the call page's template.

use crate::store::TimelineEntry;

const LANE_GAP: i64 = 190;
const LEFT: i64 = 110;
const TOP: i64 = 64;
const ROW: i64 = 36;

/// A vertical lane.
pub struct Lane {
    /// Centre x.
    pub x: i64,
    /// Title (a Device ID, "controller", "RTC service").
    pub label: String,
    /// Full name, for the tooltip.
    pub title: String,
}

/// One arrow.
pub struct Arrow {
    /// Baseline y.
    pub y: i64,
    /// From x.
    pub x1: i64,
    /// To x.
    pub x2: i64,
    /// Message type.
    pub label: String,
    /// Seconds since the first message, `+1.234 s`.
    pub time: String,
    /// A report (dashed) rather than a message.
    pub dashed: bool,
    /// Where the label starts.
    pub label_x: i64,
}

/// The laid-out diagram.
pub struct Diagram {
    /// SVG width.
    pub width: i64,
    /// SVG height.
    pub height: i64,
    /// Lanes, left to right.
    pub lanes: Vec<Lane>,
    /// Arrows, top to bottom.
    pub arrows: Vec<Arrow>,
    /// Where the lane lines end.
    pub bottom: i64,
}

fn device_label(client_id: &str) -> String {
    client_id
        .split_once("@@@")
        .map(|(g, d)| format!("{d} ({g})"))
        .unwrap_or_else(|| client_id.to_string())
}

/// Lays out `entries` (in order).
pub fn layout(entries: &[TimelineEntry]) -> Diagram {
    let mut devices: Vec<&str> = Vec::new();
    for e in entries {
        if !devices.contains(&e.client_id.as_str()) {
            devices.push(&e.client_id);
        }
    }
    let x_of = |i: usize| LEFT + i as i64 * LANE_GAP;
    let mut lanes: Vec<Lane> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| Lane {
            x: x_of(i),
            label: device_label(d),
            title: d.to_string(),
        })
        .collect();
    let ctl = x_of(devices.len());
    let rtc = x_of(devices.len() + 1);
    for (x, name) in [(ctl, "controller"), (rtc, "RTC service")] {
        lanes.push(Lane {
            x,
            label: name.into(),
            title: name.into(),
        });
    }
    let t0 = entries.first().map(|e| e.at).unwrap_or_default();
    let mut arrows = Vec::new();
    let mut y = TOP + 20;
    for e in entries {
        let dev = x_of(devices.iter().position(|d| *d == e.client_id).unwrap_or(0));
        let time = format!("+{:.3} s", (e.at - t0) as f64 / 1000.0);
        let hops: Vec<(i64, i64, bool)> = match e.direction.as_str() {
            "in" => vec![(dev, ctl, false)],
            "out" => vec![(ctl, dev, false)],
            _ => vec![(dev, rtc, false), (rtc, ctl, true)],
        };
        for (x1, x2, dashed) in hops {
            arrows.push(Arrow {
                y,
                x1,
                x2,
                label: e.kind.clone(),
                time: time.clone(),
                dashed,
                label_x: x1.min(x2) + 8,
            });
            y += ROW;
        }
    }
    Diagram {
        width: rtc + LEFT,
        height: y + 10,
        lanes,
        arrows,
        bottom: y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &str, who: &str, kind: &str, at: i64) -> TimelineEntry {
        TimelineEntry {
            at,
            direction: dir.into(),
            client_id: who.into(),
            kind: kind.into(),
            message: serde_json::Value::Null,
        }
    }

    #[test]
    fn devices_then_controller_then_rtc_and_arrows_point_the_right_way() {
        let d = layout(&[
            entry("in", "GID_demo@@@alice", "call.start", 1000),
            entry("out", "GID_web@@@bob", "call.invite", 1250),
            entry("rtc", "GID_demo@@@alice", "rtc.joined", 1300),
        ]);
        let names: Vec<&str> = d.lanes.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            names,
            [
                "alice (GID_demo)",
                "bob (GID_web)",
                "controller",
                "RTC service"
            ]
        );
        let (alice, bob, ctl, rtc) = (d.lanes[0].x, d.lanes[1].x, d.lanes[2].x, d.lanes[3].x);
        let a = &d.arrows;
        assert_eq!(a.len(), 4, "an RTC report is two hops");
        assert_eq!((a[0].x1, a[0].x2), (alice, ctl));
        assert_eq!(
            (a[1].x1, a[1].x2, a[1].time.as_str()),
            (ctl, bob, "+0.250 s")
        );
        assert_eq!((a[2].x1, a[2].x2, a[2].dashed), (alice, rtc, false));
        assert_eq!((a[3].x1, a[3].x2, a[3].dashed), (rtc, ctl, true));
        assert!(a.windows(2).all(|w| w[0].y < w[1].y));
    }
}
