//! `state.json` as the agent reads it at start (`StateStore::open` parses it with
//! serde_json), then the next seq it derives from it: a damaged or hand-edited file
//! must give an error or a state, and seqs must never go backwards or overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_agent::state::{AgentState, next_seq};

/// A fixed clock (2026-11-01), so a run is reproducible.
const NOW_MS: i64 = 1_793_491_200_000;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = serde_json::from_slice::<AgentState>(data) else {
        return;
    };
    for spool_max in [None, Some(0), Some(u64::MAX), Some(state.last_seq)] {
        let seq = next_seq(&state, spool_max, NOW_MS);
        if let Some(m) = spool_max {
            assert!(
                seq > m || m == u64::MAX,
                "seq {seq} not above the spool's {m}"
            );
        }
    }
    let _ = serde_json::to_vec(&state);
});
