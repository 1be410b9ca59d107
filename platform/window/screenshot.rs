//! `--screenshot PATH`: writes the offscreen bitmap (the last frame the game drew) as an 8-bit
//! RGB PNG when the run ends, windowed or headless. The bitmap, not the window, is captured, so
//! the picture does not depend on the window size or the display.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ScreenshotError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for ScreenshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write screenshot {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ScreenshotError {}

/// Converts BGRX pixels (memory order B, G, R, X: `0x00RRGGBB` as a little-endian `u32`) to
/// packed RGB bytes.
pub fn bgrx_to_rgb(pixels: &[u32]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(pixels.len() * 3);
    for &p in pixels {
        rgb.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
    }
    rgb
}

/// Writes `pixels` (`width * height`, row-major BGRX) to `path` as a PNG.
pub fn write_png(path: &Path, pixels: &[u32], width: u32, height: u32) -> Result<(), ScreenshotError> {
    let err = |reason: String| ScreenshotError { path: path.to_path_buf(), reason };
    if pixels.len() != width as usize * height as usize {
        return Err(err(format!("{} pixels for a {width}x{height} image", pixels.len())));
    }
    let file = File::create(path).map_err(|e| err(e.to_string()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| err(e.to_string()))?;
    writer.write_image_data(&bgrx_to_rgb(pixels)).map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgrx_becomes_rgb() {
        assert_eq!(bgrx_to_rgb(&[0x00ff_8001, 0xff00_00ff]), [0xff, 0x80, 0x01, 0x00, 0x00, 0xff]);
    }

    #[test]
    fn png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        let pixels = [0x0011_2233u32, 0x0044_5566, 0x0077_8899, 0x00aa_bbcc];
        write_png(&path, &pixels, 2, 2).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 2));
        assert_eq!(&buf[..6], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
        assert!(write_png(&path, &pixels, 3, 2).unwrap_err().to_string().contains("4 pixels for a 3x2"));
    }
}
