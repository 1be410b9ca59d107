//! The window (SDL2): shows the game's offscreen bitmap scaled to the window, and pumps SDL's
//! events into the contract's input (keyboard into controller 0, gamepads through SDL's
//! GameController into controllers 1..). Used by the frame loop unless `--headless`.
//!
//! Per frame it allocates nothing on the Rust side: events are matched by value, the bitmap is
//! uploaded into one streaming texture created at start-up, and the title is only rebuilt when
//! its text changes. Event types whose Rust conversion allocates (text input, drops) are
//! disabled at the source.

pub mod screenshot;

use std::fmt;

use handmade_api::{button, GameControllerInput, GameInput, MAX_CONTROLLERS};
use sdl2::controller::{Axis, Button, GameController};
use sdl2::event::{Event, EventType, WindowEvent};
use sdl2::keyboard::Keycode;
use sdl2::pixels::PixelFormatEnum;
use sdl2::render::{BlendMode, Canvas, Texture, TextureCreator};
use sdl2::video::{Window, WindowContext};
use sdl2::{EventPump, GameControllerSubsystem};

use crate::input::{self, Key};

/// Gamepads get controllers `1..MAX_CONTROLLERS`; index 0 is the keyboard.
const MAX_GAMEPADS: usize = MAX_CONTROLLERS - 1;

/// XInput's left-stick dead zone (as Handmade Hero uses it): inside it the stick reads 0.
const STICK_DEADZONE: f32 = 7849.0;

#[derive(Debug)]
pub struct VideoError {
    pub reason: String,
}

impl fmt::Display for VideoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot open the window: {}", self.reason)
    }
}

impl std::error::Error for VideoError {}

fn video_error(reason: impl fmt::Display) -> VideoError {
    VideoError { reason: reason.to_string() }
}

/// One open gamepad and the stick samples seen this frame (averaged at the end of the pump).
struct Gamepad {
    controller: GameController,
    stick: [i16; 2],
    stick_sum: [f32; 2],
    stick_samples: u32,
}

/// The window, its renderer and the streaming texture the bitmap is uploaded into.
pub struct Video {
    // Declared first so it is dropped first: SDL destroys a texture through its renderer.
    texture: Texture<'static>,
    _creator: TextureCreator<WindowContext>,
    canvas: Canvas<Window>,
    event_pump: EventPump,
    controllers: GameControllerSubsystem,
    gamepads: [Option<Gamepad>; MAX_GAMEPADS],
    size: (u32, u32),
    title: String,
    present_failed: bool,
}

impl Video {
    /// Opens a resizable window of `size` showing a bitmap of the same size.
    pub fn open(size: (u32, u32)) -> Result<Video, VideoError> {
        choose_renderer();
        let sdl = crate::sdl_context::sdl().map_err(video_error)?;
        let video = sdl.video().map_err(video_error)?;
        let controllers = sdl.game_controller().map_err(video_error)?;
        let window =
            video.window("handmade", size.0, size.1).position_centered().resizable().build().map_err(video_error)?;
        // No vsync: the frame loop holds the frame rate itself (and must not wait twice).
        let mut canvas = window.into_canvas().build().map_err(video_error)?;
        // Letterboxed scaling that keeps the bitmap's aspect ratio when the window is resized.
        canvas.set_logical_size(size.0, size.1).map_err(video_error)?;
        let creator = canvas.texture_creator();
        let texture = create_texture(&creator, size)?;
        // Text input events carry a heap `String` once converted; the game reads keys instead.
        video.text_input().stop();
        let mut event_pump = sdl.event_pump().map_err(video_error)?;
        for kind in [EventType::TextInput, EventType::TextEditing, EventType::DropFile, EventType::DropText] {
            event_pump.disable_event(kind);
        }
        let driver = video.current_video_driver();
        // SDL falls back to drivers that show nothing (e.g. `offscreen`, KMS without access)
        // when there is no display; a window nobody sees is not a window.
        if matches!(driver, "offscreen" | "dummy" | "evdev") {
            return Err(video_error(format!("no display (SDL video driver `{driver}`)")));
        }
        log::info!("window {}x{} ({} renderer, {driver} video)", size.0, size.1, canvas.info().name);
        Ok(Video {
            texture,
            _creator: creator,
            canvas,
            event_pump,
            controllers,
            gamepads: [const { None }; MAX_GAMEPADS],
            size,
            title: String::from("handmade"),
            present_failed: false,
        })
    }

    /// Shows `state` after the project's name in the title bar (e.g. a build error); an empty
    /// state shows the name alone. Does nothing when the title is unchanged.
    pub fn set_title(&mut self, state: &str) {
        let unchanged = if state.is_empty() {
            self.title == "handmade"
        } else {
            self.title.strip_prefix("handmade - ") == Some(state)
        };
        if !unchanged {
            let title = if state.is_empty() { String::from("handmade") } else { format!("handmade - {state}") };
            // A NUL inside the text is the only failure; the old title then stays.
            let _ = self.canvas.window_mut().set_title(&title);
            self.title = title;
        }
    }

