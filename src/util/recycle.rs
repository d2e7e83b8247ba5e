//! Per-thread recycling of the two heap blocks a proxied request holds for its whole life:
//! the request's future on the plain HTTP/1.1 server (kilobytes, boxed so that an idle
//! connection holds only a few hundred bytes) and a member's response-body state (boxed
//! because the response moves through several `async fn` layers).
//!
//! A dropped [`Recycled`] block goes to a small cache on the thread that dropped it, and the
//! next request on that thread takes it back: in steady state neither block costs an
//! allocator call. [`take_vec`] and [`give_vec`] do the same for the field indexes of the
//! request's and the member's heads (small `Vec`s). The cache keeps at most [`CACHED_PER_LAYOUT`] blocks of each layout, so a
//! burst of requests leaves little behind. (HAProxy's per-thread pools do the same for its
//! streams and buffers; `tests/alloc_per_request.rs` counts what remains per request.)

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Blocks kept per layout and thread: more than the requests a thread usually has in
/// flight at once, and ~112 KiB for the request futures (3.5 KiB each).
const CACHED_PER_LAYOUT: usize = 32;

/// Layouts cached per thread (two are in use).
const LAYOUTS: usize = 4;

/// One thread's cached blocks, by layout.
struct Cache {
    lists: Vec<(Layout, Vec<NonNull<u8>>)>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        for (layout, blocks) in self.lists.drain(..) {
            for p in blocks {
                poison(p, layout, false);
                // SAFETY: every cached block was allocated with `layout` and is owned by the
                // cache alone.
                unsafe { dealloc(p.as_ptr(), layout) };
            }
        }
    }
}

/// Marks a cached block as unusable for AddressSanitizer (the `asan` feature, built by
/// `.ci/sanitize`): a use after it was given back is then reported as one, where a cache
/// that never frees would otherwise hide it.
fn poison(p: NonNull<u8>, layout: Layout, on: bool) {
    #[cfg(feature = "asan")]
    {
        unsafe extern "C" {
            fn __asan_poison_memory_region(addr: *const u8, size: usize);
            fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
        }
        // SAFETY: `p` points to a block of `layout.size()` bytes owned by the cache or its
        // taker; (un)poisoning only changes ASan's shadow bytes for it.
        unsafe {
            if on {
                __asan_poison_memory_region(p.as_ptr(), layout.size());
            } else {
                __asan_unpoison_memory_region(p.as_ptr(), layout.size());
            }
        }
    }
    #[cfg(not(feature = "asan"))]
    let _ = (p, layout, on);
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache { lists: Vec::new() }) };
}

/// A block of `layout` (non-zero size): a cached one, else a new one.
fn take(layout: Layout) -> NonNull<u8> {
    let cached = CACHE
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let (_, blocks) = c.lists.iter_mut().find(|(l, _)| *l == layout)?;
            blocks.pop()
        })
        .ok()
        .flatten();
    if let Some(p) = cached {
        poison(p, layout, false);
    }
    cached.unwrap_or_else(|| {
        // SAFETY: `layout` has a non-zero size (checked by the caller).
        let p = unsafe { alloc(layout) };
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
    })
}

/// Gives a block of `layout` back: cached when there is room, else freed.
///
/// # Safety
/// `p` was allocated with `layout` and nothing uses it any more.
unsafe fn give(p: NonNull<u8>, layout: Layout) {
    let kept = CACHE
        .try_with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return false;
            };
            if let Some((_, blocks)) = c.lists.iter_mut().find(|(l, _)| *l == layout) {
                if blocks.len() < CACHED_PER_LAYOUT {
                    poison(p, layout, true);
                    blocks.push(p);
                    return true;
                }
                return false;
            }
            if c.lists.len() < LAYOUTS {
                let mut blocks = Vec::with_capacity(CACHED_PER_LAYOUT);
                poison(p, layout, true);
                blocks.push(p);
                c.lists.push((layout, blocks));
                return true;
            }
            false
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: allocated with `layout` (the caller's promise) and not cached.
        unsafe { dealloc(p.as_ptr(), layout) };
    }
}

/// An owned value on the heap, like `Box<T>`, whose block is recycled on its thread when
/// dropped. Pin it with [`Recycled::into_pin`] to poll a future in it.
pub struct Recycled<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: `Recycled<T>` owns its `T` exactly as `Box<T>` does; the block's memory is plain
// heap memory any thread may free or cache.
unsafe impl<T: Send> Send for Recycled<T> {}
// SAFETY: as for `Box<T>`: shared access only hands out `&T`.
unsafe impl<T: Sync> Sync for Recycled<T> {}

// The value never moves out of its block while the `Recycled` lives (as with `Box<T>`,
// which is `Unpin` for every `T`); `Pin<Recycled<T>>` guards `!Unpin` values.
impl<T> Unpin for Recycled<T> {}

impl<T> Recycled<T> {
    /// Moves `value` into a recycled (or new) block.
    pub fn new(value: T) -> Self {
        Self::write(Recycled::new_uninit(), value)
    }

