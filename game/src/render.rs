//! Draws the frame into the platform's offscreen bitmap: a gradient and the player.

use handmade_api::{GameMemory, GameOffscreenBuffer};

use crate::state::GameState;

pub fn draw(state: &GameState, _memory: &GameMemory, buffer: &mut GameOffscreenBuffer) {
    let (w, h) = (buffer.width as usize, buffer.height as usize);
    let pitch = buffer.pitch as usize;
    let pixels = buffer.pixels_mut();
    for y in 0..h {
        let row = &mut pixels[y * pitch..y * pitch + w];
        for (x, p) in row.iter_mut().enumerate() {
            let blue = (x * 255 / w.max(1)) as u32;
            let green = (y * 255 / h.max(1)) as u32;
            *p = (green << 8) | blue | 0x0020_0000;
        }
    }
    let size = (h / 12).max(4);
    let px = ((w - size) as f32 * state.player_x) as usize;
    let py = ((h - size) as f32 * state.player_y) as usize;
    for y in py..py + size {
        pixels[y * pitch + px..y * pitch + px + size].fill(0x00ff_ffff);
    }
}
