//! The wallet sign-in message parser (EIP-4361 / CAIP-122, `issuer::wallet::message`), through
//! `agent_auth::internals::wallet_message`.
//!
//! Oracle: nothing panics, and the parser is strict: every text it accepts is exactly the
//! rendering of the fields it read (no leniency in whitespace, line structure, letter case of
//! the address, spelling of the times), and the account it read is canonical CAIP-10 (it reads
//! back as itself).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((round_trips, account)) = agent_auth::internals::wallet_message(text) {
        assert!(round_trips, "accepted a message that is not its own rendering: {text:?}");
        let mut parts = account.splitn(3, ':');
        let namespace = parts.next().unwrap_or_default();
        assert!(namespace == "eip155" || namespace == "solana", "{account}");
    }
});
