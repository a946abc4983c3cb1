//! The Windows console warning's question (pure, tested on Linux): while the policy
//! leaves a postpone, the message box in the console session asks "Postpone?" with
//! Yes / No buttons and waits (until the deadline) for the answer; "Yes" goes to
//! [`crate::policy_state::request_postpone`], the path `veille-agent postpone` takes, so the
//! same rule applies. Without a postpone left it is the plain OK box.

/// `IDYES`: the message box's "Yes" (checked against windows-sys in
/// `windows::enforcer`).
pub const IDYES: i32 = 6;

/// What the console box shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsolePrompt {
    /// The warning, and the question when one is asked.
    pub text: String,
    /// Yes / No buttons, waiting for the answer (else OK, not waiting).
    pub ask_postpone: bool,
}

/// The box for `message` when a postpone is `allowed` or not.
pub fn prompt(message: &str, allowed: bool) -> ConsolePrompt {
    if allowed {
        ConsolePrompt {
            text: format!(
                "{message}\n\nPostpone the shutdown?\n\
                 Yes: postpone it. No, or no answer: it happens at the time above."
            ),
            ask_postpone: true,
        }
    } else {
        ConsolePrompt {
            text: message.to_owned(),
            ask_postpone: false,
        }
    }
}

/// Whether the box's answer (`WTSSendMessageW`'s response) asks to postpone: only
/// "Yes"; "No", the timeout (`IDTIMEOUT`) and anything else leave the deadline.
pub fn postpones(response: i32) -> bool {
    response == IDYES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_asks_only_while_a_postpone_is_left() {
        let p = prompt("This computer will shut down at 20:05.", true);
        assert!(p.ask_postpone);
        assert!(
            p.text
                .starts_with("This computer will shut down at 20:05.\n\nPostpone")
        );
        assert_eq!(
            prompt("This computer will shut down at 20:05.", false),
            ConsolePrompt {
                text: "This computer will shut down at 20:05.".into(),
                ask_postpone: false
            }
        );
    }

    #[test]
    fn only_yes_postpones() {
        assert!(postpones(6));
        // IDNO, IDTIMEOUT, IDOK, IDASYNC.
        for other in [7, 32000, 1, 32001] {
            assert!(!postpones(other), "{other}");
        }
    }
}
