//! The SQL of verifiers: their records and counters, and what the token endpoint checks (a
//! secret's hash, a key's JWK, a wallet's account from `wallet_accounts`).

use rusqlite::params;

use super::{SqliteTx, backend, from_json, to_json, to_u64};
use crate::issuer::model::VerifierRecord;
use crate::issuer::secrets::SecretHash;
use crate::issuer::storage::{Credential, StorageError};

pub(super) fn list(tx: &SqliteTx<'_>, agent_id: &str) -> Result<Vec<VerifierRecord>, StorageError> {
    let mut stmt = tx
        .conn
        .prepare_cached(
            "SELECT record, usage_count, last_used_at FROM verifiers
                 WHERE agent_id = ?1 ORDER BY seq",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (rec, n, last) = row.map_err(backend)?;
        let mut v: VerifierRecord = from_json(&rec)?;
        v.usage_count = to_u64(n);
        v.last_used_at = last;
        out.push(v);
    }
    Ok(out)
}

pub(super) fn credentials(
    tx: &SqliteTx<'_>,
    agent_id: &str,
) -> Result<Vec<(String, Credential)>, StorageError> {
    let mut stmt = tx
        .conn
        .prepare_cached(
            "SELECT v.id, v.hash, v.jwk, w.account FROM verifiers v
                 LEFT JOIN wallet_accounts w ON w.verifier_id = v.id
                 WHERE v.agent_id = ?1 ORDER BY v.seq",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, hash, jwk, account) = row.map_err(backend)?;
        // A hash of the wrong length cannot have come from this code: it matches nothing.
        let Ok(hash) = <[u8; 32]>::try_from(hash) else {
            continue;
        };
        let credential = match (jwk, account) {
            (_, Some(account)) => Credential::Wallet { account },
            (None, None) => Credential::Secret(SecretHash::from_bytes(hash)),
            (Some(jwk), None) => Credential::Jwk {
                thumbprint: hash,
                jwk,
            },
        };
        out.push((id, credential));
    }
    Ok(out)
}

pub(super) fn insert(
    tx: &SqliteTx<'_>,
    verifier: &VerifierRecord,
    credential: &Credential,
) -> Result<(), StorageError> {
    // A wallet has no hash: all zeros, whose preimage nobody knows (and `credentials`
    // reads the row as a wallet, never as a secret).
    const NO_HASH: [u8; 32] = [0; 32];
    let (hash, jwk) = match credential {
        Credential::Secret(hash) => (hash.as_bytes(), None),
        Credential::Jwk { thumbprint, jwk } => (thumbprint, Some(jwk)),
        Credential::Wallet { .. } => (&NO_HASH, None),
    };
    tx.execute(
        "INSERT INTO verifiers (id, agent_id, hash, jwk, record) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            verifier.id,
            verifier.agent_id,
            hash.as_slice(),
            jwk,
            to_json(verifier)?
        ],
    )?;
    if let Credential::Wallet { account } = credential {
        super::wallets::map(tx, account, &verifier.id, &verifier.agent_id)?;
    }
    Ok(())
}
