//! Keyboard (and scripted) input mapped into the contract's `GameInput`, Handmade Hero style:
//! each button keeps whether it ended the frame down and how many times it changed.

pub mod script;

use handmade_api::{button, GameButtonState, GameInput};

/// The keys the platform knows by name (the input script uses the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Left,
    Right,
    Up,
    Down,
    Space,
    Escape,
    /// `a`..`z` (lower case). `l` also drives live loop editing.
    Letter(u8),
}

impl Key {
    pub fn from_name(name: &str) -> Option<Key> {
        Some(match name {
            "left" => Key::Left,
            "right" => Key::Right,
            "up" => Key::Up,
            "down" => Key::Down,
            "space" => Key::Space,
            "escape" => Key::Escape,
            _ => match name.as_bytes() {
                [c] if c.is_ascii_alphabetic() => Key::Letter(c.to_ascii_lowercase()),
                _ => return None,
            },
        })
    }
}

/// Starts a new frame: buttons keep their state, transition counts restart.
pub fn begin_frame(input: &mut GameInput, frame_index: u64, dt: f32) {
    input.frame_index = frame_index;
    input.dt_for_frame = dt;
    input.controllers[0].is_connected = 1;
    let all = input.controllers.iter_mut().flat_map(|c| c.buttons.iter_mut()).chain(input.letters.iter_mut());
    for b in all {
        b.half_transition_count = 0;
    }
}

/// Applies one key change to the keyboard controller (index 0).
pub fn apply_key(input: &mut GameInput, key: Key, down: bool) {
    let keyboard = &mut input.controllers[0].buttons;
    let button = match key {
        Key::Left => &mut keyboard[button::MOVE_LEFT],
        Key::Right => &mut keyboard[button::MOVE_RIGHT],
        Key::Up => &mut keyboard[button::MOVE_UP],
        Key::Down => &mut keyboard[button::MOVE_DOWN],
        Key::Space => &mut keyboard[button::ACTION_DOWN],
        Key::Escape => &mut keyboard[button::BACK],
        Key::Letter(c) => &mut input.letters[usize::from(c - b'a')],
    };
    process_button(button, down);
}

/// Records a change of state; repeats of the same state (key auto-repeat) are not transitions.
pub fn process_button(button: &mut GameButtonState, down: bool) {
    if button.is_down() != down {
        button.ended_down = u8::from(down);
        button.half_transition_count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn press_and_release_in_one_frame_is_seen() {
        let mut input = GameInput::default();
        begin_frame(&mut input, 0, 1.0 / 60.0);
        apply_key(&mut input, Key::Space, true);
        apply_key(&mut input, Key::Space, true); // auto-repeat: no new transition
        apply_key(&mut input, Key::Space, false);
        let b = input.controllers[0].buttons[button::ACTION_DOWN];
        assert_eq!((b.half_transition_count, b.is_down(), b.was_pressed()), (2, false, true));
        begin_frame(&mut input, 1, 1.0 / 60.0);
        assert_eq!(input.controllers[0].buttons[button::ACTION_DOWN].half_transition_count, 0);
    }

    #[test]
    fn key_names() {
        assert_eq!(Key::from_name("l"), Some(Key::Letter(b'l')));
        assert_eq!(Key::from_name("right"), Some(Key::Right));
        assert_eq!(Key::from_name("F1"), None);
        let mut input = GameInput::default();
        apply_key(&mut input, Key::Letter(b'q'), true);
        assert!(input.letter('q').is_down());
    }
}
