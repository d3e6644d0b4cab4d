//! [`advise_huge_pages`], [`zeroed_vec_in_huge_pages`] and [`filled_in_huge_pages`]: ask Linux
//! to back a large weight buffer with 2 MiB pages, before the buffer is first written.
//!
//! Why: decoding streams every weight once per token, and reading from 4 KiB pages costs a
//! TLB miss every 4 KiB (a two-level page walk in a virtual machine), where one 2 MiB page
//! covers 400 rows of a 2B4T head. Measured (2B4T synthetic file, `bitnet-cli bench -p 0 -n
//! 128 -t 1,2 -r 2 --kv-type f16`, alternating, docs/performance.md): the F16 head streamed
//! from the GGUF memory map 10.98 / 10.63 tokens/s on one thread and 21.13 / 20.40 on two,
//! copied into an advised buffer 12.02 / 12.07 and 22.09 / 21.79; then with the ternary
//! matrices moved into one advised buffer ([`crate::PackedTernary::share_huge_pages`]) and the
//! Q8_0 head built in one, 11.66 / 11.54 -> 13.11 / 13.29 and 21.59 / 22.70 -> 24.99 / 26.25
//! (F16 head), 28.57 / 28.53 -> 33.87 / 34.14 on two threads with the Q8_0 head. A plain C
//! read gains 12-20 % from 2 MiB pages too, so the bandwidth probe ([`crate::membw`]) reads
//! from them as well. Transparent huge pages run in
//! `madvise` mode by default on many distributions, so a buffer gets them only when asked.
//!
//! Written by hand (one `madvise` call through libc): memmap2 advises only its own maps, and the
//! matrices hold `Vec`s from the global allocator. Only the 2 MiB-aligned interior of the buffer
//! is advised (at most 4 MiB at the ends stay in small pages); the advice changes how untouched
//! pages will be backed, never the contents, and is ignored where THP is off or absent.

/// The transparent huge page size on x86-64, and on aarch64 with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel to back the whole 2 MiB pages inside `buf` with huge pages. Call it on
/// a freshly allocated buffer (a zeroed `vec!` of a primitive type is allocated untouched)
/// before writing it: pages already touched stay as they are. A no-op off Linux.
pub fn advise_huge_pages<T>(buf: &[T]) {
    #[cfg(target_os = "linux")]
    {
        let start = buf.as_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let (first, last) = (
            start.next_multiple_of(HUGE_PAGE),
            end / HUGE_PAGE * HUGE_PAGE,
        );
        if last > first {
            // SAFETY: `first..last` lies inside `buf`'s allocation, which outlives the call;
            // MADV_HUGEPAGE only changes how its pages are backed when next faulted in, never
            // their contents. The result is advisory and ignored.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// `len` zeroed values in a fresh buffer advised for huge pages ([`advise_huge_pages`]). The
/// zeroes come from the allocator's zeroed memory (fresh pages of a large buffer, not yet
/// backed), so its pages are first touched, and backed by 2 MiB pages, wherever the caller
/// writes them, on as many threads as it writes from. (Filling with a value first would fault
/// every page on one thread: a Q8_0 head of the 2B4T shape loaded 1-3 s slower that way.)
pub fn zeroed_vec_in_huge_pages<T: bytemuck::Zeroable>(len: usize) -> Vec<T> {
    let v = bytemuck::zeroed_vec(len);
    advise_huge_pages(&v);
    v
}

/// `len` values in a fresh buffer advised for huge pages ([`zeroed_vec_in_huge_pages`]),
/// written by `fill(at, chunk)` (values `at..at + chunk.len()`) on up to `threads` scoped
/// threads, each taking whole 2 MiB pages: the page faults of a fresh buffer are most of the
/// cost of a copy into it, and they run on the thread that first writes the page. (The
/// ternary matrices' move, [`crate::PackedTernary::share_huge_pages`], splits its work by
/// matrix instead, to free each source as soon as it is copied.)
pub fn filled_in_huge_pages<T: bytemuck::Zeroable + Send>(
    len: usize,
    threads: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut v = zeroed_vec_in_huge_pages::<T>(len);
    let page = (HUGE_PAGE / std::mem::size_of::<T>().max(1)).max(1);
    let per_thread = len
        .div_ceil(threads.max(1))
        .next_multiple_of(page)
        .max(page);
    let fill = &fill;
    std::thread::scope(|s| {
        for (i, chunk) in v.chunks_mut(per_thread).enumerate() {
            s.spawn(move || fill(i * per_thread, chunk));
        }
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advising_keeps_every_value() {
        for len in [0usize, 7, HUGE_PAGE + 5, 3 * HUGE_PAGE] {
            let mut v = vec![0u8; len];
            advise_huge_pages(&v);
            for (i, x) in v.iter_mut().enumerate() {
                *x = (i % 251) as u8;
            }
            advise_huge_pages(&v);
            assert!(v.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        }
    }

    #[test]
    fn filling_on_threads_writes_every_value_once() {
        for (len, threads) in [
            (0usize, 2),
            (5, 3),
            (HUGE_PAGE / 4 * 3 + 7, 2),
            (HUGE_PAGE, 1),
        ] {
            let v = filled_in_huge_pages::<u32>(len, threads, |at, chunk| {
                for (j, x) in chunk.iter_mut().enumerate() {
                    *x += (at + j) as u32 + 1;
                }
            });
            assert_eq!(v.len(), len);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));
        }
    }

    #[test]
    fn a_zeroed_vec_in_huge_pages_is_zeroed_and_writable() {
        for len in [0usize, 3, HUGE_PAGE / 2 + 1] {
            let mut v = zeroed_vec_in_huge_pages::<u16>(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0));
            v.iter_mut().for_each(|x| *x = 7);
            assert!(v.iter().all(|&x| x == 7));
        }
    }
}
