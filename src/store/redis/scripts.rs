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

/// Every script.
pub(super) struct Scripts {
    pub(super) join: Lua,
    pub(super) status: Lua,
    pub(super) enter: Lua,
    pub(super) leave: Lua,
    pub(super) redeem: Lua,
    pub(super) sweep: Lua,
    pub(super) put_event: Lua,
    pub(super) figures: Lua,
    pub(super) draw: Lua,
    pub(super) reserve: Lua,
    pub(super) next_batch: Lua,
    pub(super) chains: Lua,
    pub(super) settle: Lua,
    pub(super) end_hold: Lua,
    pub(super) ack: Lua,
    pub(super) dead_letter: Lua,
    pub(super) backlog: Lua,
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

impl Scripts {
    /// Every script's name (the `op` label of its metrics).
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            &self.join,
            &self.status,
            &self.enter,
            &self.leave,
            &self.redeem,
            &self.sweep,
            &self.put_event,
            &self.figures,
            &self.draw,
            &self.reserve,
            &self.next_batch,
            &self.chains,
            &self.settle,
            &self.ack,
            &self.dead_letter,
            &self.backlog,
            &self.end_hold,
        ]
        .map(|lua| lua.name)
        .into_iter()
    }

    pub(super) fn load() -> Self {
        Self {
            join: script!(QUEUE, "queue", join),
            status: script!(QUEUE, "queue", status),
            enter: script!(QUEUE, "queue", enter),
            leave: script!(QUEUE, "queue", leave),
            redeem: script!(QUEUE, "queue", redeem),
            sweep: script!(QUEUE, "queue", sweep),
            put_event: script!(QUEUE, "queue", put_event),
            figures: script!(QUEUE, "queue", figures),
            draw: script!(QUEUE, "queue", draw),
            reserve: script!(RESERVATIONS, "reservations", reserve),
            next_batch: script!(RESERVATIONS, "reservations", next_batch),
            chains: script!(RESERVATIONS, "reservations", chains),
            settle: script!(RESERVATIONS, "reservations", settle),
            end_hold: script!(RESERVATIONS, "reservations", end_hold),
            ack: script!(RESERVATIONS, "reservations", ack),
            dead_letter: script!(RESERVATIONS, "reservations", dead_letter),
            backlog: script!(RESERVATIONS, "reservations", backlog),
        }
    }
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
