//! The credential that guards the internal services (`Cluster`, `Admin`): one token shared by
//! the operator and the shard-servers, presented as `authorization: Bearer <token>` and
//! compared in constant time. In cluster mode it comes from `--internal-token-file` (the
//! operator's Secret); a standalone server without that flag creates one in its data
//! directory, readable only by the server's user.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;
use sha2::{Digest, Sha256};
use shardline_proto::auth::{AUTHORIZATION, BEARER};
use subtle::ConstantTimeEq as _;
use tonic::{Request, Status};

/// Fewest characters a token may have.
pub const MIN_TOKEN_CHARS: usize = 32;
/// The file a standalone server keeps its generated token in, inside the data directory.
pub const STANDALONE_TOKEN_FILE: &str = "internal-token";

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file cannot be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's text is not a usable token.
    #[error("token file {path}: the token must be at least {MIN_TOKEN_CHARS} visible ASCII characters")]
    Weak {
        /// The file.
        path: PathBuf,
    },
}

/// The token internal calls must present. Incoming calls are compared with its SHA-256
/// digest; the token itself is kept only as the [`PeerBearer`] this server's own calls to its
/// peers present (Raft on their internal ports).
#[derive(Clone)]
pub struct InternalToken {
    digest: [u8; 32],
    bearer: PeerBearer,
}

/// The `authorization` value (`Bearer TOKEN`) of this server's calls to its peers' internal
/// ports. Never printed.
#[derive(Clone)]
pub struct PeerBearer(std::sync::Arc<str>);

impl PeerBearer {
    /// The header value.
    pub fn header_value(&self) -> &str {
        &self.0
    }

    /// A 32-byte key for `purpose` that every server of the cluster derives alike (SHA-256 of
    /// the purpose and the token), so what one server seals another can open.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(purpose.as_bytes());
        hasher.update([0]);
        hasher.update(self.0.as_bytes());
        hasher.finalize().into()
    }
}

impl std::fmt::Debug for PeerBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerBearer(..)")
    }
}

impl std::fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalToken(..)")
    }
}

impl InternalToken {
    /// The token in `path` (surrounding whitespace, such as a trailing newline, is ignored).
    pub fn read(path: &Path) -> Result<Self, CredentialError> {
        let io = |source| CredentialError::Io { path: path.to_owned(), source };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CredentialError::Weak { path: path.to_owned() });
        }
        Ok(Self::of(token))
    }

    /// The token in `path`, first writing a new random one there (mode 0600) if it is missing.
    pub fn read_or_create(path: &Path) -> Result<Self, CredentialError> {
        let io = |source| CredentialError::Io { path: path.to_owned(), source };
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                file.write_all(format!("{token}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
                Ok(Self::of(&token))
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Self::read(path),
            Err(err) => Err(io(err)),
        }
    }

    fn of(token: &str) -> Self {
        let bearer = PeerBearer(format!("{BEARER}{token}").into());
        Self { digest: Sha256::digest(token.as_bytes()).into(), bearer }
    }

    /// What this server presents to its peers' internal ports.
    pub fn bearer(&self) -> PeerBearer {
        self.bearer.clone()
    }

    /// Whether `presented` is the token. Digests are compared, in constant time, so neither
    /// the token's bytes nor its length leak through timing.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(&self.digest))
    }

    /// Lets a call through only if it carries the token.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let presented = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(BEARER.as_bytes()))
            .unwrap_or_default();
        if self.accepts(presented) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "internal services need `authorization: Bearer <token>` with the server's internal token",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted_and_created_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let created = InternalToken::read_or_create(&path).expect("created");
        let text = std::fs::read_to_string(&path).expect("written");
        let token = text.trim();
        assert_eq!(token.len(), 64);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert!(created.accepts(token.as_bytes()));
        assert!(!created.accepts(&token.as_bytes()[..63]));
        assert!(!created.accepts(b""));
        let again = InternalToken::read_or_create(&path).expect("read back");
        assert!(again.accepts(token.as_bytes()));

        std::fs::write(&path, "short\n").expect("write");
        assert!(matches!(InternalToken::read(&path), Err(CredentialError::Weak { .. })));

        let mut request = Request::new(());
        let value = format!("Bearer {token}").parse().expect("ascii");
        request.metadata_mut().insert(AUTHORIZATION, value);
        assert!(again.check(request).is_ok());
        let status = again.check(Request::new(())).expect_err("no token");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
