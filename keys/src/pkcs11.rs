//! Ed25519 keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests): generated inside it,
//! never extractable, used to sign through the token's module (`CKM_EDDSA`).
//!
//! A key is named by a PKCS#11 URI (RFC 7512), of which this reads:
//!
//! ```text
//! pkcs11:token=<token label>;object=<key label>?module-path=<module .so>&pin-source=<file>
//! ```
//!
//! `pin-value=<pin>` may replace `pin-source` (tests, scripts); with neither, the user PIN is
//! asked at the terminal. Values may be percent-encoded. The private key is the token's private
//! key object of that label; its public key is the public key object of the same label.
//!
//! It is not token administration: initialising a token and its PINs is the token's own tool
//! (`softhsm2-util`, the HSM vendor's).

use anyhow::{Context, Result, anyhow, bail};
use cachet_chain::crypto::{PublicKey, Signature};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

/// The curve of an Ed25519 key, as PKCS#11 modules take it in `CKA_EC_PARAMS`: the printable
/// string `edwards25519` (DER), which SoftHSM2 and most HSMs accept.
const EDWARDS25519: &[u8] = b"\x13\x0cedwards25519";

/// A parsed `pkcs11:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The token's label.
    pub token: String,
    /// The key's label.
    pub object: String,
    /// The PKCS#11 module to load.
    pub module: PathBuf,
    /// Where the user PIN comes from.
    pub pin: Pin,
}

/// Where a token's user PIN comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// In the URI.
    Value(String),
    /// In this file (its first line).
    File(PathBuf),
    /// Asked at the terminal.
    Ask,
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| anyhow!("a % not followed by two hex digits in {text:?}"))?;
            out.push(u8::from_str_radix(hex, 16).with_context(|| format!("%{hex} in {text:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("{text:?} is not UTF-8 once decoded"))
}

impl Uri {
    /// Parse a `pkcs11:` URI naming one key.
    pub fn parse(text: &str) -> Result<Uri> {
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| anyhow!("a PKCS#11 key is named by a pkcs11: URI"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (mut token, mut object, mut module, mut pin) = (None, None, None, Pin::Ask);
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("{part:?} in a pkcs11: URI has no ="))?;
            let v = percent_decode(v)?;
            match k {
                "token" => token = Some(v),
                "object" => object = Some(v),
                "type" if v == "private" => {}
                // Other attributes (manufacturer, serial…) narrow the search; labels suffice.
                _ => {}
            }
        }
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("{part:?} in a pkcs11: URI has no ="))?;
            let v = percent_decode(v)?;
            match k {
                "module-path" => module = Some(PathBuf::from(v)),
                "pin-value" => pin = Pin::Value(v),
                "pin-source" => {
                    pin = Pin::File(PathBuf::from(v.strip_prefix("file:").unwrap_or(&v)))
                }
                _ => bail!("{k:?} in a pkcs11: URI is not understood"),
            }
        }
        Ok(Uri {
            token: token.ok_or_else(|| anyhow!("the pkcs11: URI names no token="))?,
            object: object.ok_or_else(|| anyhow!("the pkcs11: URI names no object="))?,
            module: module.ok_or_else(|| anyhow!("the pkcs11: URI names no module-path="))?,
            pin,
        })
    }

    fn pin(&self) -> Result<AuthPin> {
        let pin = match &self.pin {
            Pin::Value(v) => v.clone(),
            Pin::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the PIN file {}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            Pin::Ask => {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "the PIN of token {:?}: give pin-source=<file> in its pkcs11: URI",
                        self.token
                    );
                }
                rpassword::prompt_password(format!("user PIN of token {:?}: ", self.token))?
            }
        };
        Ok(AuthPin::new(pin.into()))
    }
}

/// A logged-in session on the token that holds the key.
fn session(uri: &Uri, read_write: bool) -> Result<(Pkcs11, Session)> {
    let module = Pkcs11::new(&uri.module)
        .with_context(|| format!("cannot load the PKCS#11 module {}", uri.module.display()))?;
    module
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .context("initialising the PKCS#11 module")?;
    let mut found = None;
    for slot in module.get_slots_with_token()? {
        if module.get_token_info(slot)?.label() == uri.token {
            found = Some(slot);
            break;
        }
    }
    let slot = found.ok_or_else(|| {
        anyhow!(
            "no token labelled {:?} in {}",
            uri.token,
            uri.module.display()
        )
    })?;
    let session = if read_write {
        module.open_rw_session(slot)?
    } else {
        module.open_ro_session(slot)?
    };
    session
        .login(UserType::User, Some(&uri.pin()?))
        .with_context(|| format!("logging in to token {:?}", uri.token))?;
    Ok((module, session))
}

