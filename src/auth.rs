//! Secrets: random generation, hashing, constant-time comparison, the API
//! key and dashboard password checks, and Basic Auth header parsing.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is not recoverable and never expected.
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compares two byte strings in time that depends only on their lengths:
/// no early return on the first differing byte.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// A random UUID v4, hyphenated lower-case.
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A new API key: 32 random bytes, URL-safe base64 without padding.
pub fn generate_api_key() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A new dashboard password: 18 random bytes, URL-safe base64 (24 characters).
pub fn generate_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

/// A new webhook secret in the Standard Webhooks form: `whsec_` + base64 of
/// 32 random bytes.
pub fn generate_webhook_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
    )
}

/// How an API key is stored: hex SHA-256.
pub fn api_key_hash(key: &str) -> String {
    hex(&sha256(key.as_bytes()))
}

/// How the dashboard password is stored: `salt$hex(sha256(salt || password))`.
/// Generated passwords carry 144 bits of entropy, so one salted hash is enough;
/// a chosen password is never stored at all (it stays in the environment).
pub fn password_hash(password: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
    format!("{salt}${}", hex(&h.finalize()))
}

/// Checks `password` against a `password_hash` string in constant time.
pub fn password_matches(password: &str, stored: &str) -> bool {
    let Some((salt, _)) = stored.split_once('$') else {
        return false;
    };
    ct_eq(password_hash(password, salt).as_bytes(), stored.as_bytes())
}

/// The user and password of an `Authorization: Basic …` header.
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"xbc", b"abc"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn generated_secrets_have_their_promised_shape() {
        let key = generate_api_key();
        assert_eq!(key.len(), 43);
        assert_ne!(key, generate_api_key());
        let secret = generate_webhook_secret();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn password_hash_round_trip() {
        let stored = password_hash("hunter2", "salty");
        assert!(password_matches("hunter2", &stored));
        assert!(!password_matches("hunter3", &stored));
        assert!(!password_matches("hunter2", "garbage"));
        assert!(!stored.contains("hunter2"));
    }

    #[test]
    fn basic_auth_header() {
        // "admin:pa:ss" - the password may hold a colon.
        assert_eq!(
            parse_basic_auth("Basic YWRtaW46cGE6c3M="),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic_auth("basic YWRtaW46cGE6c3M=").map(|x| x.0),
            Some("admin".into())
        );
        assert_eq!(parse_basic_auth("Bearer abc"), None);
        assert_eq!(parse_basic_auth("Basic !!!"), None);
        assert_eq!(parse_basic_auth("Basic YWRtaW4="), None); // no colon
        assert_eq!(parse_basic_auth(""), None);
    }

    #[test]
    fn hex_and_sha256() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
