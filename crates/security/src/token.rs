//! Bearer tokens from a file (`--auth-token-file`, `--api-token-file`): one token per line,
//! blank lines and `#` comments ignored. The file is re-read when it changes (its mtime,
//! size or inode, checked every [`POLL_INTERVAL`]), so tokens rotate without a restart; a
//! file that becomes unreadable or invalid keeps the last good tokens (logged).
//!
//! Tokens are kept as SHA-256 digests and a presented token is compared with every one of
//! them in constant time ([`subtle`]), so neither the match nor its position nor a token's
//! length shows in the time a refusal takes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// How often a token file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A set of accepted tokens.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// One token per line; surrounding whitespace, blank lines and lines starting with `#`
    /// are ignored. A token is RFC 6750's `token68`: letters, digits and `-._~+/`, then
    /// optional `=` padding. The error names the line.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut digests = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if !is_token68(token) {
                return Err(format!(
                    "line {}: a token may hold only letters, digits and -._~+/ (then = padding)",
                    i + 1
                ));
            }
            digests.push(digest(token));
        }
        Ok(Tokens { digests })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether there are none (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens, compared with every token in constant time.
    pub fn contains(&self, presented: &str) -> bool {
        let d = digest(presented);
        let mut found = subtle::Choice::from(0);
        for t in &self.digests {
            found |= t.ct_eq(&d);
        }
        found.into()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// What identifies one version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp { modified: m.modified().ok(), len: m.len(), inode })
    }
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    tokens: ArcSwap<Tokens>,
    stamp: Mutex<Option<Stamp>>,
}

/// The tokens of a file, re-read when it changes. Clones share the tokens.
#[derive(Debug, Clone)]
pub struct TokenFile {
    inner: Arc<Inner>,
}

impl TokenFile {
    /// Reads `path`; a missing, unreadable or invalid file, or one with no token, is an
    /// error (a typo in the path must not lock everyone out silently).
    pub fn open(path: impl Into<PathBuf>) -> Result<TokenFile> {
        let path = path.into();
        let stamp =
            Stamp::of(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let tokens = read(&path)?;
        if tokens.is_empty() {
            return Err(Error::Invalid { path, reason: "holds no token".into() });
        }
        Ok(TokenFile {
            inner: Arc::new(Inner {
                path,
                tokens: ArcSwap::from_pointee(tokens),
                stamp: Mutex::new(Some(stamp)),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The tokens now.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.inner.tokens.load_full()
    }

    /// Whether `presented` is one of the tokens now.
    pub fn accepts(&self, presented: &str) -> bool {
        self.inner.tokens.load().contains(presented)
    }

    /// Re-reads the file if it changed since the last read; whether the tokens changed. On
    /// an error the last good tokens stay.
    pub fn reload(&self) -> Result<bool> {
        let path = &self.inner.path;
        let stamp = Stamp::of(path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let mut last = self.inner.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref() == Some(&stamp) {
            return Ok(false);
        }
        let tokens = read(path)?;
        *last = Some(stamp);
        if tokens.is_empty() {
            tracing::warn!(path = %path.display(), "the token file holds no token: every request is refused");
        }
        tracing::info!(path = %path.display(), tokens = tokens.len(), "token file reloaded");
        self.inner.tokens.store(Arc::new(tokens));
        Ok(true)
    }

    /// Checks the file for changes every `interval` until every clone of this is dropped.
    /// Call within a Tokio runtime.
    pub fn watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let file = TokenFile { inner };
                match file.reload() {
                    Ok(_) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "keeping the last good tokens");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn read(path: &Path) -> Result<Tokens> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    Tokens::parse(&text).map_err(|reason| Error::Invalid { path: path.to_owned(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_skips_blanks_and_comments_and_trims() {
        let t =
            Tokens::parse("# ci tokens\n\n  alpha  \r\nbeta==\n\t# old: gamma\n").expect("parses");
        assert_eq!(t.len(), 2);
        assert!(t.contains("alpha"));
        assert!(t.contains("beta=="));
        assert!(!t.contains("gamma"));
        assert!(!t.contains("# old: gamma"));
        assert!(Tokens::parse("").expect("empty parses").is_empty());
        assert!(Tokens::parse("# only a comment\n").expect("parses").is_empty());
    }

    #[test]
    fn the_parser_names_the_bad_line() {
        let e = Tokens::parse("good\nhas space\n").expect_err("a space is no token68");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = Tokens::parse("ok\n===\n").expect_err("padding alone");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = Tokens::parse("t\u{e9}\n").expect_err("non-ascii");
        assert!(e.starts_with("line 1:"), "{e}");
    }

    #[test]
    fn contains_matches_only_the_whole_token() {
        let t = Tokens::parse("s3cr3t-token\nother").expect("parses");
        assert!(t.contains("s3cr3t-token"));
        assert!(t.contains("other"));
        for wrong in ["", "s3cr3t", "s3cr3t-token ", "s3cr3t-tokenX", "S3CR3T-TOKEN", "othe"] {
            assert!(!t.contains(wrong), "{wrong:?}");
        }
        assert!(!Tokens::default().contains(""), "no tokens accept nothing, not even empty");
    }

    #[test]
    fn a_token_file_reloads_when_it_changes_and_keeps_the_last_good_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "first\n").expect("write");
        let file = TokenFile::open(&path).expect("opens");
        assert!(file.accepts("first"));
        assert!(!file.reload().expect("unchanged reads fine"), "nothing changed");
        // Replaced by rename, as rotation tools do: a new inode even within the same mtime.
        let tmp = dir.path().join("tokens.new");
        std::fs::write(&tmp, "second\n").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        assert!(file.reload().expect("reloads"));
        assert!(file.accepts("second"));
        assert!(!file.accepts("first"));
        std::fs::write(&path, "bad token\n").expect("write");
        assert!(matches!(file.reload(), Err(Error::Invalid { .. })));
        assert!(file.accepts("second"), "an invalid file keeps the last good tokens");
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(file.reload(), Err(Error::Read { .. })));
        assert!(file.accepts("second"));
    }

    #[test]
    fn opening_refuses_a_missing_or_tokenless_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        let e = TokenFile::open(&path).expect_err("missing");
        assert!(e.to_string().contains("tokens"), "{e}");
        std::fs::write(&path, "# nothing yet\n").expect("write");
        let e = TokenFile::open(&path).expect_err("no token");
        assert!(e.to_string().ends_with("holds no token"), "{e}");
    }
}