fn find(session: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>> {
    Ok(session.find_objects(&[
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?)
}

/// The Ed25519 public key of the public key object `handle`: its `CKA_EC_POINT`, the 32 bytes
/// bare or in a DER octet string.
fn public_of(session: &Session, handle: ObjectHandle) -> Result<PublicKey> {
    let attributes = session.get_attributes(handle, &[AttributeType::EcPoint])?;
    let point = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| anyhow!("the public key object has no EC point"))?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        bare if bare.len() == 32 => bare,
        other => bail!("an EC point of {} bytes is not an Ed25519 key", other.len()),
    };
    let mut key = [0u8; 32];
    key.copy_from_slice(raw);
    Ok(PublicKey::Ed25519(key))
}

/// Generate an Ed25519 key pair in the token the URI names, labelled as it says (refused if
/// the label is taken): the private key sensitive and not extractable. Returns its public key.
pub fn generate(uri: &Uri) -> Result<PublicKey> {
    let (_module, session) = session(uri, true)?;
    if !find(&session, ObjectClass::PRIVATE_KEY, &uri.object)?.is_empty() {
        bail!(
            "token {:?} already holds a key labelled {:?}",
            uri.token,
            uri.object
        );
    }
    let label = Attribute::Label(uri.object.as_bytes().to_vec());
    let public_template = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(EDWARDS25519.to_vec()),
        label.clone(),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        label,
    ];
    let (public, _private) = session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &public_template,
            &private_template,
        )
        .context("generating an Ed25519 key pair in the token")?;
    public_of(&session, public)
}

/// A key in a token, with a logged-in session to sign with.
pub struct TokenKey {
    public: PublicKey,
    private: ObjectHandle,
    // The session before the module: it closes first.
    session: Mutex<Session>,
    _module: Pkcs11,
}

impl TokenKey {
    /// Open the key the URI names.
    pub fn open(uri: &Uri) -> Result<TokenKey> {
        let (module, session) = session(uri, false)?;
        let only = |handles: Vec<ObjectHandle>, what: &str| match handles.as_slice() {
            [one] => Ok(*one),
            [] => Err(anyhow!(
                "token {:?} holds no {what} labelled {:?}",
                uri.token,
                uri.object
            )),
            _ => Err(anyhow!(
                "token {:?} holds several {what}s labelled {:?}",
                uri.token,
                uri.object
            )),
        };
        let private = only(
            find(&session, ObjectClass::PRIVATE_KEY, &uri.object)?,
            "Ed25519 private key",
        )?;
        let public = only(
            find(&session, ObjectClass::PUBLIC_KEY, &uri.object)?,
            "Ed25519 public key",
        )?;
        let public = public_of(&session, public)?;
        Ok(TokenKey {
            public,
            private,
            session: Mutex::new(session),
            _module: module,
        })
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Sign `message` in the token (pure Ed25519).
    pub fn sign(&self, message: &[u8]) -> Result<Signature> {
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let bytes = session
            .sign(&mechanism, self.private, message)
            .context("the token refused to sign")?;
        let signature: [u8; 64] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("the token's signature is {} bytes, not 64", bytes.len()))?;
        Ok(Signature::Ed25519(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_token_key_module_and_pin() {
        let uri = Uri::parse(
            "pkcs11:token=cachet%20agency;object=moi-land;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token, "cachet agency");
        assert_eq!(uri.object, "moi-land");
        assert_eq!(uri.module, PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(uri.pin, Pin::File("/run/pin".into()));
        assert!(Uri::parse("pkcs11:token=t;object=o").is_err(), "no module");
        assert!(
            Uri::parse("pkcs11:object=o?module-path=m").is_err(),
            "no token"
        );
        assert!(
            Uri::parse("pkcs11:token=t;object=o?module-path=m&pin=1").is_err(),
            "unknown query"
        );
        assert!(Uri::parse("pkcs11:token=%zz;object=o?module-path=m").is_err());
    }
}
