//! The dev loop: rebuild the game on save (`rebuild`, `game_build`), live loop editing
//! (`live_loop`: record the game's state and input, replay it while code is edited), and
//! `handmade new` (`scaffold`: a game crate of one's own).

pub mod fast_build;
pub mod game_build;
pub mod live_loop;
pub mod rebuild;
pub mod scaffold;
