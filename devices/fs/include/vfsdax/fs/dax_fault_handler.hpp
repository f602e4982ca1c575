// DAX fault handler: device-side loads and stores that hit a truncated window page become zeros.
#pragma once

#include <expected>

namespace vfsdax::fs {

// The device copies guest buffers with plain loads and stores. A guest may place a buffer in
// the DAX window over a file the host has since shrunk: touching the page past the new end
// raises SIGBUS in the VMM (KVM's own accesses get EFAULT instead, see
// DaxMapper::repair_truncated). Once installed, a SIGBUS whose address lies in a live
// DaxMapper's window turns that one page into anonymous zeros and the access goes on;
// DaxStats::faulted_pages counts them. Any other SIGBUS goes to the handler installed before
// (or kills the process as by default), so real bugs still show.
//
// Process-wide and once, before the VMM starts threads; installing again is harmless. Every
// DaxMapper is covered from create() to its destruction. A guest remapping a range while the
// device faults on it may find the new mapping zeroed: only that guest's own data suffers.
// Errors: sigaction's errno.
std::expected<void, int> install_dax_fault_handler();

}  // namespace vfsdax::fs