    /// Writes `value` into `block`, which was taken first: `Recycled::write(
    /// Recycled::new_uninit(), make())` builds a large value (a future) in its block, where
    /// `Recycled::new(make())` would build it on the stack and copy it (kilobytes).
    #[inline(always)]
    pub fn write(block: Recycled<MaybeUninit<T>>, value: T) -> Self {
        let ptr = block.ptr.cast::<T>();
        std::mem::forget(block);
        // SAFETY: the block is valid for writes of a `T` (`MaybeUninit<T>` has its layout);
        // it is owned by the `Recycled` made here, `block` having been forgotten.
        unsafe { ptr.as_ptr().write(value) };
        Recycled {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Pins the value in its block (a future to poll).
    pub fn into_pin(this: Self) -> std::pin::Pin<Self> {
        // SAFETY: the value stays in its block until dropped in place by `Drop`; nothing
        // moves it out.
        unsafe { std::pin::Pin::new_unchecked(this) }
    }
}

impl<T> Recycled<MaybeUninit<T>> {
    /// A recycled (or new) block for a `T`, not yet written.
    #[inline(always)]
    pub fn new_uninit() -> Self {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            take(layout).cast::<MaybeUninit<T>>()
        };
        Recycled {
            ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for Recycled<T> {
    fn drop(&mut self) {
        let layout = Layout::new::<T>();
        // SAFETY: the block holds a live `T`, dropped once here; then nothing uses it.
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            if layout.size() != 0 {
                give(self.ptr.cast(), layout);
            }
        }
    }
}

impl<T> Deref for Recycled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the block holds a live `T` owned by `self`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for Recycled<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the block holds a live `T` owned (uniquely) by `self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Recycled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// The largest `Vec` capacity [`give_vec`] keeps (a head of more fields is rare).
const MAX_CACHED_VEC: usize = 128;

/// The capacity a new `Vec` for [`take_vec`] gets at least: enough for most heads, so that a
/// recycled one rarely has to grow.
const MIN_NEW_VEC: usize = 16;

/// A per-thread cache of empty `Vec<T>` buffers, for [`take_vec`] and [`give_vec`].
pub type VecCache<T> = std::thread::LocalKey<RefCell<Vec<Vec<T>>>>;

/// An empty `Vec` with room for `capacity` items: a recycled one when `cache` has one.
pub fn take_vec<T>(cache: &'static VecCache<T>, capacity: usize) -> Vec<T> {
    let cached = cache
        .try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop()))
        .ok()
        .flatten();
    match cached {
        Some(mut v) => {
            v.reserve(capacity);
            v
        }
        None => Vec::with_capacity(capacity.max(MIN_NEW_VEC)),
    }
}

/// Gives a `Vec`'s buffer back to `cache` (its items are dropped); freed instead when the
/// cache is full or the buffer is large.
pub fn give_vec<T>(cache: &'static VecCache<T>, mut v: Vec<T>) {
    if v.capacity() == 0 || v.capacity() > MAX_CACHED_VEC {
        return;
    }
    v.clear();
    let _ = cache.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && c.len() < CACHED_PER_LAYOUT
        {
            c.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_dropped_block_is_reused_and_its_value_dropped() {
        let marker = Rc::new(());
        let a = Recycled::new((Rc::clone(&marker), [7u64; 32]));
        assert_eq!(a.1[31], 7);
        let first = a.ptr.cast::<u8>();
        drop(a);
        assert_eq!(Rc::strong_count(&marker), 1, "the value was dropped");
        let b = Recycled::new((Rc::clone(&marker), [9u64; 32]));
        assert_eq!(b.ptr.cast::<u8>(), first, "the block came back");
        assert_eq!(b.1[0], 9);
    }

    thread_local! {
        static VECS: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn vec_buffers_come_back_empty_and_bounded() {
        let mut v = take_vec(&VECS, 3);
        assert!(v.capacity() >= MIN_NEW_VEC);
        v.extend([1, 2, 3]);
        let buf = v.as_ptr();
        give_vec(&VECS, v);
        let w = take_vec(&VECS, 2);
        assert!(w.is_empty());
        assert_eq!(w.as_ptr(), buf, "the buffer came back");
        // Grown when more room is asked for.
        give_vec(&VECS, w);
        assert!(take_vec(&VECS, 100).capacity() >= 100);
        // Large buffers are not kept; the cache is bounded.
        give_vec(&VECS, Vec::with_capacity(MAX_CACHED_VEC + 1));
        for _ in 0..CACHED_PER_LAYOUT + 5 {
            give_vec(&VECS, Vec::with_capacity(8));
        }
        VECS.with(|c| {
            let c = c.borrow();
            assert_eq!(c.len(), CACHED_PER_LAYOUT);
            assert!(c.iter().all(|v| v.capacity() <= MAX_CACHED_VEC));
        });
    }

    #[test]
    fn the_cache_is_bounded() {
        let blocks: Vec<_> = (0..CACHED_PER_LAYOUT + 10)
            .map(|i| Recycled::new([i as u32; 100]))
            .collect();
        drop(blocks);
        let cached = CACHE.with(|c| {
            c.borrow()
                .lists
                .iter()
                .find(|(l, _)| *l == Layout::new::<[u32; 100]>())
                .map_or(0, |(_, b)| b.len())
        });
        assert_eq!(cached, CACHED_PER_LAYOUT);
    }

    #[test]
    fn a_pinned_future_runs_in_its_block() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let big = [3u8; 4096];
        let fut = Recycled::into_pin(Recycled::write(Recycled::new_uninit(), async move {
            tokio::task::yield_now().await;
            big.iter().map(|&b| b as u32).sum::<u32>()
        }));
        assert_eq!(rt.block_on(fut), 3 * 4096);
        // Zero-sized values take no block; an unwritten block goes back unharmed.
        let z = Recycled::new(());
        assert_eq!(*z, ());
        drop(Recycled::<MaybeUninit<[u8; 64]>>::new_uninit());
    }
}
