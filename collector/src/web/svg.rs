//! Inline SVG charts: no script, no library, readable by screen readers through
//! `<title>`/`<desc>` and each bar's own `<title>`; the page adds a table with the same
//! numbers. Pure: geometry from plain values.

use super::html::esc;
use super::i18n::{Key, Lang};

/// One bar of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

pub const BAR_W: f64 = 720.0;
pub const BAR_H: f64 = 260.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 16.0;

/// Height in px of a bar of `value` when the largest is `max`: proportional, the
/// largest filling the plot, negatives and non-finite values drawn as 0.
pub fn bar_height(value: f64, max: f64, plot_h: f64) -> f64 {
    if !(value.is_finite() && max.is_finite()) || max <= 0.0 || value <= 0.0 {
        return 0.0;
    }
    (value / max).min(1.0) * plot_h
}

/// A vertical bar chart of `bars` with `unit` (e.g. kWh). `id` names the chart's
/// `<title>` for `aria-labelledby`.
pub fn bar_chart(lang: Lang, id: &str, title: &str, unit: &str, bars: &[Bar]) -> String {
    let plot_h = BAR_H - TOP - BOTTOM;
    let plot_w = BAR_W - LEFT - 8.0;
    let max = bars
        .iter()
        .map(|b| b.value)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    let w = (slot * 0.7).max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {BAR_W} {BAR_H}\" width=\"{BAR_W}\" height=\"{BAR_H}\" role=\"img\" aria-labelledby=\"{id}-t\">\n<title id=\"{id}-t\">{}</title>\n",
        esc(title)
    );
    let base = BAR_H - BOTTOM;
    // Axis and the maximum's gridline with its value.
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#555\"/>\n",
        BAR_W - 8.0
    ));
    if max > 0.0 {
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{TOP}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\" fill=\"#333\">{} {}</text>\n",
            BAR_W - 8.0,
            LEFT - 4.0,
            TOP + 4.0,
            esc(&lang.num(max, 1)),
            esc(unit)
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\" fill=\"#333\">0</text>\n",
        LEFT - 4.0,
        base
    ));
    for (i, b) in bars.iter().enumerate() {
        let h = bar_height(b.value, max, plot_h);
        let x = LEFT + slot * i as f64 + (slot - w) / 2.0;
        let value = format!("{} {}", lang.num(b.value, 1), unit);
        s.push_str(&format!(
            "<g><title>{}: {}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#0b4f9c\"/></g>\n",
            esc(&b.label),
            esc(&value),
            base - h
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333\">{}</text>\n",
            x + w / 2.0,
            BAR_H - 10.0,
            esc(&b.label)
        ));
    }
    s.push_str("</svg>");
    s
}

/// A device's state: the strip chart's colours and legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Idle,
    Sleep,
    Off,
    Unknown,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Active,
        State::Idle,
        State::Sleep,
        State::Off,
        State::Unknown,
    ];

    /// Colours distinguishable with the common colour-vision deficiencies (a
    /// ColorBrewer diverging scheme), unknown a light grey.
    pub fn colour(self) -> &'static str {
        match self {
            State::Active => "#b35806",
            State::Idle => "#f1a340",
            State::Sleep => "#998ec3",
            State::Off => "#542788",
            State::Unknown => "#dddddd",
        }
    }

    /// Stable name, for `data-state` (tools and tests read it whatever the language).
    pub fn code(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Idle => "idle",
            State::Sleep => "sleep",
            State::Off => "off",
            State::Unknown => "unknown",
        }
    }

    pub fn key(self) -> Key {
        match self {
            State::Active => Key::Active,
            State::Idle => Key::Idle,
            State::Sleep => Key::Sleep,
            State::Off => Key::Off,
            State::Unknown => Key::Unknown,
        }
    }
}

/// One hour of a device's timeline: milliseconds in each state, in
/// [`State::ALL`] order. They should sum to an hour; the rest is drawn as unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct HourStates {
    pub label: String,
    pub ms: [f64; 5],
}

pub const STRIP_H: f64 = 120.0;
const STRIP_TOP: f64 = 8.0;
const STRIP_BOTTOM: f64 = 24.0;

/// Segment heights of one hour column, bottom to top in [`State::ALL`] order, for a
/// plot `plot_h` high: each state's share of the hour, unknown taking what is missing.
pub fn column_heights(ms: &[f64; 5], plot_h: f64) -> [f64; 5] {
    const HOUR: f64 = 3_600_000.0;
    let mut out = [0.0; 5];
    let mut used = 0.0;
    for (i, v) in ms.iter().enumerate().take(4) {
        let share = (v.max(0.0) / HOUR).min(1.0 - used);
        out[i] = share * plot_h;
        used += share;
    }
    out[4] = (1.0 - used).max(0.0) * plot_h;
    out
}

