// SPDX-License-Identifier: Apache-2.0
// DAX fault handler: device-side loads and stores that fault in the window become zeros.
#pragma once

#include <expected>

#include "vfsdax/export.hpp"

namespace vfsdax::fs {

// The device copies guest buffers, and reads and writes rings, with plain loads and stores. A
// guest may place them in the DAX window where such an access faults: over a file the host has
// since shrunk (a load or store past the new end raises SIGBUS in the VMM; KVM's own accesses
// get EFAULT instead, see DaxMapper::repair_truncated), or, for a store, in a range the guest
// mapped read-only (SIGSEGV; only a broken or hostile guest asks the device to write there).
// Once installed, a SIGBUS or SIGSEGV whose address lies in a live DaxMapper's window turns
// that one page into anonymous zeros and the access goes on; the file is never written through
// a read-only mapping. DaxStats::faulted_pages counts these pages. Any other SIGBUS or SIGSEGV goes
// to the handler installed before (or kills the process as by default), so real bugs still show.
//
// Process-wide and once, before the VMM starts threads; installing again is harmless. Every
// DaxMapper is covered from create() to its destruction, which waits for a handler using it.
// The handler takes no lock, allocates nothing and calls no libc function but one mmap system
// call; it runs on the thread's alternate signal stack if there is one (SA_ONSTACK). A page it
// zeroed is taken in by the mapper's next locked call, which maps the file back where the file
// covers it (docs/dax.md), so a guest remapping a range while the device faults on it ends up
// with its file there. Errors: sigaction's errno.
VFSDAX_EXPORT std::expected<void, int> install_dax_fault_handler();

}  // namespace vfsdax::fs
