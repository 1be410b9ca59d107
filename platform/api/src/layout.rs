//! Layout fingerprints (issue 10.1): a `u64` the compiler computes from a type itself, so the
//! platform can tell whether a new game library reads the state the old one left exactly as it
//! was written. `#[derive(StateLayout)]` mixes a struct's name, size, alignment and, for every
//! field, its name, offset and the field type's own fingerprint; nobody keeps a list by hand.
//!
//! ```
//! use handmade_api::StateLayout;
//! #[derive(StateLayout)]
//! struct Player { x: f32, lives: u8 }
//! #[derive(StateLayout)]
//! struct Renamed { x: f32, hearts: u8 }
//! assert_ne!(Player::FINGERPRINT, Renamed::FINGERPRINT);
//! ```
//!
//! Enums must be fieldless (their variants' names and discriminants are mixed), and every
//! field's type must implement `StateLayout` itself:
//!
//! ```compile_fail
//! #[derive(handmade_api::StateLayout)]
//! enum Shape { Circle(f32), Square(f32) }
//! ```
//! ```compile_fail
//! #[derive(handmade_api::StateLayout)]
//! struct Names { all: String }
//! ```

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

/// A type whose layout is summed up in `FINGERPRINT`: equal fingerprints mean one type's bytes
/// can be read as the other's.
///
/// # Safety
/// `unsafe` because `old_state` reinterprets another library's bytes on the strength of this
/// value: two types with the same fingerprint must have the same size, alignment and field
/// offsets, and every value of one must be a valid value of the other (so the fingerprint has
/// to change when a field's type, and therefore its valid bit patterns, changes). Use the
/// derive; a hand impl mixes at least the type's name, size, alignment and the fingerprints of
/// everything it contains, as the impls in this module do.
pub unsafe trait StateLayout {
    const FINGERPRINT: u64;
}

/// FNV-1a 64 as a `const fn` builder; what the derive and `LAYOUT_HASH` mix with.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub const fn u64(mut self, value: u64) -> Self {
        let mut i = 0;
        while i < 8 {
            self.0 ^= (value >> (i * 8)) & 0xff;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        self
    }

    pub const fn usize(self, value: usize) -> Self {
        self.u64(value as u64)
    }

    /// The length first, so `("ab", "c")` and `("a", "bc")` mix differently.
    pub const fn str(mut self, text: &str) -> Self {
        let bytes = text.as_bytes();
        self = self.usize(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            self.0 ^= bytes[i] as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        self
    }

    /// What every fingerprint starts with.
    pub const fn item(self, name: &str, size: usize, align: usize) -> Self {
        self.str(name).usize(size).usize(align)
    }

    pub const fn field(self, name: &str, offset: usize, fingerprint: u64) -> Self {
        self.str(name).usize(offset).u64(fingerprint)
    }

    pub const fn variant(self, name: &str, discriminant: u64) -> Self {
        self.str(name).u64(discriminant)
    }

    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! primitive_layout {
    ($($t:ty),*) => {$(
        // SAFETY: the name tells the primitives apart (`u32`/`f32`/`i32` share size and
        // alignment but not their meaning; `bool`/`char` not their valid values).
        unsafe impl StateLayout for $t {
            const FINGERPRINT: u64 = Fnv::new().item(stringify!($t), size_of::<$t>(), align_of::<$t>()).finish();
        }
    )*};
}

primitive_layout!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, ());

// SAFETY: an array is its element repeated `N` times: the element's fingerprint and `N` decide.
unsafe impl<T: StateLayout, const N: usize> StateLayout for [T; N] {
    const FINGERPRINT: u64 =
        Fnv::new().item("array", size_of::<Self>(), align_of::<Self>()).usize(N).u64(T::FINGERPRINT).finish();
}

// SAFETY: a slice has no size of its own; references to it mix their own size (a fat pointer).
unsafe impl<T: StateLayout> StateLayout for [T] {
    const FINGERPRINT: u64 = Fnv::new().str("slice").u64(T::FINGERPRINT).finish();
}

// SAFETY: any initialised bits are a valid raw pointer, whatever it points at, so the pointee
// is left out (`*mut u8` needs no impl for `u8`'s contents). The size tells thin from fat.
unsafe impl<T: ?Sized> StateLayout for *const T {
    const FINGERPRINT: u64 = Fnv::new().item("ptr", size_of::<Self>(), align_of::<Self>()).finish();
}

// SAFETY: as for `*const T`.
unsafe impl<T: ?Sized> StateLayout for *mut T {
    const FINGERPRINT: u64 = Fnv::new().item("ptr", size_of::<Self>(), align_of::<Self>()).finish();
}

// SAFETY: a reference must point at a valid `T`, so the pointee's fingerprint is mixed in.
unsafe impl<T: ?Sized + StateLayout> StateLayout for &T {
    const FINGERPRINT: u64 = Fnv::new().item("ref", size_of::<Self>(), align_of::<Self>()).u64(T::FINGERPRINT).finish();
}

// SAFETY: as for `&T`.
unsafe impl<T: ?Sized + StateLayout> StateLayout for &mut T {
    const FINGERPRINT: u64 = Fnv::new().item("ref", size_of::<Self>(), align_of::<Self>()).u64(T::FINGERPRINT).finish();
}

// SAFETY: zero-sized with one value; what it marks does not change any bytes.
unsafe impl<T: ?Sized> StateLayout for PhantomData<T> {
    const FINGERPRINT: u64 = Fnv::new().item("PhantomData", size_of::<Self>(), align_of::<Self>()).finish();
}