/// The strip chart: one column per hour, stacked by state; `ticks` are (hour index,
/// label) marks along the bottom (e.g. each local midnight).
pub fn timeline(
    lang: Lang,
    id: &str,
    title: &str,
    hours: &[HourStates],
    ticks: &[(usize, String)],
) -> String {
    let n = hours.len().max(1) as f64;
    let width = 840.0;
    let col = width / n;
    let plot_h = STRIP_H - STRIP_TOP - STRIP_BOTTOM;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {STRIP_H}\" width=\"{width}\" height=\"{STRIP_H}\" role=\"img\" aria-labelledby=\"{id}-t\" id=\"{id}\">\n<title id=\"{id}-t\">{}</title>\n",
        esc(title)
    );
    for (i, h) in hours.iter().enumerate() {
        let x = col * i as f64;
        let heights = column_heights(&h.ms, plot_h);
        let mut y = STRIP_TOP + plot_h;
        let mut tip = h.label.clone();
        for (state, ms) in State::ALL.iter().zip(h.ms) {
            if ms > 0.0 {
                tip.push_str(&format!(
                    ", {} {} min",
                    lang.t(state.key()),
                    lang.num(ms / 60_000.0, 0)
                ));
            }
        }
        s.push_str(&format!("<g><title>{}</title>", esc(&tip)));
        for (state, hgt) in State::ALL.iter().zip(heights) {
            if hgt <= 0.0 {
                continue;
            }
            y -= hgt;
            s.push_str(&format!(
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{col:.2}\" height=\"{hgt:.2}\" fill=\"{}\" data-state=\"{}\"/>",
                state.colour(),
                state.code()
            ));
        }
        s.push_str("</g>\n");
    }
    for (i, label) in ticks {
        let x = col * *i as f64;
        s.push_str(&format!(
            "<line x1=\"{x:.2}\" y1=\"{STRIP_TOP}\" x2=\"{x:.2}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{:.2}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{}</text>\n",
            STRIP_TOP + plot_h + 4.0,
            x + 2.0,
            STRIP_H - 8.0,
            esc(label)
        ));
    }
    s.push_str("</svg>");
    s
}

/// The legend of [`timeline`], as an HTML list.
pub fn legend(lang: Lang) -> String {
    let mut s = String::from("<ul class=\"legend\">");
    for st in State::ALL {
        s.push_str(&format!(
            "<li><span class=\"state-{}\"></span>{}</li>",
            st.code(),
            lang.t(st.key())
        ));
    }
    s.push_str("</ul>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_and_the_largest_fills_the_plot() {
        assert_eq!(bar_height(50.0, 100.0, 200.0), 100.0);
        assert_eq!(bar_height(100.0, 100.0, 200.0), 200.0);
        assert_eq!(bar_height(-3.0, 100.0, 200.0), 0.0);
        assert_eq!(bar_height(3.0, 0.0, 200.0), 0.0);
        assert_eq!(bar_height(f64::NAN, 10.0, 200.0), 0.0);
    }

    #[test]
    fn the_bar_chart_is_labelled_and_escaped() {
        let svg = bar_chart(
            Lang::Fr,
            "trend",
            "Tendance <12>",
            "kWh",
            &[
                Bar {
                    label: "2026-10".into(),
                    value: 10.0,
                },
                Bar {
                    label: "2026-11".into(),
                    value: 1234.5,
                },
            ],
        );
        assert!(svg.contains("role=\"img\" aria-labelledby=\"trend-t\""));
        assert!(svg.contains("<title id=\"trend-t\">Tendance &lt;12&gt;</title>"));
        assert!(svg.contains("<title>2026-11: 1\u{202f}234,5 kWh</title>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        // The largest bar spans the whole plot height: 260 - 16 - 28.
        assert!(svg.contains("height=\"216.0\""), "{svg}");
    }

    #[test]
    fn a_column_stacks_each_state_by_its_share_of_the_hour() {
        let h = column_heights(&[1_800_000.0, 900_000.0, 0.0, 0.0, 0.0], 100.0);
        assert_eq!(h, [50.0, 25.0, 0.0, 0.0, 25.0]);
        // Over-full hours are capped, never taller than the plot.
        let h = column_heights(&[3_600_000.0, 3_600_000.0, 0.0, 0.0, 0.0], 100.0);
        assert_eq!(h, [100.0, 0.0, 0.0, 0.0, 0.0]);
        let h = column_heights(&[0.0; 5], 80.0);
        assert_eq!(h, [0.0, 0.0, 0.0, 0.0, 80.0]);
    }

    #[test]
    fn the_timeline_has_one_column_per_hour_and_its_ticks() {
        let hours: Vec<HourStates> = (0..3)
            .map(|i| HourStates {
                label: format!("h{i}"),
                ms: [3_600_000.0, 0.0, 0.0, 0.0, 0.0],
            })
            .collect();
        let svg = timeline(Lang::En, "tl", "Timeline", &hours, &[(1, "Mon".into())]);
        assert_eq!(svg.matches("data-state=\"active\"").count(), 3);
        assert!(svg.contains("<title>h0, active 60 min</title>"));
        assert!(svg.contains(">Mon</text>"));
        assert!(legend(Lang::Fr).contains("veille"));
    }
}
