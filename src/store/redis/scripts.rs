//! The Lua scripts, loaded once: each is `lua/clock.lua`, its family's helpers and its own body,
//! run by SHA (reloaded on NOSCRIPT). Redis reports errors at a line of that bundle
//! (`user_script:N`); [`Lua::locate`] turns it back into the file and line a reader can open.

use fred::types::scripts::Script;

/// A source file of a bundle: its path (as a reader finds it) and text.
type Source = (&'static str, &'static str);

const CLOCK: Source = ("lua/clock.lua", include_str!("../../../lua/clock.lua"));

/// The helpers of the queue's scripts: keys and records, then the door.
const QUEUE: &[Source] = &[
    CLOCK,
    (
        "lua/queue/lib.lua",
        include_str!("../../../lua/queue/lib.lua"),
    ),
    (
        "lua/queue/door.lua",
        include_str!("../../../lua/queue/door.lua"),
    ),
];

/// The helpers of the reservation scripts.
const RESERVATIONS: &[Source] = &[
    CLOCK,
    (
        "lua/reservations/lib.lua",
        include_str!("../../../lua/reservations/lib.lua"),
    ),
];

/// One script: its name (the `op` label of the store's metrics) and its bundle.
pub(super) struct Lua {
    pub(super) name: &'static str,
    pub(super) script: Script,
    /// The bundle's files in order, with the bundle line each starts at (1-based).
    files: Vec<(usize, &'static str)>,
}

impl Lua {
    fn new(name: &'static str, helpers: &[Source], body: Source) -> Self {
        let mut source = String::new();
        let mut files = Vec::new();
        let mut line = 1;
        for (path, text) in helpers.iter().chain([&body]) {
            files.push((line, *path));
            source.push_str(text);
            if !text.ends_with('\n') {
                source.push('\n');
            }
            line += text.lines().count();
        }
        Self {
            name,
            script: Script::from_lua(source),
            files,
        }
    }

    /// `path:line` of a line of the bundle.
    fn locate(&self, line: usize) -> String {
        let (start, path) = self
            .files
            .iter()
            .rev()
            .find(|(start, _)| *start <= line)
            .copied()
            .unwrap_or((1, "?"));
        format!("{path}:{}", line + 1 - start)
    }

    /// A Redis error message with every `user_script:N` replaced by the file and line.
    pub(super) fn explain(&self, message: &str) -> String {
        const MARK: &str = "user_script:";
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(at) = rest.find(MARK) {
            out.push_str(&rest[..at]);
            let after = &rest[at + MARK.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            match after[..digits].parse() {
                Ok(line) => out.push_str(&self.locate(line)),
                Err(_) => out.push_str(MARK),
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }
}

macro_rules! script {
    ($family:ident, $dir:literal, $name:ident) => {
        Lua::new(
            stringify!($name),
            $family,
            (
                concat!("lua/", $dir, "/", stringify!($name), ".lua"),
                include_str!(concat!(
                    "../../../lua/",
                    $dir,
                    "/",
                    stringify!($name),
                    ".lua"
                )),
            ),
        )
    };
}

/// Declares every script once: the struct, its loader and the list of names are derived from
/// the same lines, so a new script cannot be missing from its metrics.
macro_rules! scripts {
    ($($name:ident: $family:ident in $dir:literal),+ $(,)?) => {
        /// Every script.
        pub(super) struct Scripts {
            $(pub(super) $name: Lua,)+
        }

        impl Scripts {
            /// Every script's name (the `op` label of its metrics).
            pub(super) fn names(&self) -> impl Iterator<Item = &'static str> {
                [$(self.$name.name),+].into_iter()
            }

            pub(super) fn load() -> Self {
                Self {
                    $($name: script!($family, $dir, $name),)+
                }
            }
        }
    };
}

scripts! {
    join: QUEUE in "queue",
    status: QUEUE in "queue",
    enter: QUEUE in "queue",
    leave: QUEUE in "queue",
    redeem: QUEUE in "queue",
    sweep: QUEUE in "queue",
    put_event: QUEUE in "queue",
    figures: QUEUE in "queue",
    draw: QUEUE in "queue",
    reserve: RESERVATIONS in "reservations",
    next_batch: RESERVATIONS in "reservations",
    chains: RESERVATIONS in "reservations",
    settle: RESERVATIONS in "reservations",
    end_hold: RESERVATIONS in "reservations",
    ack: RESERVATIONS in "reservations",
    dead_letter: RESERVATIONS in "reservations",
    backlog: RESERVATIONS in "reservations",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_the_file_a_reader_opens() {
        let scripts = Scripts::load();
        let status = &scripts.status;
        let clock_lines = CLOCK.1.lines().count();
        let lib_lines = QUEUE[1].1.lines().count();
        let door_lines = QUEUE[2].1.lines().count();
        let body_start = 1 + clock_lines + lib_lines + door_lines;
        assert_eq!(status.locate(1), "lua/clock.lua:1");
        assert_eq!(status.locate(clock_lines + 2), "lua/queue/lib.lua:2");
        assert_eq!(status.locate(body_start + 4), "lua/queue/status.lua:5");
        assert_eq!(
            status.explain(&format!("ERR user_script:{body_start}: boom")),
            "ERR lua/queue/status.lua:1: boom"
        );
    }
}