    /// Drains SDL's event queue into `input`; returns true when the user asked to quit
    /// (window closed or Escape pressed). Call after `input::begin_frame`.
    pub fn pump_events(&mut self, input: &mut GameInput) -> bool {
        let mut quit = false;
        self.begin_stick_frame();
        while let Some(event) = self.event_pump.poll_event() {
            match event {
                Event::Quit { .. } | Event::Window { win_event: WindowEvent::Close, .. } => quit = true,
                Event::KeyDown { keycode: Some(k), repeat: false, .. } => {
                    if let Some(key) = key_from_keycode(k) {
                        input::apply_key(input, key, true);
                        quit |= key == Key::Escape;
                    }
                }
                Event::KeyUp { keycode: Some(k), .. } => {
                    if let Some(key) = key_from_keycode(k) {
                        input::apply_key(input, key, false);
                    }
                }
                Event::ControllerDeviceAdded { which, .. } => self.open_gamepad(which, input),
                Event::ControllerDeviceRemoved { which, .. } => self.close_gamepad(which, input),
                Event::ControllerButtonDown { which, button, .. } => self.gamepad_button(which, button, true, input),
                Event::ControllerButtonUp { which, button, .. } => self.gamepad_button(which, button, false, input),
                Event::ControllerAxisMotion { which, axis, value, .. } => self.gamepad_axis(which, axis, value),
                _ => {}
            }
        }
        self.end_stick_frame(input);
        quit
    }

    /// Uploads `bitmap` (BGRX, `size` pixels) and shows it scaled to the window. A failure is
    /// logged once; the game keeps running (its screenshot and sound do not need the window).
    pub fn present(&mut self, bitmap: &[u32]) {
        if let Err(e) = self.try_present(bitmap) {
            if !self.present_failed {
                log::warn!("cannot show the frame: {e}");
                self.present_failed = true;
            }
        }
    }

    fn try_present(&mut self, bitmap: &[u32]) -> Result<(), String> {
        let pitch = self.size.0 as usize * 4;
        // SAFETY: any initialised `u32` slice is also a valid byte slice of four times the
        // length, with looser alignment; it is only read for the duration of this call.
        let bytes = unsafe { std::slice::from_raw_parts(bitmap.as_ptr().cast::<u8>(), bitmap.len() * 4) };
        self.texture.update(None, bytes, pitch).map_err(|e| e.to_string())?;
        self.canvas.clear();
        self.canvas.copy(&self.texture, None, None)?;
        self.canvas.present();
        Ok(())
    }

    fn slot_of(&self, instance_id: u32) -> Option<usize> {
        self.gamepads.iter().position(|p| p.as_ref().is_some_and(|p| p.controller.instance_id() == instance_id))
    }

    fn open_gamepad(&mut self, device_index: u32, input: &mut GameInput) {
        let Some(slot) = self.gamepads.iter().position(Option::is_none) else {
            log::warn!("gamepad {device_index} ignored: {MAX_GAMEPADS} are already open");
            return;
        };
        match self.controllers.open(device_index) {
            Ok(controller) => {
                log::info!("gamepad connected: {} (controller {})", controller.name(), slot + 1);
                let c = &mut input.controllers[slot + 1];
                *c = GameControllerInput::default();
                c.is_connected = 1;
                c.is_analog = 1;
                self.gamepads[slot] =
                    Some(Gamepad { controller, stick: [0; 2], stick_sum: [0.0; 2], stick_samples: 0 });
            }
            Err(e) => log::warn!("cannot open gamepad {device_index}: {e}"),
        }
    }

    fn close_gamepad(&mut self, instance_id: u32, input: &mut GameInput) {
        if let Some(slot) = self.slot_of(instance_id) {
            log::info!("gamepad disconnected (controller {})", slot + 1);
            self.gamepads[slot] = None;
            input.controllers[slot + 1] = GameControllerInput::default();
        }
    }

    fn gamepad_button(&mut self, id: u32, b: Button, down: bool, input: &mut GameInput) {
        let (Some(slot), Some(index)) = (self.slot_of(id), button_index(b)) else {
            return;
        };
        input::process_button(&mut input.controllers[slot + 1].buttons[index], down);
    }

    fn gamepad_axis(&mut self, id: u32, axis: Axis, value: i16) {
        let Some(pad) = self.slot_of(id).and_then(|s| self.gamepads[s].as_mut()) else {
            return;
        };
        let i = match axis {
            Axis::LeftX => 0,
            Axis::LeftY => 1,
            _ => return,
        };
        pad.stick[i] = value;
        pad.stick_sum[i] += f32::from(value);
        pad.stick_samples += 1;
    }

    /// Each frame's average starts from where the stick was left.
    fn begin_stick_frame(&mut self) {
        for pad in self.gamepads.iter_mut().flatten() {
            pad.stick_sum = [f32::from(pad.stick[0]), f32::from(pad.stick[1])];
            pad.stick_samples = 1;
        }
    }

