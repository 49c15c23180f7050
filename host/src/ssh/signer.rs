//! Signing with a key held in memory.

use std::sync::Arc;

use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKey};

/// Signs with a key held in memory, for certificate authentication through russh's signer path (its
/// plain certificate call picks the wrong algorithm for RSA certificates against OpenSSH).
pub(super) struct KeySigner(pub(super) Arc<PrivateKey>);

#[derive(Debug, thiserror::Error)]
pub(super) enum SignError {
    #[error(transparent)]
    Send(#[from] russh::SendError),
    #[error("signing failed: {0}")]
    Key(String),
}

impl russh::Signer for KeySigner {
    type Error = SignError;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Self::Error> {
        use russh::keys::signature::Signer;
        let signature: russh::keys::ssh_key::Signature = match self.0.key_data() {
            KeypairData::Rsa(keypair) => {
                Signer::try_sign(&(keypair, hash_alg.or(Some(HashAlg::Sha512))), &to_sign)
            }
            keypair => Signer::try_sign(keypair, &to_sign),
        }
        .map_err(|e| SignError::Key(e.to_string()))?;
        let encoded = signature
            .encode_vec()
            .map_err(|e| SignError::Key(e.to_string()))?;
        encoded
            .encode(&mut to_sign)
            .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(to_sign)
    }
}
