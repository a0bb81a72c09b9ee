//! `hearth-agent config actions` against the real Moonraker: a table for each macro of the
//! printer's Klipper that is not an action yet, which pasted after the printer's lines is a
//! configuration that checks.

use hearth_agent::AgentConfig;
use hearth_agent::config::{ActionConfig, GcodeLines};
use hearth_drivers::DriverConfig;

use crate::peers::Moonraker;
use crate::support::printer_config;

#[tokio::test]
async fn each_macro_not_run_yet_is_suggested_as_an_action() {
    let Some(moon) = Moonraker::start(5_000.0).await else {
        return;
    };
    let mut voron = printer_config("voron");
    voron.driver = DriverConfig::Moonraker(moon.config());
    voron.actions = vec![ActionConfig {
        id: "load".into(),
        label: None,
        gcode: GcodeLines::One("load_filament".into()),
        while_printing: false,
        admins_only: false,
        confirm: None,
    }];
    let config = AgentConfig {
        server: "http://127.0.0.1:1".into(),
        state_dir: "/nonexistent".into(),
        ca_cert: None,
        timing: Default::default(),
        printers: vec![voron, printer_config("sim")],
    };
    let said = hearth_agent::suggest::suggested_actions(&config).await;
    // CLEAN_NOZZLE only: LOAD_FILAMENT is run already, PAUSE and RESUME are Hearth's own to
    // run, `_HOME_IF_NEEDED` is a helper. Its parameters are named, with how to set them.
    assert_eq!(
        said,
        "# voron: after its [[printer]] lines\n\
         # CLEAN_NOZZLE reads TEMP (default 170), X: to set them, gcode = \"CLEAN_NOZZLE TEMP=170 X=...\"\n\
         [[printer.action]]\nid = \"clean-nozzle\"\nlabel = \"Clean nozzle\"\ngcode = \"CLEAN_NOZZLE\"\n\n\
         # sim: its driver lists no macros\n\n"
    );
    let pasted = format!(
        "server = \"http://x\"\nstate_dir = \"/x\"\n[[printer]]\nname = \"voron\"\n\
         kind = \"simulated\"\n{said}"
    );
    let (parsed, unknown) = AgentConfig::parse(&pasted).unwrap();
    assert!(unknown.is_empty());
    assert_eq!(parsed.printers[0].actions[0].id, "clean-nozzle");
}
