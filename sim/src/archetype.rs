//! Device archetypes and their days: when a machine of each kind is off, in use, idle
//! or asleep on a given local day. Pure: a day's plan depends only on the device's
//! seed, the date, and the state the previous day ended in.
//!
//! What the plans model (and what they do not):
//! - **office desktop**: Monday–Friday, arrives 07:30–09:15, works in 20–60 min blocks
//!   with idle stretches (meetings, away), stays on but idle over lunch, leaves
//!   16:30–18:45; most are shut down at night, some are left on (a per-device habit:
//!   5 %, 20 % or always), and those left on stay on over the weekend;
//! - **laptop**: same hours, sleeps in meetings and over lunch, goes home asleep (60 %)
//!   or shut down; Fridays mostly shut down; more days away (remote work);
//! - **thin client**: desktop hours, almost always shut down at night;
//! - **kiosk**: every day 07:00–21:00, mostly idle with bursts of use;
//! - **server**: 24/7, busy share following a weekday load curve.
//!
//! Every machine on at "patch night" (03:00–04:00 on the Wednesday after the second
//! Tuesday of the month) reboots: boot sessions never last more than about five weeks,
//! which is what lets the `timeline` module rebuild any period from a bounded look-back.
//! Public holidays and leave periods are not modelled (a random 10–25 % of workdays
//! away stands in for them).

use jiff::civil::{Date, Weekday};
use veille_proto::v1::{ActivityRule, ChassisClass};

use crate::rng::Rng;

/// The power state of a device over a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Power {
    Off,
    Active,
    Idle,
    Sleep,
}

impl Power {
    pub fn is_on(self) -> bool {
        self != Power::Off
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Archetype {
    Desktop,
    Laptop,
    ThinClient,
    Kiosk,
    Server,
}

/// Share of each archetype in a typical public body's fleet (per thousand).
pub const MIX: [(Archetype, u32); 5] = [
    (Archetype::Desktop, 560),
    (Archetype::Laptop, 280),
    (Archetype::ThinClient, 100),
    (Archetype::Kiosk, 30),
    (Archetype::Server, 30),
];

impl Archetype {
    pub const ALL: [Archetype; 5] = [
        Archetype::Desktop,
        Archetype::Laptop,
        Archetype::ThinClient,
        Archetype::Kiosk,
        Archetype::Server,
    ];

    /// Draws an archetype according to [`MIX`].
    pub fn draw(rng: &mut Rng) -> Self {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut x = rng.range(0, total);
        for (a, w) in MIX {
            if x < w {
                return a;
            }
            x -= w;
        }
        Archetype::Desktop
    }

    pub fn name(self) -> &'static str {
        match self {
            Archetype::Desktop => "desktop",
            Archetype::Laptop => "laptop",
            Archetype::ThinClient => "thin-client",
            Archetype::Kiosk => "kiosk",
            Archetype::Server => "server",
        }
    }

    pub fn chassis(self) -> ChassisClass {
        match self {
            Archetype::Desktop => ChassisClass::Desktop,
            Archetype::Laptop => ChassisClass::Laptop,
            Archetype::ThinClient => ChassisClass::ThinClient,
            Archetype::Kiosk => ChassisClass::AllInOne,
            Archetype::Server => ChassisClass::Server,
        }
    }

    /// The SMBIOS chassis type code such a machine's firmware reports (DMTF DSP0134):
    /// OptiPlex-like desktops and HP thin clients say 3 (Desktop), ThinkPads 10
    /// (Notebook), all-in-ones 13, rack servers 23.
    pub fn chassis_code(self) -> u8 {
        match self {
            Archetype::Desktop | Archetype::ThinClient => 3,
            Archetype::Laptop => 10,
            Archetype::Kiosk => 13,
            Archetype::Server => 23,
        }
    }

    /// How the agent of such a machine tells active from idle: user input where a user
    /// session exists, CPU load on kiosks and servers.
    pub fn activity_rule(self) -> ActivityRule {
        match self {
            Archetype::Kiosk | Archetype::Server => ActivityRule::CpuBusy,
            _ => ActivityRule::UserInput,
        }
    }

    /// Mean CPU utilisation while active and while idle.
    pub fn cpu_util(self) -> (f64, f64) {
        match self {
            Archetype::Desktop => (0.32, 0.03),
            Archetype::Laptop => (0.28, 0.02),
            Archetype::ThinClient => (0.15, 0.02),
            Archetype::Kiosk => (0.45, 0.04),
            Archetype::Server => (0.62, 0.06),
        }
    }
}

/// Per-device habits, drawn once from the device's seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Habits {
    /// Probability that the machine is left on (desktop) or asleep (laptop) at night.
    pub left_on: f64,
    /// Probability of a workday away (leave, remote work, sick).
    pub away: f64,
}

