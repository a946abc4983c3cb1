//! A closure calendar (an ICS file named in a policy's `closure_calendars`, or uploaded
//! on the web page): events or an error naming a line of the file. An event's days run
//! forward, never longer than the documented limit, so a calendar cannot switch a site
//! off for a decade; and they fold into a policy file's closure days.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_domain::policy::ics::{IcsError, MAX_EVENT_DAYS, parse_ics};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines as the parser counts them (physical lines, before unfolding).
    let lines = text.split('\n').count();
    match parse_ics(text) {
        Ok(events) => {
            for e in &events {
                assert!(e.first <= e.last, "{e:?}");
                let days = e.days().count();
                assert!(
                    days >= 1 && days as i64 <= MAX_EVENT_DAYS,
                    "{days} days: {e:?}"
                );
            }
        }
        Err(IcsError::Event { line, .. }) => {
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
        Err(IcsError::NotCalendar) => {}
    }
});
