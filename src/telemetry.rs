//! Logging: tracing with a human format by default and JSON lines by setting. Initialised once
//! per process; tests call [`init_for_tests`], which stays quiet unless `TEST_LOG=1`. Text a
//! peer chose (a charger's vendor, action, message id, …) is logged only through [`Escaped`],
//! so it cannot forge log lines or drive the terminal reading them.

use std::fmt;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Install the global subscriber for the server process.
pub fn init(settings: &Settings) {
    // RUST_LOG, when set, wins: it is what people reach for when debugging one module.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(settings.log.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Tests share one process; the first caller installs the subscriber.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Peer-supplied text as it may appear in a log line: control characters (newlines, ANSI
/// escapes, NUL, C1 codes), the Unicode bidirectional overrides that reorder what a terminal
/// shows, and the backslash itself are written as Rust-style escapes (`\n`, `\u{1b}`, `\\`),
/// so a log line can only ever end where the logger ends it. Use it with `%` in tracing fields
/// (`vendor = %Escaped(&boot.charge_point_vendor)`) and in format arguments; a field of type
/// `&str` without `%` is already escaped by tracing's `Debug` rendering, a `%` field or a
/// message argument is not. The JSON log escapes everything by itself; this is for the human one.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let mut clean = 0;
        for (at, c) in text.char_indices() {
            let escape = c.is_control() || c == '\\' || is_bidi_control(c);
            if !escape {
                continue;
            }
            f.write_str(&text[clean..at])?;
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            clean = at + c.len_utf8();
        }
        f.write_str(&text[clean..])
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// U+200E/F, U+202A–U+202E, U+2066–U+2069: invisible, and they reorder the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::Escaped;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(Escaped("Acme Volt-22 ü ✓").to_string(), "Acme Volt-22 ü ✓");
        assert_eq!(
            Escaped("v\n2026-01-01T00:00:00Z ERROR forged").to_string(),
            "v\\n2026-01-01T00:00:00Z ERROR forged"
        );
        assert_eq!(
            Escaped("\u{1b}[31mred\u{1b}[0m").to_string(),
            "\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(
            Escaped("a\0b\r\t\u{85}").to_string(),
            "a\\u{0}b\\r\\t\\u{85}"
        );
        assert_eq!(Escaped("\u{202e}gnp.exe").to_string(), "\\u{202e}gnp.exe");
        // A literal backslash-n cannot pass for an escaped newline.
        assert_eq!(Escaped("a\\nb").to_string(), "a\\\\nb");
    }

    /// What the human log writes for a hostile vendor id: one line, whatever the text holds.
    #[test]
    fn a_hostile_field_stays_on_its_log_line() {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let hostile = "x\n2026-01-01T00:00:00.000000Z ERROR echarging: forged\u{1b}[2K\0";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(vendor = %Escaped(hostile), "DataTransfer from an unknown vendor");
            tracing::info!("unknown action {}", Escaped(hostile));
        });
        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), 2, "{log}");
        assert!(!log.contains('\u{1b}') && !log.contains('\0'), "{log}");
        assert!(log.lines().all(|line| line.contains(" INFO ")), "{log}");
    }
}
