// SPDX-License-Identifier: Apache-2.0
// VFSDAX_EXPORT marks the public API, the only symbols libvfsdax and libvfsdax-fs export.
#pragma once

// The libraries are compiled with -fvisibility=hidden, so everything else in them stays
// private and may change without an ABI break (docs/embedding.md). Classes carry the mark when
// they have members defined in the library or virtual functions (their vtable and typeinfo
// must be one across the boundary: an embedder derives from them, or dynamic_casts and catches
// them); free functions when the library defines them. A consumer sees the same attribute,
// which changes nothing for it.
#define VFSDAX_EXPORT [[gnu::visibility("default")]]

// Members of an exported class that are not API: its private helpers (those no inline code in
// a public header calls) and its nested implementation classes, which would otherwise be
// exported with it.
#define VFSDAX_LOCAL [[gnu::visibility("hidden")]]
