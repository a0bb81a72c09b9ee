//! `hearth-agent config actions`: `[[printer.action]]` tables to paste into the configuration, one
//! for each G-code macro a printer's firmware defines (Klipper's `[gcode_macro NAME]`) that the
//! configuration does not run yet. Nothing is offered to members until an admin pastes it: the
//! configuration stays the one list of what the server may ask for.

use std::fmt::Write as _;

use hearth_drivers::{DriverError, Macro};

use crate::config::{AgentConfig, PrinterConfig};

/// Macros never suggested: those a job's own G-code or Hearth's pause, resume and cancel run.
const NOT_ACTIONS: [&str; 8] = [
    "PAUSE",
    "RESUME",
    "CANCEL_PRINT",
    "PRINT_START",
    "START_PRINT",
    "PRINT_END",
    "END_PRINT",
    "SDCARD_PRINT_FILE",
];

/// The suggestions for every printer of `config`, as TOML with a comment per printer saying
/// where its tables go (after its `[[printer]]` lines) or why it has none.
pub async fn suggested_actions(config: &AgentConfig) -> String {
    let mut out = String::new();
    for p in &config.printers {
        let listed = match hearth_drivers::config::build(&p.driver) {
            Ok(driver) => driver.macros().await,
            Err(e) => Err(e),
        };
        let _ = match listed {
            Err(DriverError::Unsupported { .. }) => {
                writeln!(out, "# {}: its driver lists no macros\n", p.name)
            }
            Err(e) => writeln!(out, "# {}: could not list its macros: {e}\n", p.name),
            Ok(macros) => {
                out.push_str(&for_printer(p, &macros));
                Ok(())
            }
        };
    }
    out
}

/// The tables for `macros` of printer `p` that are not actions of its yet, each after a comment
/// naming the parameters the macro reads, when it reads any.
fn for_printer(p: &PrinterConfig, macros: &[Macro]) -> String {
    let run_already = |m: &str| {
        p.actions.iter().any(|a| {
            a.gcode.lines().iter().any(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|c| c.eq_ignore_ascii_case(m))
            })
        })
    };
    let new: Vec<&Macro> = macros
        .iter()
        .filter(|m| {
            !m.name.starts_with('_') && !NOT_ACTIONS.contains(&m.name.to_ascii_uppercase().as_str())
        })
        .filter(|m| !run_already(&m.name))
        .collect();
    if new.is_empty() {
        return format!(
            "# {}: each of its macros is an action already, or not one for members\n\n",
            p.name
        );
    }
    let mut taken: Vec<String> = p.actions.iter().map(|a| a.id.clone()).collect();
    let mut out = format!("# {}: after its [[printer]] lines\n", p.name);
    for m in new {
        let id = unique_id(&action_id(&m.name), &taken);
        taken.push(id.clone());
        if !m.params.is_empty() {
            let _ = writeln!(out, "{}", params_comment(m));
        }
        let _ = writeln!(
            out,
            "[[printer.action]]\nid = \"{id}\"\nlabel = \"{}\"\ngcode = \"{}\"\n",
            label(&m.name),
            m.name
        );
    }
    out
}

/// `# LOAD_FILAMENT reads TEMP (default 220), LENGTH: ...`, saying how to set them.
fn params_comment(m: &Macro) -> String {
    let listed: Vec<String> = m
        .params
        .iter()
        .map(|(name, default)| match default {
            Some(d) => format!("{name} (default {d})"),
            None => name.clone(),
        })
        .collect();
    let example: Vec<String> = m
        .params
        .iter()
        .map(|(name, default)| format!("{name}={}", default.as_deref().unwrap_or("...")))
        .collect();
    format!(
        "# {} reads {}: to set them, gcode = \"{} {}\"",
        m.name,
        listed.join(", "),
        m.name,
        example.join(" ")
    )
}

/// `LOAD_FILAMENT` → `load-filament`: `a-z`, `0-9` and `-`, at most 32.
fn action_id(name: &str) -> String {
    let id: String = name
        .chars()
        .filter_map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => Some(c),
            '_' | '-' | ' ' | '.' => Some('-'),
            _ => None,
        })
        .collect();
    let id = id.trim_matches('-');
    let id: String = id.chars().take(32).collect();
    match id.trim_end_matches('-') {
        "" => "macro".to_owned(),
        id => id.to_owned(),
    }
}

/// `id`, or `id-2`, `id-3`, ... when taken (or one of a driver's own ids).
fn unique_id(id: &str, taken: &[String]) -> String {
    let free = |c: &str| !taken.iter().any(|t| t == c) && !hearth_drivers::is_own_action_id(c);
    if free(id) {
        return id.to_owned();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = 32 - suffix.len();
            format!("{}{suffix}", &id[..id.len().min(keep)])
        })
        .find(|c| free(c))
        .unwrap_or_else(|| id.to_owned())
}

/// `LOAD_FILAMENT` → `Load filament`.
fn label(name: &str) -> String {
    let words = name.replace('_', " ").to_lowercase();
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_macro_becomes_an_id_and_a_label_members_can_read() {
        assert_eq!(action_id("LOAD_FILAMENT"), "load-filament");
        assert_eq!(action_id("_x__Y.z"), "x--y-z");
        assert_eq!(action_id("ÉÉ"), "macro");
        assert_eq!(action_id(&"A".repeat(40)).len(), 32);
        assert_eq!(label("CLEAN_NOZZLE"), "Clean nozzle");
        let taken = vec!["home".to_owned(), "home-2".to_owned()];
        assert_eq!(unique_id("home", &taken), "home-3");
        assert_eq!(
            unique_id("light-on", &[]),
            "light-on-2",
            "a driver's own id"
        );
        let long = "a".repeat(32);
        assert_eq!(unique_id(&long, std::slice::from_ref(&long)).len(), 32);
    }
}