    fn end_stick_frame(&mut self, input: &mut GameInput) {
        for (slot, pad) in self.gamepads.iter().enumerate() {
            let Some(pad) = pad else { continue };
            let n = pad.stick_samples.max(1) as f32;
            let c = &mut input.controllers[slot + 1];
            c.stick_average_x = normalise_stick(pad.stick_sum[0] / n);
            // SDL's Y axis points down; the contract's (like XInput's) points up.
            c.stick_average_y = -normalise_stick(pad.stick_sum[1] / n);
        }
    }
}

/// Prefers SDL's software renderer drawing straight into the X11 window (XShm), not through
/// a GL context: the bitmap is already in memory, and measured under Xvfb the GL path makes 11
/// heap allocations per frame (Mesa and its `XGetGeometry` round trips) against 3 (libX11's
/// `XSync` reply), and keeps ~90 MiB less resident. Set at normal priority, so the
/// environment still wins (`SDL_RENDER_DRIVER=opengl` for big windows on a GPU).
fn choose_renderer() {
    sdl2::hint::set("SDL_RENDER_DRIVER", "software");
    sdl2::hint::set("SDL_FRAMEBUFFER_ACCELERATION", "0");
}

fn create_texture(creator: &TextureCreator<WindowContext>, size: (u32, u32)) -> Result<Texture<'static>, VideoError> {
    // RGB888 is SDL's XRGB8888: on little endian its bytes are B, G, R, X, the bitmap's order,
    // so the upload is a plain copy.
    let mut texture = creator.create_texture_streaming(PixelFormatEnum::RGB888, size.0, size.1).map_err(video_error)?;
    // The X byte is not alpha: never blend.
    texture.set_blend_mode(BlendMode::None);
    // SAFETY: `Texture`'s lifetime is only a marker tying it to its creator; the texture holds
    // no reference into it. `Video` declares `texture` before `_creator` and `canvas`, so it is
    // destroyed while its renderer is still alive, which is the invariant the lifetime guards.
    Ok(unsafe { std::mem::transmute::<Texture<'_>, Texture<'static>>(texture) })
}

/// Maps the stick's raw value outside the dead zone onto -1..1 (0 inside it).
fn normalise_stick(raw: f32) -> f32 {
    let range = 32767.0 - STICK_DEADZONE;
    if raw < -STICK_DEADZONE {
        ((raw + STICK_DEADZONE) / range).max(-1.0)
    } else if raw > STICK_DEADZONE {
        ((raw - STICK_DEADZONE) / range).min(1.0)
    } else {
        0.0
    }
}

/// The keys the platform knows; anything else is ignored.
fn key_from_keycode(k: Keycode) -> Option<Key> {
    Some(match k {
        Keycode::LEFT => Key::Left,
        Keycode::RIGHT => Key::Right,
        Keycode::UP => Key::Up,
        Keycode::DOWN => Key::Down,
        Keycode::SPACE => Key::Space,
        Keycode::ESCAPE => Key::Escape,
        // SDL's letter keycodes are their lower-case ASCII codes.
        _ => match u8::try_from(k.into_i32()) {
            Ok(c) if c.is_ascii_lowercase() => Key::Letter(c),
            _ => return None,
        },
    })
}

/// Where a gamepad button goes in `GameControllerInput::buttons` (Xbox layout names).
fn button_index(b: Button) -> Option<usize> {
    Some(match b {
        Button::DPadUp => button::MOVE_UP,
        Button::DPadDown => button::MOVE_DOWN,
        Button::DPadLeft => button::MOVE_LEFT,
        Button::DPadRight => button::MOVE_RIGHT,
        Button::Y => button::ACTION_UP,
        Button::A => button::ACTION_DOWN,
        Button::X => button::ACTION_LEFT,
        Button::B => button::ACTION_RIGHT,
        Button::LeftShoulder => button::LEFT_SHOULDER,
        Button::RightShoulder => button::RIGHT_SHOULDER,
        Button::Back => button::BACK,
        Button::Start => button::START,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stick_dead_zone_and_range() {
        assert_eq!(normalise_stick(0.0), 0.0);
        assert_eq!(normalise_stick(STICK_DEADZONE), 0.0);
        assert_eq!(normalise_stick(32767.0), 1.0);
        assert_eq!(normalise_stick(-32768.0), -1.0);
        assert!((normalise_stick(20_000.0) - 0.487).abs() < 0.01);
    }

    #[test]
    fn keycodes_map_to_platform_keys() {
        assert_eq!(key_from_keycode(Keycode::LEFT), Some(Key::Left));
        assert_eq!(key_from_keycode(Keycode::Q), Some(Key::Letter(b'q')));
        assert_eq!(key_from_keycode(Keycode::ESCAPE), Some(Key::Escape));
        assert_eq!(key_from_keycode(Keycode::F1), None);
        assert_eq!(key_from_keycode(Keycode::NUM_1), None);
    }

    #[test]
    fn gamepad_buttons_follow_the_contract() {
        assert_eq!(button_index(Button::A), Some(button::ACTION_DOWN));
        assert_eq!(button_index(Button::DPadRight), Some(button::MOVE_RIGHT));
        assert_eq!(button_index(Button::Guide), None);
    }
}