// SAFETY: `Option<T>`'s layout (tag or niche) is a function of `T`'s, whose fingerprint is
// mixed in, for one compiler. Like every `repr(Rust)` layout it is not promised across
// compiler versions (a niche could move at equal size); the dev loop rebuilds the game with
// the toolchain that built the old one.
unsafe impl<T: StateLayout> StateLayout for Option<T> {
    const FINGERPRINT: u64 =
        Fnv::new().item("Option", size_of::<Self>(), align_of::<Self>()).u64(T::FINGERPRINT).finish();
}

#[cfg(test)]
mod tests {
    use crate::StateLayout;

    // Versions of one struct, each in a module of its own as a game keeps old shapes.
    mod base {
        #[derive(Clone, Copy, crate::StateLayout)]
        pub struct S {
            pub x: u32,
            pub y: f32,
        }
    }
    mod same {
        /// Attributes on the struct and on fields are allowed.
        #[repr(C)]
        #[derive(Clone, Copy, crate::StateLayout)]
        pub struct S {
            /// a doc comment is an attribute too
            #[allow(dead_code)]
            pub x: u32,
            pub(crate) y: f32,
        }
    }
    mod added {
        #[derive(crate::StateLayout)]
        pub struct S {
            pub x: u32,
            pub y: f32,
            pub z: u8,
        }
    }
    mod removed {
        #[derive(crate::StateLayout)]
        pub struct S {
            pub x: u32,
        }
    }
    mod renamed {
        #[derive(crate::StateLayout)]
        pub struct S {
            pub x: u32,
            pub w: f32,
        }
    }
    mod reordered {
        #[derive(crate::StateLayout)]
        pub struct S {
            pub y: f32,
            pub x: u32,
        }
    }
    mod retyped {
        #[derive(Clone, Copy, crate::StateLayout)]
        pub struct S {
            pub x: i32,
            pub y: f32,
        }
    }
    mod cfg_out {
        #[derive(crate::StateLayout)]
        pub struct S {
            pub x: u32,
            pub y: f32,
            #[cfg(any())]
            pub z: u8,
        }
    }

    #[derive(StateLayout)]
    struct Outer<'a, T: Copy, const N: usize> {
        inner: T,
        more: [T; N],
        borrowed: &'a mut [u16],
        raw: *mut u8,
        maybe: Option<u32>,
    }

    #[derive(StateLayout)]
    struct Tuple(u32, f32);

    #[derive(StateLayout)]
    struct Where<T>
    where
        T: Copy,
    {
        t: T,
    }

    #[derive(StateLayout)]
    struct TupleWhere<T>(T)
    where
        T: Copy;

    #[derive(StateLayout)]
    struct Unit;

    #[allow(dead_code)]
    #[repr(i32)]
    #[derive(StateLayout)]
    enum Mode {
        A = 0,
        B = 1,
    }

    mod mode_renumbered {
        #[allow(dead_code)]
        #[repr(i32)]
        #[derive(crate::StateLayout)]
        pub enum Mode {
            A = 0,
            B = 2,
        }
    }

    #[test]
    fn the_same_shape_has_the_same_fingerprint_wherever_it_is_declared() {
        assert_eq!(base::S::FINGERPRINT, base::S::FINGERPRINT);
        assert_eq!(base::S::FINGERPRINT, same::S::FINGERPRINT);
        assert_eq!(base::S::FINGERPRINT, cfg_out::S::FINGERPRINT, "a field compiled out is not there");
    }

    #[test]
    fn adding_removing_renaming_reordering_or_retyping_a_field_changes_it() {
        let versions = [
            base::S::FINGERPRINT,
            added::S::FINGERPRINT,
            removed::S::FINGERPRINT,
            renamed::S::FINGERPRINT,
            reordered::S::FINGERPRINT,
            retyped::S::FINGERPRINT,
        ];
        for (i, a) in versions.iter().enumerate() {
            for b in &versions[i + 1..] {
                assert_ne!(a, b, "{versions:x?}");
            }
        }
    }

    #[test]
    fn a_nested_change_propagates() {
        type Before = Outer<'static, base::S, 2>;
        type After = Outer<'static, retyped::S, 2>;
        assert_ne!(Before::FINGERPRINT, After::FINGERPRINT);
        assert_ne!(Before::FINGERPRINT, <Outer<'static, base::S, 3>>::FINGERPRINT, "array length");
        assert_ne!(<&[base::S]>::FINGERPRINT, <&[added::S]>::FINGERPRINT, "through a reference");
        assert_ne!(<Option<base::S>>::FINGERPRINT, <Option<renamed::S>>::FINGERPRINT);
    }

    #[test]
    fn primitives_differ_by_name_pointers_do_not_by_pointee() {
        assert_ne!(u32::FINGERPRINT, f32::FINGERPRINT);
        assert_ne!(u8::FINGERPRINT, bool::FINGERPRINT);
        assert_eq!(<*mut u8>::FINGERPRINT, <*const Tuple>::FINGERPRINT);
        assert_ne!(<*mut u8>::FINGERPRINT, <*mut [u8]>::FINGERPRINT, "a fat pointer is larger");
        assert_ne!(<&u8>::FINGERPRINT, <&u16>::FINGERPRINT, "a reference's pointee must be valid");
    }

    #[test]
    fn tuple_unit_and_enum_shapes_are_fingerprinted() {
        assert_ne!(Tuple::FINGERPRINT, Unit::FINGERPRINT);
        assert_ne!(<Where<u8>>::FINGERPRINT, <TupleWhere<u8>>::FINGERPRINT);
        assert_ne!(<Where<u8>>::FINGERPRINT, <Where<i8>>::FINGERPRINT);
        assert_ne!(Mode::FINGERPRINT, mode_renumbered::Mode::FINGERPRINT, "a discriminant changed");
        assert_ne!(Mode::FINGERPRINT, i32::FINGERPRINT);
    }
}
