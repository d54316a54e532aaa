//! `storenode lane`: the store's lanes as the running lane sees them, and retiring a lane
//! that is gone for good so its peers stop re-offering changes to it (docs/sync.md,
//! "Retiring a lane"). Talks to the running node over its control socket.

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;

use super::ops::Common;
use super::target;
use crate::control::client::Client;
use crate::control::protocol::Command;
use crate::sync::node::LaneAction;
use crate::sync::node::service::LaneView;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand, Debug, Clone)]
pub enum LaneCommand {
    /// The store's lanes this lane has heard of: online, offline, retired.
    List(Common),
    /// Retire lane NODE of this store for good: no lane offers it changes any more, and the
    /// box, if it comes back, refuses to sync. Run it on any running lane of the store.
    Retire {
        /// The node id (`lane3`) or writer id (`s1.lane3`) of the lane to retire.
        node: String,
        #[command(flatten)]
        common: Common,
    },
    /// Take a retirement back (the lane syncs again after its next start).
    Unretire {
        node: String,
        #[command(flatten)]
        common: Common,
    },
}

pub fn run(config_file: &Path, command: &LaneCommand) -> anyhow::Result<()> {
    let (action, common) = match command {
        LaneCommand::List(common) => (LaneAction::List, common),
        LaneCommand::Retire { node, common } => (LaneAction::Retire { node: node.clone() }, common),
        LaneCommand::Unretire { node, common } => {
            (LaneAction::Unretire { node: node.clone() }, common)
        }
    };
    let socket = target::socket_path(config_file, common.socket.as_deref())?;
    let lanes: Vec<LaneView> = Client::connect(&socket)?.call(
        Command::Lanes {
            action: action.clone(),
        },
        TIMEOUT,
    )?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&lanes)?);
        return Ok(());
    }
    match &action {
        LaneAction::Retire { node } => {
            println!("retired {node}: no lane offers it changes any more")
        }
        LaneAction::Unretire { node } => println!("{node} is not retired any more"),
        LaneAction::List => {}
    }
    print!("{}", render(&lanes));
    Ok(())
}

/// One line per lane, under 80 columns.
pub fn render(lanes: &[LaneView]) -> String {
    let mut out = String::new();
    for lane in lanes {
        let me = if lane.this_lane { " (this lane)" } else { "" };
        out.push_str(&format!("{:<40} {}{me}\n", lane.writer, lane.status));
    }
    out
}
