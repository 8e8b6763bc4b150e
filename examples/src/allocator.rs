//! The example programs' global allocator: jemalloc, returning freed memory to the system on
//! a background thread.
//!
//! The `mprpc` library leaves the allocator to the program. A provider whose connections come
//! and go in bursts is where the choice shows: with glibc's allocator the provider's resident
//! memory climbed round after round of 10,000 connections that all closed (129 MiB after the
//! first burst, 250 MiB after the seventh, with every connection gone), because glibc keeps
//! freed memory that sits between live allocations. jemalloc with a background thread that
//! purges unused pages stays flat (12 MiB after each of seven bursts). The measurement and its
//! command are in `docs/BENCHMARKS.md` ("Memory after bursts of connections").

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: purge freed pages from a background thread,
/// dirty pages after 1 s, and give muzzy pages back at once.
// `unsafe_code`: exporting a symbol by name is how jemalloc reads a configuration baked
// into the program; this is the one symbol, and jemalloc only reads it.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
