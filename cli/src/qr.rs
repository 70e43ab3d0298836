//! QR codes for verifiers: URLs that a phone's camera opens on a verify page, which then
//! verifies on the phone (`docs/verify.md`, "Links and QR codes"):
//! - a **link**: `<page>?id=<certificate id>#<trust root>` — the page fetches a fresh receipt
//!   from a node and verifies it;
//! - a **receipt link**: `<page>#<trust root>.<receipt in base64url>` — the whole receipt, in
//!   the URL's fragment, which a browser never sends to any server; the page verifies it with
//!   no node, and asks a node for a fresh one when it is older than its kind allows.
//!
//! `<page>` is a verify page: a node's `/verify`, or an agency's copy (`cachet verify-page`).
//! PNG and SVG are written here; decoding (for `cachet verify --qr`) uses `rqrr`, a decoder
//! independent of the encoder.

use anyhow::{Context, Result, bail};
use cachet_chain::hash::Hash32;
use qrcode::{Color, EcLevel, QrCode};
use std::path::Path;

/// The smallest printed module a phone camera reads reliably from about 20 cm.
pub const PRINT_MODULE_MM: f64 = 0.5;

/// The link to a certificate's page.
pub fn link(page: &str, id: &str, root: &Hash32) -> String {
    let sep = if page.contains('?') { '&' } else { '?' };
    format!("{page}{sep}id={id}#{root}")
}

/// The link that carries a whole receipt.
pub fn receipt_link(page: &str, receipt: &[u8], root: &Hash32) -> String {
    format!("{page}#{root}.{}", base64url(receipt))
}

/// The trust root and receipt a receipt link carries.
pub fn parse_receipt_link(text: &str) -> Result<(Hash32, Vec<u8>)> {
    let (_, fragment) = text
        .trim()
        .split_once('#')
        .context("not a Cachet receipt link (it has no #fragment)")?;
    let (root, receipt) = fragment
        .split_once('.')
        .context("the link carries no receipt (it is a link to a certificate: use --rpc)")?;
    let root: Hash32 = root
        .parse()
        .map_err(|_| anyhow::anyhow!("the link's trust root is not 64 hex characters"))?;
    Ok((root, from_base64url(receipt)?))
}

/// What was written: the code's size, and how large to print it.
pub struct Written {
    /// Modules per side (without the quiet zone).
    pub modules: usize,
    /// Millimetres per side at [`PRINT_MODULE_MM`], with the four-module quiet zone.
    pub print_mm: f64,
}

/// Write `text` as a QR code to `out` (`.png` with `module_px` pixels a module, or `.svg`).
pub fn write(text: &str, out: &Path, module_px: usize) -> Result<Written> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .context("too much data for one QR code")?;
    match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .module_dimensions(module_px as u32, module_px as u32)
                .quiet_zone(true)
                .build();
            std::fs::write(out, svg)?;
        }
        Some("png") => write_png(&code, out, module_px)?,
        _ => bail!("the output must end in .png or .svg"),
    }
    let modules = code.width();
    Ok(Written {
        modules,
        print_mm: (modules + 8) as f64 * PRINT_MODULE_MM,
    })
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 §5 base64url, without padding.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(BASE64URL[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn from_base64url(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u32> = text
        .bytes()
        .map(|c| {
            BASE64URL
                .iter()
                .position(|&d| d == c)
                .map(|p| p as u32)
                .context("the receipt in the link is not base64url")
        })
        .collect::<Result<_>>()?;
    if digits.len() % 4 == 1 {
        bail!("the receipt in the link is cut short");
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | d << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Ok(out)
}

fn write_png(code: &QrCode, out: &Path, scale: usize) -> Result<()> {
    const SCALE_MAX: usize = 64;
    const QUIET: usize = 4;
    let scale = scale.clamp(1, SCALE_MAX);
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * scale;
    let mut pixels = vec![255u8; side * side];
    for y in 0..modules {
        for x in 0..modules {
            if colors[y * modules + x] == Color::Dark {
                for dy in 0..scale {
                    let row = ((y + QUIET) * scale + dy) * side;
                    let start = row + (x + QUIET) * scale;
                    pixels[start..start + scale].fill(0);
                }
            }
        }
    }
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), side as u32, side as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&pixels)?;
    Ok(())
}

/// Read the text of the first QR code in a PNG image.
pub fn read_png(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0u8; reader.output_buffer_size().context("image too large")?];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        match channels {
            1 | 2 => buf[i],
            _ => {
                ((buf[i] as u32 * 30 + buf[i + 1] as u32 * 59 + buf[i + 2] as u32 * 11) / 100) as u8
            }
        }
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    let grid = grids.first().context("no QR code found in the image")?;
    let (_, text) = grid
        .decode()
        .map_err(|e| anyhow::anyhow!("QR code does not decode: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..70u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let text = base64url(&bytes);
            assert!(!text.contains(['+', '/', '=']));
            assert_eq!(from_base64url(&text).unwrap(), bytes, "{n} bytes");
        }
        // RFC 4648 §10, in the URL alphabet and without padding.
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(b"fooba"), "Zm9vYmE");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn receipt_links_carry_the_root_and_the_receipt() {
        let root = Hash32([0xab; 32]);
        let text = receipt_link("http://node.example:8080/verify", &[1, 2, 3, 250], &root);
        assert_eq!(
            text,
            format!("http://node.example:8080/verify#{root}.AQID-g")
        );
        assert_eq!(
            parse_receipt_link(&text).unwrap(),
            (root, vec![1, 2, 3, 250])
        );
        assert!(parse_receipt_link(&link("https://a.example/v", "cd", &root)).is_err());
        assert_eq!(
            link("https://a.example/verify/?lang=en", "cd", &root),
            format!("https://a.example/verify/?lang=en&id=cd#{root}")
        );
    }
}
