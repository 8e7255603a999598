//! Standard output as Unix tools treat it: a reader that goes away (`shardctl get … | head`)
//! ends the program quietly instead of failing it.

use std::io::Write as _;

/// Writes one line to stdout. When the reader has closed the pipe, exits with status 0, as a
/// tool killed by SIGPIPE would stop; any other write failure exits with status 1.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("shardctl: cannot write to stdout: {err}");
        std::process::exit(1);
    }
}

/// `println!` for shardctl's output: see [`line`].
macro_rules! out {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
pub(crate) use out;
