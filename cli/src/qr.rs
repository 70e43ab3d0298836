//! QR codes for verifiers. Two forms:
//! - a **receipt QR**: `CACHET-R1:` followed by the receipt in Base45 (RFC 9285, QR alphanumeric
//!   mode), verifiable offline by `cachet verify --qr`;
//! - a **link QR**: a short URL (`https://node/v/<id>`) that any node's verify page resolves.
//!
//! PNG and SVG are written here; decoding (for `cachet verify --qr`) uses `rqrr`, a decoder
//! independent of the encoder.

use anyhow::{Context, Result, bail};
use qrcode::{Color, EcLevel, QrCode};
use std::path::Path;

/// Prefix of a receipt QR's text.
pub const RECEIPT_PREFIX: &str = "CACHET-R1:";

/// The QR text of a receipt.
pub fn receipt_text(receipt: &[u8]) -> String {
    format!("{RECEIPT_PREFIX}{}", base45::encode(receipt))
}

/// The receipt inside a receipt QR's text.
pub fn receipt_from_text(text: &str) -> Result<Vec<u8>> {
    let body = text
        .trim()
        .strip_prefix(RECEIPT_PREFIX)
        .context("not a Cachet receipt QR (it does not start with CACHET-R1:)")?;
    base45::decode(body).map_err(|e| anyhow::anyhow!("receipt QR is not valid Base45: {e:?}"))
}

/// Write `text` as a QR code to `out` (`.png` or `.svg`).
pub fn write(text: &str, out: &Path) -> Result<()> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .context("too much data for one QR code")?;
    match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(400, 400)
                .quiet_zone(true)
                .build();
            std::fs::write(out, svg)?;
        }
        Some("png") => write_png(&code, out)?,
        _ => bail!("the output must end in .png or .svg"),
    }
    Ok(())
}

fn write_png(code: &QrCode, out: &Path) -> Result<()> {
    const SCALE: usize = 4;
    const QUIET: usize = 4;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..modules {
        for x in 0..modules {
            if colors[y * modules + x] == Color::Dark {
                for dy in 0..SCALE {
                    let row = ((y + QUIET) * SCALE + dy) * side;
                    let start = row + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
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
