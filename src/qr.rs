//! QR codes of short URLs, as SVG or PNG, at error-correction level M (a QR code stays
//! readable with about 15 % of it damaged or covered).

use qrcode::{Color, EcLevel, QrCode};

/// Smallest image side, in pixels.
pub const MIN_SIZE: u32 = 64;
/// Largest image side, in pixels.
pub const MAX_SIZE: u32 = 2048;
/// Image side when none is asked for.
pub const DEFAULT_SIZE: u32 = 256;
/// The blank border QR readers need, in modules.
const QUIET_ZONE: u32 = 4;

/// An image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// A greyscale PNG.
    Png,
}

impl Format {
    /// The format of a `format=` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "svg" => Some(Self::Svg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }
}

/// The QR code of `text` as an image about `size` pixels wide (at least one pixel a module,
/// so a long URL may come out larger).
pub fn render(text: &str, format: Format, size: u32) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    Ok(match format {
        Format::Svg => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(size, size)
            .quiet_zone(true)
            .build()
            .into_bytes(),
        Format::Png => png(&code, size)?,
    })
}

/// A greyscale PNG: each module a square of whole pixels, with the quiet zone around.
fn png(code: &QrCode, size: u32) -> anyhow::Result<Vec<u8>> {
    let modules = code.width() as u32;
    let side = modules + 2 * QUIET_ZONE;
    let scale = (size / side).max(1);
    let px = side * scale;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; (px * px) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % modules, i as u32 / modules);
        for y in 0..scale {
            let row = ((my + QUIET_ZONE) * scale + y) * px;
            let start = (row + (mx + QUIET_ZONE) * scale) as usize;
            pixels[start..start + scale as usize].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, px, px);
    encoder.set_color(::png::ColorType::Grayscale);
    encoder.set_depth(::png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_png(bytes: &[u8]) -> (u32, Vec<u8>) {
        let decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, info.height);
        (info.width, buf)
    }

    #[test]
    fn a_png_decodes_back_to_the_text() {
        let url = "http://127.0.0.1:8080/AbC1234";
        let png = render(url, Format::Png, 256).unwrap();
        let (side, pixels) = decode_png(&png);
        assert!(side <= 256 && side > 128, "{side}");
        let mut img =
            rqrr::PreparedImage::prepare_from_greyscale(side as usize, side as usize, |x, y| {
                pixels[y * side as usize + x]
            });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (meta, content) = grids[0].decode().unwrap();
        assert_eq!(content, url);
        // Level M.
        assert_eq!(meta.ecc_level, 0);
    }

    #[test]
    fn an_svg_is_an_svg_of_about_the_size_asked() {
        let svg =
            String::from_utf8(render("https://s.example/x", Format::Svg, 300).unwrap()).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("width=\"3"), "{}", &svg[..200.min(svg.len())]);
    }

    #[test]
    fn a_tiny_size_still_gives_one_pixel_a_module() {
        let (side, _) = decode_png(&render("https://s.example/x", Format::Png, 1).unwrap());
        assert!(side >= 21 + 8, "{side}");
    }
}
