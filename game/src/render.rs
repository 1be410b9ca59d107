//! Draws the frame into the platform's offscreen bitmap: the playfield (pitch guides, the
//! player), an oscilloscope of the last sound written, the audio-sync display (Handmade Hero
//! day 20) and a small HUD (volume, waveform, echo, loop voices). No text: colours and bars.

use handmade_api::{AudioSyncRing, GameMemory, GameOffscreenBuffer};

use crate::controls::Waveform;
use crate::sound::SCOPE_FRAMES;
use crate::state::{GameState, MAX_VOLUME};

const WHITE: u32 = 0x00ff_ffff;
const SCOPE_LEFT: u32 = 0x0040_ff80;
const SCOPE_RIGHT: u32 = 0x00ff_9040;
const PANEL: u32 = 0x0008_0c14;
const GUIDE: u32 = 0x0030_4060;

/// The bitmap as a plain pixel grid with clipped drawing helpers.
struct Canvas<'p> {
    pixels: &'p mut [u32],
    width: i32,
    height: i32,
    pitch: usize,
}

impl Canvas<'_> {
    fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, color: u32) {
        let (x0, x1) = (x0.clamp(0, self.width), x1.clamp(0, self.width));
        let (y0, y1) = (y0.clamp(0, self.height), y1.clamp(0, self.height));
        for y in y0..y1 {
            let row = y as usize * self.pitch;
            self.pixels[row + x0 as usize..row + x1 as usize].fill(color);
        }
    }

    fn plot(&mut self, x: i32, y: i32, color: u32) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[y as usize * self.pitch + x as usize] = color;
        }
    }

    /// A vertical run from `y0` to `y1` (either order), so traces have no gaps.
    fn vline(&mut self, x: i32, y0: i32, y1: i32, color: u32) {
        let (a, b) = if y0 <= y1 { (y0, y1) } else { (y1, y0) };
        self.fill_rect(x, a, x + 1, b + 1, color);
    }
}

/// Where things go: the scope on top, the HUD under it, the playfield, the sync display last.
struct Layout {
    scope: (i32, i32),
    hud_top: i32,
    /// Top and bottom rows the player square may occupy.
    field: (i32, i32),
    sync: (i32, i32),
}

impl Layout {
    fn for_size(height: i32) -> Self {
        let scope_bottom = height / 4;
        let sync_top = height - (height / 7).max(8);
        Layout {
            scope: (0, scope_bottom),
            hud_top: scope_bottom + 6,
            field: (scope_bottom + 28, sync_top - 6),
            sync: (sync_top, height),
        }
    }
}

pub fn draw(state: &GameState, memory: &GameMemory, buffer: &mut GameOffscreenBuffer) {
    let (width, height, pitch) = (buffer.width as i32, buffer.height as i32, buffer.pitch as usize);
    let mut canvas = Canvas { pixels: buffer.pixels_mut(), width, height, pitch };
    if canvas.pixels.len() < pitch * height as usize || width < 64 || height < 64 {
        return;
    }
    let layout = Layout::for_size(height);
    draw_background(&mut canvas, &layout);
    draw_player(&mut canvas, &layout, state);
    draw_scope(&mut canvas, state, layout.scope.0, layout.scope.1);
    // SAFETY: the platform points `audio_sync` at its ring (or leaves it null) and keeps it
    // alive and unchanged for the duration of this call.
    if let Some(ring) = unsafe { memory.audio_sync.as_ref() } {
        draw_audio_sync(&mut canvas, ring, layout.sync.0, layout.sync.1);
    }
    draw_hud(&mut canvas, state, &layout);
}

/// A dark gradient with guides at 512, 256 and 128 Hz (top, centre, bottom of the playfield).
fn draw_background(c: &mut Canvas<'_>, layout: &Layout) {
    let (w, h) = (c.width as usize, c.height as u32);
    // One row of the blue ramp, then each row ORs its green in (a loop the compiler vectorises).
    let mut ramp = [0u32; 7680]; // the platform's widest bitmap
    let w = w.min(ramp.len());
    for (x, b) in ramp[..w].iter_mut().enumerate() {
        *b = 0x0010_0000 | (24 + (x * 64 / w) as u32);
    }
    for y in 0..h {
        let green = (y * 48 / h) << 8;
        let row = y as usize * c.pitch;
        for (p, &b) in c.pixels[row..row + w].iter_mut().zip(&ramp[..w]) {
            *p = b | green;
        }
    }
    let size = player_size(layout);
    for guide in [0.0, 0.5, 1.0] {
        let y = field_y(layout, guide, size) + size / 2;
        c.fill_rect(0, y, c.width, y + 1, GUIDE);
    }
}

fn player_size(layout: &Layout) -> i32 {
    ((layout.field.1 - layout.field.0) / 8).max(4)
}

/// The top row of the player square for a height 0..1.
fn field_y(layout: &Layout, y: f32, size: i32) -> i32 {
    layout.field.0 + ((layout.field.1 - layout.field.0 - size) as f32 * y) as i32
}

fn draw_player(c: &mut Canvas<'_>, layout: &Layout, state: &GameState) {
    let size = player_size(layout);
    let px = ((c.width - 28 - size) as f32 * state.controls.player_x) as i32;
    let py = field_y(layout, state.controls.player_y, size);
    let color = waveform_color(state.controls.waveform);
    c.fill_rect(px - 2, py - 2, px + size + 2, py + size + 2, WHITE);
    c.fill_rect(px, py, px + size, py + size, color);
}

