//! `GET /fonts/{fontstack}/{start}-{end}.pbf`: signed-distance-field glyphs
//! in the protobuf format MapLibre's `glyphs` URL expects, so labels need no
//! font server on the internet.
//!
//! Only Latin, digits and the other alphabetic ranges come from here: the
//! web map draws Chinese with the browser's own fonts
//! (`localIdeographFontFamily`), which no SDF range could match in size.
//! The fonts (DejaVu Sans Book and Bold, see `fonts/LICENSE.txt`) are built
//! into the binary and each 256-codepoint range is rendered once, on first
//! request.

use std::sync::OnceLock;

use axum::{
    body::Bytes,
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use crate::error::AppError;

/// The SDF parameters every MapLibre renderer assumes.
const SIZE: f32 = 24.0;
const BUFFER: usize = 3;
const RADIUS: usize = 8;
const CUTOFF: f64 = 0.25;
/// MapLibre places its locally drawn (CJK) glyphs this far above their
/// ascent; using the same offset keeps a label's digits and Latin letters on
/// the baseline of the Chinese characters beside them.
const TOP_ADJUSTMENT: f32 = 27.5;

/// Fontstack names, as a style's `text-font` spells them, and their files.
pub const FONTS: [(&str, &[u8]); 2] = [
    (
        "DejaVu Sans Book",
        include_bytes!("fonts/DejaVuSans.ttf").as_slice(),
    ),
    (
        "DejaVu Sans Bold",
        include_bytes!("fonts/DejaVuSans-Bold.ttf").as_slice(),
    ),
];
pub const REGULAR: &str = FONTS[0].0;
pub const BOLD: &str = FONTS[1].0;

const RANGES: usize = 256; // the Basic Multilingual Plane in 256-codepoint ranges

#[derive(Clone, PartialEq, prost::Message)]
struct Glyph {
    #[prost(uint32, required, tag = "1")]
    id: u32,
    #[prost(bytes = "vec", optional, tag = "2")]
    bitmap: Option<Vec<u8>>,
    #[prost(uint32, required, tag = "3")]
    width: u32,
    #[prost(uint32, required, tag = "4")]
    height: u32,
    #[prost(sint32, required, tag = "5")]
    left: i32,
    #[prost(sint32, required, tag = "6")]
    top: i32,
    #[prost(uint32, required, tag = "7")]
    advance: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Fontstack {
    #[prost(string, required, tag = "1")]
    name: String,
    #[prost(string, required, tag = "2")]
    range: String,
    #[prost(message, repeated, tag = "3")]
    glyphs: Vec<Glyph>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Glyphs {
    #[prost(message, repeated, tag = "1")]
    stacks: Vec<Fontstack>,
}

/// What a glyph request asked for that cannot be served.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GlyphError {
    #[error("font stack `{0}` (this server has {known})", known = FONTS.map(|f| f.0).join(", "))]
    UnknownFont(String),
    #[error("glyph range `{0}` is not `start-end.pbf` with start a multiple of 256, end = start + 255, below 65536")]
    BadRange(String),
}

impl From<GlyphError> for AppError {
    fn from(e: GlyphError) -> Self {
        match e {
            GlyphError::UnknownFont(_) => AppError::NotFound {
                what: e.to_string(),
            },
            GlyphError::BadRange(_) => AppError::BadRequest(e.to_string()),
        }
    }
}

/// The first font of a comma-separated stack that this server has.
pub fn font_of(stack: &str) -> Result<usize, GlyphError> {
    stack
        .split(',')
        .find_map(|name| FONTS.iter().position(|(n, _)| *n == name.trim()))
        .ok_or_else(|| GlyphError::UnknownFont(stack.to_owned()))
}

/// `0-255.pbf` → the range's index (0).
pub fn range_of(file: &str) -> Result<usize, GlyphError> {
    let bad = || GlyphError::BadRange(file.to_owned());
    let (start, end) = file
        .strip_suffix(".pbf")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let start: usize = start.parse().map_err(|_| bad())?;
    let end: usize = end.parse().map_err(|_| bad())?;
    if !start.is_multiple_of(256) || end != start + 255 || start / 256 >= RANGES {
        return Err(bad());
    }
    Ok(start / 256)
}

/// The protobuf of one range of one font: every codepoint of the range that
/// the font has, as a 24px SDF with a 3px border.
pub fn render_range(font: usize, range: usize) -> Vec<u8> {
    let (name, bytes) = FONTS[font];
    let start = (range * 256) as u32;
    let mut stack = Fontstack {
        name: name.to_owned(),
        range: format!("{start}-{}", start + 255),
        glyphs: Vec::new(),
    };
    // The fonts are compiled in; a font that does not parse is a build
    // error that the tests catch, so an empty range is the honest answer.
    if let Ok(face) = fontdue::Font::from_bytes(bytes, fontdue::FontSettings::default()) {
        for code in start..start + 256 {
            let Some(ch) = char::from_u32(code) else {
                continue;
            };
            if face.lookup_glyph_index(ch) == 0 {
                continue;
            }
            stack.glyphs.push(glyph(&face, ch));
        }
    }
    prost::Message::encode_to_vec(&Glyphs {
        stacks: vec![stack],
    })
}

fn glyph(face: &fontdue::Font, ch: char) -> Glyph {
    let (m, alpha) = face.rasterize(ch, SIZE);
    let advance = m.advance_width.round().max(0.0) as u32;
    let top = ((m.ymin + m.height as i32) as f32 - TOP_ADJUSTMENT).round() as i32;
    let bitmap = (m.width > 0 && m.height > 0)
        .then(|| {
            sdf_glyph_renderer::BitmapGlyph::from_unbuffered(&alpha, m.width, m.height, BUFFER)
                .ok()
                .and_then(|b| sdf_glyph_renderer::clamp_to_u8(&b.render_sdf(RADIUS), CUTOFF).ok())
        })
        .flatten();
    let (width, height) = if bitmap.is_some() {
        (m.width as u32, m.height as u32)
    } else {
        (0, 0)
    };
    Glyph {
        id: ch as u32,
        bitmap,
        width,
        height,
        left: m.xmin,
        top,
        advance,
    }
}

/// Each range rendered once per process.
static RENDERED: [[OnceLock<Bytes>; RANGES]; FONTS.len()] =
    [const { [const { OnceLock::new() }; RANGES] }; FONTS.len()];

async fn rendered(font: usize, range: usize) -> Result<Bytes, AppError> {
    if let Some(b) = RENDERED[font][range].get() {
        return Ok(b.clone());
    }
    // Drawn inside the blocking task: requests arriving together for a new
    // range wait on one drawing instead of each drawing it.
    tokio::task::spawn_blocking(move || {
        RENDERED[font][range]
            .get_or_init(|| Bytes::from(render_range(font, range)))
            .clone()
    })
    .await
    .map_err(|_| AppError::Unavailable("the glyphs could not be drawn".into()))
}

/// `GET /fonts/{fontstack}/{range}`
pub async fn get_glyphs(
    Path((stack, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let font = font_of(&stack)?;
    let range = range_of(&file)?;
    let bytes = rendered(font, range).await?;
    // The fonts are part of the binary: a range changes only with a release.
    let etag = format!("\"{}-{font}-{range}\"", env!("CARGO_PKG_VERSION"));
    let cache = (
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    let etag_value = crate::etag::header(&etag);
    if crate::etag::none_match(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), cache],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            ),
            (header::ETAG, etag_value),
            cache,
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn ranges_and_stacks_parse() {
        assert_eq!(range_of("0-255.pbf"), Ok(0));
        assert_eq!(range_of("65280-65535.pbf"), Ok(255));
        for bad in [
            "0-256.pbf",
            "1-256.pbf",
            "65536-65791.pbf",
            "0-255",
            "a-b.pbf",
            "-255.pbf",
        ] {
            assert!(
                matches!(range_of(bad), Err(GlyphError::BadRange(_))),
                "{bad}"
            );
        }
        assert_eq!(font_of("Open Sans Regular,DejaVu Sans Bold"), Ok(1));
        assert!(matches!(font_of("Arial"), Err(GlyphError::UnknownFont(_))));
    }

    #[test]
    fn latin_range_has_sdf_glyphs_with_metrics() {
        let decoded = Glyphs::decode(render_range(0, 0).as_slice()).expect("decodes");
        let stack = &decoded.stacks[0];
        assert_eq!(stack.name, REGULAR);
        assert_eq!(stack.range, "0-255");
        let by_id = |c: char| stack.glyphs.iter().find(|g| g.id == c as u32);
        for c in ('0'..='9').chain('A'..='Z').chain('a'..='z') {
            let g = by_id(c).unwrap_or_else(|| panic!("glyph {c}"));
            let bitmap = g.bitmap.as_ref().expect("bitmap");
            let (w, h) = (
                g.width as usize + 2 * BUFFER,
                g.height as usize + 2 * BUFFER,
            );
            assert_eq!(
                bitmap.len(),
                w * h,
                "{c}: bitmap is the glyph plus its border"
            );
            // A distance field: inside the outline above the edge value
            // (191), the border far outside it.
            assert!(bitmap.iter().any(|&v| v > 191), "{c} has an inside");
            assert!(bitmap[0] < 191, "{c}: corner is outside");
            assert!(g.advance > 0);
        }
        let space = by_id(' ').expect("space");
        assert_eq!((space.width, space.height), (0, 0));
        assert!(space.advance > 0, "a space still advances");
        // A capital sits on the baseline higher than a lower-case letter.
        assert!(by_id('H').map(|g| g.top) > by_id('x').map(|g| g.top));
    }

    #[test]
    fn a_range_the_font_lacks_is_an_empty_stack() {
        // U+4E00..: CJK, drawn by the browser's fonts.
        let decoded = Glyphs::decode(render_range(0, 0x4e).as_slice()).expect("decodes");
        assert_eq!(decoded.stacks.len(), 1);
        assert!(decoded.stacks[0].glyphs.is_empty());
    }
}
