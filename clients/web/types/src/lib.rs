//! The web client's protocol types: `clients/web/protocol.d.ts`, generated from the wire
//! types of `triad-protocol` (its `ts` feature derives `ts_rs::TS` for each of them).
//!
//! [`typescript`] renders the whole file: every type reachable from the client and server
//! frames, declared once, in name order, with the Rust doc comments as JSDoc. The file is
//! committed so the web client needs no build step; `tests/generated.rs` regenerates it and
//! fails when the committed copy differs (`TRIAD_BLESS=1` rewrites it instead).

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use triad_protocol::{
    ClientFrame, CloseCode, ErrorCode, EventBody, PROTOCOL_VERSION, Request, RoomEvent,
    ServerFrame, ServerMessage,
};
use ts_rs::{Config, TS, TypeVisitor};

/// Where the generated file lives: `clients/web/protocol.d.ts`.
pub fn output_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol.d.ts")
}

/// The contents of `protocol.d.ts`.
pub fn typescript() -> String {
    // Sequence numbers, epochs and timestamps are u64/i64 in Rust; in JSON they are plain
    // numbers (all below 2^53), and `JSON.parse` gives `number`, not `bigint`.
    let config = Config::new().with_large_int("number");
    let mut declarations = Declarations {
        config: &config,
        seen: HashSet::new(),
        out: BTreeMap::new(),
    };
    declarations.visit::<ClientFrame>();
    declarations.visit::<ServerFrame>();
    // Declared on their own too, though the frames inline them.
    declarations.visit::<Request>();
    declarations.visit::<ServerMessage>();
    declarations.visit::<RoomEvent>();
    declarations.visit::<EventBody>();
    declarations.visit::<ErrorCode>();
    declarations.visit::<CloseCode>();

    let mut file = String::from(HEADER);
    file.push_str(&format!(
        "\n/** The websocket subprotocol and protocol version. */\nexport type ProtocolVersion = {PROTOCOL_VERSION:?};\n"
    ));
    for declaration in declarations.out.values() {
        file.push('\n');
        file.push_str(declaration);
    }
    file
}

const HEADER: &str = "\
// Triad's wire protocol as TypeScript declarations, for the web client's type check.
// Generated from the triad-protocol crate by clients/web/types: do not edit.
// Regenerate with `TRIAD_BLESS=1 cargo test -p triad-web-types`.
";

/// Collects the declaration of each exportable type once, following dependencies.
struct Declarations<'a> {
    config: &'a Config,
    seen: HashSet<TypeId>,
    /// Declarations by type name, so the file is in name order.
    out: BTreeMap<String, String>,
}

impl TypeVisitor for Declarations<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        // Only named types have a declaration (primitives and containers have no path).
        if T::output_path().is_none() || !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        let docs = T::docs().unwrap_or_default();
        let declaration = format!("{docs}export {}\n", T::decl(self.config));
        // ts-rs leaves a space at the end of some lines.
        let declaration: String = declaration
            .lines()
            .map(|line| format!("{}\n", line.trim_end()))
            .collect();
        self.out.insert(T::ident(self.config), declaration);
        T::visit_dependencies(self);
    }
}