fn waveform_color(w: Waveform) -> u32 {
    match w {
        Waveform::Sine => 0x0040_c0ff,
        Waveform::Square => 0x00ff_6060,
        Waveform::Saw => 0x00ff_d040,
        Waveform::Triangle => 0x0060_ff60,
    }
}

/// The last sound written (shown at twice its size: the tone peaks at 0.25), both channels, starting at a rising zero crossing of the left one
/// so a steady tone stands still.
fn draw_scope(c: &mut Canvas<'_>, state: &GameState, top: i32, bottom: i32) {
    c.fill_rect(0, top, c.width, bottom, PANEL);
    let mid = (top + bottom) / 2;
    c.fill_rect(0, mid, c.width, mid + 1, GUIDE);
    let s = &state.sound;
    let shown = (c.width as usize).min(SCOPE_FRAMES / 2);
    let written = s.scope_written as usize;
    if written < SCOPE_FRAMES {
        return;
    }
    let at = |k: usize, ch: usize| s.scope[ch][(written - SCOPE_FRAMES + k) % SCOPE_FRAMES];
    let search = SCOPE_FRAMES - shown;
    let start = (1..search).find(|&k| at(k - 1, 0) < 0.0 && at(k, 0) >= 0.0).unwrap_or(search);
    let scale = (bottom - top) as f32 * 0.5;
    let step = c.width as f32 / shown as f32;
    for (ch, color) in [(1, SCOPE_RIGHT), (0, SCOPE_LEFT)] {
        let y = |k: usize| mid - ((2.0 * at(start + k, ch)).clamp(-1.0, 1.0) * scale) as i32;
        for k in 1..shown {
            c.vline((k as f32 * step) as i32, y(k - 1), y(k), color);
        }
    }
}

/// One row per frame (oldest at the top): where the device was (white, left edge), what was
/// queued ahead of it (grey), what this frame wrote (yellow), and the expected frame boundary
/// (red). The width stands for the device buffer, or a tenth of a second without a device.
fn draw_audio_sync(c: &mut Canvas<'_>, ring: &AudioSyncRing, top: i32, bottom: i32) {
    c.fill_rect(0, top, c.width, bottom, PANEL);
    let window =
        if ring.device_buffer_frames > 0 { ring.device_buffer_frames } else { ring.samples_per_second.max(1000) / 10 };
    let span = (c.width - 1) as f32;
    let x_of = |frames: u64| ((frames as f32 / window as f32) * span) as i32;
    let rows = (bottom - top).max(1);
    let shown = ring.iter().count() as i32;
    for (i, m) in ring.iter().enumerate() {
        let y = top + (rows - shown).max(0) + i as i32;
        let queued = u64::from(m.queued_frames);
        let written_end = queued + u64::from(m.frames_written);
        let boundary = m.expected_frame_boundary.wrapping_sub(m.write_cursor).wrapping_add(queued);
        c.fill_rect(0, y, x_of(queued), y + 1, 0x0050_5050);
        c.fill_rect(x_of(queued), y, x_of(written_end).max(x_of(queued) + 1), y + 1, 0x00e0_c020);
        c.plot(0, y, WHITE);
        c.plot(x_of(boundary), y, 0x00ff_3030);
    }
}

/// Volume bar (right edge), waveform selector, echo and loop-voice lamps (below the scope).
fn draw_hud(c: &mut Canvas<'_>, state: &GameState, layout: &Layout) {
    let controls = &state.controls;
    let top = layout.hud_top;
    let (bar_top, bar_bottom) = layout.field;
    let filled = ((bar_bottom - bar_top) as f32 * controls.volume / MAX_VOLUME) as i32;
    c.fill_rect(c.width - 20, bar_top, c.width - 8, bar_bottom, PANEL);
    c.fill_rect(c.width - 18, bar_bottom - filled, c.width - 10, bar_bottom, 0x0080_e0ff);
    for (i, w) in [Waveform::Sine, Waveform::Square, Waveform::Saw, Waveform::Triangle].into_iter().enumerate() {
        let x = 8 + i as i32 * 20;
        let selected = w == controls.waveform;
        c.fill_rect(x, top, x + 16, top + 16, if selected { WHITE } else { PANEL });
        c.fill_rect(x + 3, top + 3, x + 13, top + 13, waveform_color(w));
    }
    let echo = if controls.tone_echo { 0x00c0_80ff } else { PANEL };
    c.fill_rect(96, top, 112, top + 16, echo);
    for v in 0..state.mixer.active_voices() as i32 {
        c.fill_rect(124 + v * 10, top + 4, 132 + v * 10, top + 12, 0x00ff_ffa0);
    }
    if state.mixer.is_looping() {
        c.fill_rect(120, top, 122, top + 16, WHITE);
    }
    #[cfg(feature = "state-grow")]
    draw_reloads_seen(c, state.reloads_seen, top);
}

/// The `state-grow` variant's extra field, so a migrated state is seen to carry it: one lamp
/// per reload lived through (up to 16), right of the loop voices.
#[cfg(feature = "state-grow")]
fn draw_reloads_seen(c: &mut Canvas<'_>, reloads_seen: u64, top: i32) {
    for r in 0..reloads_seen.min(16) as i32 {
        c.fill_rect(220 + r * 8, top + 4, 226 + r * 8, top + 12, 0x00ff_60ff);
    }
}
