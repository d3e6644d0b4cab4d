//! [`HugePageBytes`]: a copy of the F16 / BF16 head in memory of the engine's own, in 2 MiB
//! pages where the OS gives them.
//!
//! Why not stream the head from the GGUF memory map, as the engine did: a map is only as good
//! as the page cache behind it. The head (0.66 GB on the 2B4T shape, over half the bytes a
//! token reads) was PMD-mapped for 0.2-0.3 GB of its 1.16 GB file on a long-lived page cache
//! (`FilePmdMapped` in `/proc/PID/smaps`), and the same bytes decoded 5-8 % faster copied into
//! huge pages (2B4T synthetic file, `bitnet-cli bench -p 0 -n 128 -t 1,2 -r 2 --kv-type f16`,
//! alternating, two rounds: mapped 11.68 / 11.39 tok/s on one thread, 21.81 / 21.38 on two;
//! copied 12.29 / 12.26 and 22.83 / 22.64). One 2 MiB page holds 400 head rows: one TLB entry
//! where 4 KiB pages need 512. Copying costs one pass over bytes the load reads anyway (the
//! finiteness check), and the file's pages are released from the process afterwards.
//!
//! An anonymous map (memmap2) advised `MADV_HUGEPAGE` before its first touch: transparent huge
//! pages in the default `madvise` mode take it, and Linux aligns an anonymous map whose length
//! is a multiple of 2 MiB to 2 MiB, so the length is rounded up. Elsewhere, or with THP off,
//! the advice is ignored and the copy is in ordinary pages (as fast as the map at worst).

use memmap2::{Mmap, MmapMut};

/// Bytes copied into an anonymous, read-only map advised for 2 MiB pages.
pub(crate) struct HugePageBytes {
    map: Mmap,
    len: usize,
}

/// The transparent huge page size on x86-64 and on aarch64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;

impl HugePageBytes {
    /// A copy of `bytes`, made on up to `threads` threads (the page faults dominate: each
    /// thread faults its own whole huge pages).
    ///
    /// # Errors
    /// When the OS refuses the anonymous map (the caller keeps the file's bytes instead).
    pub(crate) fn copy_of(bytes: &[u8], threads: usize) -> std::io::Result<Self> {
        let capacity = bytes.len().div_ceil(HUGE_PAGE).max(1) * HUGE_PAGE;
        let mut map = MmapMut::map_anon(capacity)?;
        // Advisory: before the first write, so the faults allocate huge pages.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        let pages = bytes.len().div_ceil(HUGE_PAGE).max(1);
        let per_thread = pages.div_ceil(threads.max(1)) * HUGE_PAGE;
        std::thread::scope(|s| {
            for (dst, src) in map[..bytes.len()]
                .chunks_mut(per_thread)
                .zip(bytes.chunks(per_thread))
            {
                s.spawn(move || dst.copy_from_slice(src));
            }
        });
        Ok(Self {
            map: map.make_read_only()?,
            len: bytes.len(),
        })
    }

    /// The copied bytes (page-aligned).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_exactly_and_page_aligned() {
        for len in [0usize, 1, 4095, HUGE_PAGE + 3] {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for threads in [1, 2, 3] {
                let copy = HugePageBytes::copy_of(&src, threads).unwrap();
                assert_eq!(copy.bytes(), &src[..]);
                assert_eq!(copy.bytes().as_ptr().align_offset(4096), 0);
            }
        }
    }
}
