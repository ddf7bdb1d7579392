//! QR codes for pairing: an SVG for the API and the dashboard, and a block
//! drawing for the terminal. The encoding itself is the `qrcode` crate's.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

/// The code as a standalone SVG document (no XML prolog, so it can also be
/// inlined into HTML).
pub fn svg(data: &str) -> String {
    match QrCode::new(data.as_bytes()) {
        Ok(code) => {
            let image = code
                .render::<svg::Color<'_>>()
                .min_dimensions(256, 256)
                .quiet_zone(true)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build();
            match image.find("<svg") {
                Some(start) => image[start..].to_string(),
                None => image,
            }
        }
        // Pairing payloads are far below QR capacity; say so rather than panic.
        Err(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><text y=\"20\">QR error: {e}</text></svg>"
        ),
    }
}

/// The code drawn with half-block characters, for a terminal.
pub fn terminal(data: &str) -> Option<String> {
    let code = QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_svg_and_terminal() {
        let s = super::svg("2@abc,def,ghi");
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.contains("<path") || s.contains("<rect"));
        assert!(super::terminal("2@abc").unwrap().lines().count() > 10);
    }
}
