//! GitHub App authentication: RS256 JWTs for the App endpoints, installation tokens (one hour) for the rest.
//! Misuse (no credentials, a JWT where a token belongs, a token GitHub never issued) is a recorded problem;
//! an expired token is not, since refreshing after a 401 is what a client is supposed to do.

use axum::http::HeaderMap;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::server::Reply;
use super::state::{sha1_hex, State, Token};
use super::FakeGitHub;

const PUBLIC_KEY: &str = include_str!("../../fixtures/github/app-key.pub.pem");

fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "token").then(|| rest.trim().to_string())
}

fn looks_like_jwt(credential: &str) -> bool {
    credential.split('.').count() == 3
}

fn unauthorized(message: &str) -> Reply {
    Reply::error(401, message, "https://docs.github.com/rest")
}

/// For `/app/...` and `GET /repos/{o}/{r}/installation`.
pub(crate) fn check_jwt(s: &mut State, headers: &HeaderMap, what: &str) -> Result<(), Reply> {
    let Some(jwt) = credential(headers) else {
        s.problem(format!("{what}: no Authorization header (needs the App's JWT)"));
        return Err(unauthorized("Requires authentication"));
    };
    if !looks_like_jwt(&jwt) {
        s.problem(format!("{what}: an installation token was sent where the App's JWT is required"));
        return Err(unauthorized("A JSON web token could not be decoded"));
    }
    match verify_jwt(&jwt) {
        Ok(()) => Ok(()),
        Err(message) => {
            s.problem(format!("{what}: JWT refused: {message}"));
            Err(unauthorized(&message))
        }
    }
}

fn verify_jwt(jwt: &str) -> Result<(), String> {
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("the committed public key parses");
    let mut validation = Validation::new(Algorithm::RS256);
    // GitHub's own rules are checked below, with GitHub's messages.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|e| format!("A JSON web token could not be decoded ({e})"))?
        .claims;
    let now = Utc::now().timestamp();
    let iss = match &claims["iss"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    if iss != Some(FakeGitHub::APP_ID) {
        return Err(format!("'Issuer' claim ('iss') must be the App's id {}", FakeGitHub::APP_ID));
    }
    let Some(iat) = claims["iat"].as_i64() else {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            .to_string());
    };
    if iat > now + 60 {
        return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past".to_string());
    }
    let Some(exp) = claims["exp"].as_i64() else {
        return Err("'Expiration time' claim ('exp') must be a numeric value".to_string());
    };
    if exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which \
                    the assertion expires"
            .to_string());
    }
    if exp > now + 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".to_string());
    }
    Ok(())
}

/// For every repository endpoint: the installation token must be live and its installation must have the repo.
pub(crate) fn check_token(s: &mut State, headers: &HeaderMap, repo: Option<&str>, what: &str) -> Result<u64, Reply> {
    let Some(token) = credential(headers) else {
        s.problem(format!("{what}: no Authorization header (needs an installation token)"));
        return Err(unauthorized("Requires authentication"));
    };
    if looks_like_jwt(&token) {
        s.problem(format!("{what}: the App's JWT was sent where an installation token is required"));
        return Err(unauthorized("Bad credentials"));
    }
    let Some(t) = s.tokens.get(&token) else {
        s.problem(format!("{what}: a token the fake never issued"));
        return Err(unauthorized("Bad credentials"));
    };
    if t.revoked || t.expires_at <= Utc::now() {
        return Err(unauthorized("Bad credentials"));
    }
    let installation = t.installation_id;
    if let Some(repo) = repo {
        if s.repos.get(repo).map(|r| r.installation_id) != Some(installation) {
            return Err(Reply::not_found());
        }
    }
    Ok(installation)
}

/// `POST /app/installations/{installation_id}/access_tokens`.
pub(crate) fn create_token(s: &mut State, installation_id: u64) -> Reply {
    if !s.repos.values().any(|r| r.installation_id == installation_id) {
        return Reply::not_found();
    }
    let salt = s.next_id();
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let token = format!("ghs_{}", &sha1_hex(format!("{installation_id} {salt} {nanos}").as_bytes())[..36]);
    let expires_at = Utc::now() + Duration::hours(1);
    s.tokens.insert(token.clone(), Token { installation_id, expires_at, revoked: false });
    Reply::new(
        201,
        json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"checks": "write", "contents": "read", "pull_requests": "write", "metadata": "read"},
            // An installation on all of an account's repositories: GitHub lists `repositories` only for
            // tokens limited to some of them.
            "repository_selection": "all",
        }),
    )
}