impl Habits {
    pub fn draw(archetype: Archetype, rng: &mut Rng) -> Self {
        let left_on = match archetype {
            Archetype::Desktop => match rng.range(0, 100) {
                0..70 => 0.05,
                70..90 => 0.20,
                _ => 1.0,
            },
            Archetype::Laptop => 0.6,
            Archetype::ThinClient => 0.03,
            Archetype::Kiosk | Archetype::Server => 0.0,
        };
        let away = match archetype {
            Archetype::Laptop => 0.25,
            Archetype::Desktop | Archetype::ThinClient => 0.10,
            Archetype::Kiosk | Archetype::Server => 0.0,
        };
        Self { left_on, away }
    }
}

/// One local day: `(minute of the day, state from that minute)`, the first at minute 0,
/// minutes strictly increasing and below 1440.
pub type DayPlan = Vec<(u32, Power)>;

const DAY_MIN: u32 = 24 * 60;

/// Whether `date` is patch night's day (the Wednesday after the second Tuesday).
pub fn is_patch_day(date: Date) -> bool {
    date.nth_weekday_of_month(2, Weekday::Tuesday)
        .ok()
        .and_then(|t| t.tomorrow().ok())
        == Some(date)
}

pub fn is_workday(date: Date) -> bool {
    !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

struct Plan(DayPlan);

impl Plan {
    fn new(state: Power) -> Self {
        Plan(vec![(0, state)])
    }
    /// State from `minute` on (later calls must not go back in time).
    fn at(&mut self, minute: u32, state: Power) {
        let minute = minute.min(DAY_MIN - 1);
        let last = self.0.last().copied().unwrap_or((0, Power::Off));
        if minute <= last.0 {
            if let Some(l) = self.0.last_mut() {
                l.1 = state;
            }
        } else if last.1 != state {
            self.0.push((minute, state));
        }
    }
    /// Blocks of work between `from` and `to`: mostly active, sometimes idle or (on a
    /// laptop) asleep.
    fn work(&mut self, rng: &mut Rng, from: u32, to: u32, away: Power, p_away: f64) {
        let mut t = from;
        while t < to {
            let len = rng.range(20, 61);
            let state = if rng.chance(p_away) {
                away
            } else {
                Power::Active
            };
            self.at(t, state);
            t += len;
        }
    }
}

/// The plan of `date` for a device of `archetype` whose previous day ended in
/// `carried`; returns the plan and the state the day ends in.
pub fn day_plan(
    archetype: Archetype,
    habits: Habits,
    rng: &mut Rng,
    date: Date,
    carried: Power,
) -> (DayPlan, Power) {
    let mut p = Plan::new(carried);
    if is_patch_day(date) && carried.is_on() {
        let at = 180 + rng.range(0, 60);
        p.at(at, Power::Off);
        p.at(at + 3, Power::Idle);
        if carried == Power::Sleep {
            p.at(at + 23, Power::Sleep);
        }
    }
    match archetype {
        Archetype::Server => {
            let weekday = is_workday(date);
            for hour in 0..24 {
                let base = if !weekday {
                    0.10
                } else if (8..19).contains(&hour) {
                    0.55
                } else if (1..5).contains(&hour) {
                    0.35 // backups
                } else {
                    0.15
                };
                let share = (base + (rng.unit() - 0.5) * 0.2).clamp(0.02, 0.95);
                let active = ((share * 60.0) as u32).max(1);
                let h = hour * 60;
                // Hours already covered by a patch-night reboot keep their plan.
                if h >= p.0.last().map(|x| x.0).unwrap_or(0) {
                    p.at(h, Power::Active);
                    p.at(h + active, Power::Idle);
                }
            }
            (p.0, Power::Idle)
        }
        Archetype::Kiosk => {
            let on = 7 * 60 + rng.range(0, 10);
            let off = 21 * 60 + rng.range(0, 15);
            p.at(on, Power::Idle);
            for hour in 7..21 {
                let h = (hour * 60).max(on);
                let busy = rng.range(6, 25);
                p.at(h, Power::Active);
                p.at(h + busy, Power::Idle);
            }
            p.at(off, Power::Off);
            (p.0, Power::Off)
        }
        Archetype::Desktop | Archetype::ThinClient | Archetype::Laptop => {
            let laptop = archetype == Archetype::Laptop;
            if !is_workday(date) || rng.chance(habits.away) {
                return (p.0, carried);
            }
            let arrive = rng.range(7 * 60 + 30, 9 * 60 + 15);
            let lunch = rng.range(11 * 60 + 45, 12 * 60 + 30);
            let lunch_end = lunch + rng.range(40, 80);
            let leave = rng.range(16 * 60 + 30, 18 * 60 + 45);
            let away = if laptop { Power::Sleep } else { Power::Idle };
            p.work(rng, arrive, lunch, away, 0.2);
            p.at(lunch, away);
            p.work(rng, lunch_end, leave, away, 0.25);
            let friday = date.weekday() == Weekday::Friday;
            let stays = if laptop && friday {
                rng.chance(0.3)
            } else {
                rng.chance(habits.left_on)
            };
            let end = if stays { away } else { Power::Off };
            p.at(leave, end);
            (p.0, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn plan(a: Archetype, d: Date, carried: Power, seed: u64) -> (DayPlan, Power) {
        let mut rng = Rng::new(&[seed]);
        let habits = Habits::draw(a, &mut rng);
        day_plan(a, habits, &mut rng, d, carried)
    }

    fn minutes(plan: &DayPlan, state: Power) -> u32 {
        let mut total = 0;
        for (i, (m, s)) in plan.iter().enumerate() {
            let end = plan.get(i + 1).map(|x| x.0).unwrap_or(DAY_MIN);
            if *s == state {
                total += end - m;
            }
        }
        total
    }

    #[test]
    fn plans_are_well_formed_for_every_archetype() {
        for a in Archetype::ALL {
            for seed in 0..50 {
                for carried in [Power::Off, Power::Idle, Power::Sleep] {
                    let (p, _) = plan(a, date(2026, 11, 18), carried, seed);
                    assert_eq!(p[0].0, 0);
                    assert!(p.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1));
                    assert!(p.last().unwrap().0 < DAY_MIN);
                }
            }
        }
    }

    #[test]
    fn weekends_leave_office_machines_as_they_were() {
        let sat = date(2026, 11, 21);
        for seed in 0..20 {
            assert_eq!(
                plan(Archetype::Desktop, sat, Power::Off, seed),
                (vec![(0, Power::Off)], Power::Off)
            );
            assert_eq!(
                plan(Archetype::Laptop, sat, Power::Sleep, seed).1,
                Power::Sleep
            );
        }
    }

    #[test]
    fn office_machines_work_on_weekdays_and_laptops_sleep() {
        let tue = date(2026, 11, 24);
        let worked = (0..100)
            .filter(|s| {
                minutes(
                    &plan(Archetype::Desktop, tue, Power::Off, *s).0,
                    Power::Active,
                ) > 4 * 60
            })
            .count();
        assert!(worked > 80, "{worked} of 100 desktops worked");
        let slept = (0..100)
            .filter(|s| {
                minutes(
                    &plan(Archetype::Laptop, tue, Power::Off, *s).0,
                    Power::Sleep,
                ) > 30
            })
            .count();
        assert!(slept > 60, "{slept} of 100 laptops slept");
        // A desktop's lunch is idle, never off.
        for s in 0..20 {
            let (p, _) = plan(Archetype::Desktop, tue, Power::Off, s);
            let on_at_noon_thirty = p.iter().rev().find(|x| x.0 <= 12 * 60 + 35).unwrap().1;
            if minutes(&p, Power::Active) > 0 {
                assert!(on_at_noon_thirty.is_on(), "{p:?}");
            }
        }
    }

    #[test]
    fn servers_never_stop_except_at_patch_night() {
        for d in [date(2026, 11, 21), date(2026, 11, 24)] {
            for s in 0..20 {
                let (p, end) = plan(Archetype::Server, d, Power::Idle, s);
                assert_eq!(minutes(&p, Power::Off), 0);
                assert!(minutes(&p, Power::Active) > 0);
                assert_eq!(end, Power::Idle);
            }
        }
        let patch = date(2026, 11, 11);
        assert!(is_patch_day(patch));
        assert!(!is_patch_day(date(2026, 11, 10)));
        let (p, _) = plan(Archetype::Server, patch, Power::Idle, 3);
        assert_eq!(minutes(&p, Power::Off), 3, "a reboot: {p:?}");
    }
}
