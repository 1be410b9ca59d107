//! The one SDL context of the process, shared by the window (video/input) and the SDL audio
//! backend. `sdl2::init` may only be live once, so both ask here.

use std::cell::RefCell;

thread_local! {
    // SDL is driven from the frame thread only; its context is `!Send`.
    static SDL: RefCell<Option<sdl2::Sdl>> = const { RefCell::new(None) };
}

/// The SDL context, initialised on first use (on the calling thread, which must be the frame
/// thread). Errors are SDL's own message.
pub fn sdl() -> Result<sdl2::Sdl, String> {
    SDL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if let Some(sdl) = slot.as_ref() {
            return Ok(sdl.clone());
        }
        let sdl = sdl2::init()?;
        *slot = Some(sdl.clone());
        Ok(sdl)
    })
}
