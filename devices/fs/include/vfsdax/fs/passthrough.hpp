// SPDX-License-Identifier: Apache-2.0
// Passthrough backend: a FileSystem that serves one host directory, and the process hardening
// (capabilities, fd limit) a VMM applies before serving it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/fs/file_system.hpp"

namespace vfsdax::fs {

struct PassthroughOptions {
    // The shared directory. Nothing outside it is reached through the backend: a name is one
    // component resolved beneath its directory without following links, and a directory node
    // the host moved out of the share is refused (ENOENT) by every operation that looks up,
    // lists, creates, links, renames or removes in it, for as long as it is out (checked at
    // each use by walking ".." by descriptor to the root). Not covered: a file node the guest
    // already holds follows its inode wherever the host moves it (as a host hard link to a file
    // outside would), and a host move in the instant between that check and the operation.
    std::string root;
    // The descriptors this share may hold on the guest's behalf, B, split below; whatever the
    // guest does, the share holds no more, so the rest of the process keeps its own. 0 means
    // RLIMIT_NOFILE's soft limit at creation, minus the descriptors open then, minus
    // reserved_fds; make_passthrough fails with EMFILE when that leaves less than 64. A VMM
    // with several shares gives each its part (vfsdax-vmm: see its README section).
    std::size_t fd_budget = 0;
    // With fd_budget 0: descriptors left to the process that are not open yet at creation (a
    // VMM's vCPUs, eventfds and irqfds, the DAX window's one per mapped 2 MiB range, logs).
    std::size_t reserved_fds = 256;
    // The parts of B; 0 means the default share, an explicit value is taken as it is.
    // How many inodes may hold an O_PATH fd: B/2.
    std::size_t max_inode_fds = 0;
    // How many files and directories the guest may hold open (OPEN, OPENDIR, CREATE, TMPFILE
    // until RELEASE): B/4. The request beyond it gets EMFILE and changes nothing on the host.
    std::size_t max_open_handles = 0;
    // How many open file descriptions POSIX lock owners may hold, over all files (one per
    // owner and file, until the owner closes the file); beyond it a lock gets ENOLCK: B/8.
    // The last eighth of B is for the short-lived descriptors of requests in flight (a reopen
    // for I/O, a walk up a directory tree: a few per request).
    std::size_t max_lock_fds = 0;
    // Beyond max_inode_fds, hold inodes as file handles (name_to_handle_at) where the host
    // file system supports them and the process may decode them (CAP_DAC_READ_SEARCH).
    // Otherwise, or when false, the least recently used inode fds are closed and those inodes
    // reopened when needed from where the guest last found them (its directory and name; a
    // guest RENAME or LOOKUP updates it), accepted only if dev, ino, mount id and birth time
    // still match, else ESTALE (a host rename the guest has not seen yet, a removed file).
    // Inodes found without a name (O_TMPFILE, "..") keep their fd; when those hold the whole
    // part, a new inode gets ENFILE.
    bool file_handles = true;
    // Set-user-ID and set-group-ID bits the guest asks for (CREATE, MKNOD, MKDIR, TMPFILE,
    // SETATTR's mode). Off, they are stripped: S_ISUID everywhere, S_ISGID from all but
    // directories (there it only makes new entries inherit the group). A server running as
    // root creates files as the guest's uid, so a guest's set-user-ID root file would be one
    // any host user who reaches the share could run as root.
    bool allow_setid = false;
    // MKNOD of block and character devices: created where the process may (CAP_MKNOD; the
    // host says EPERM otherwise), never opened through the share. Off, they get EPERM, except
    // the 0:0 character device: the overlayfs whiteout, which Linux lets any user create and
    // container images on a share need.
    bool device_nodes = true;
};

// Behaviour, decided where the issue left a choice:
// - open/create strip O_CREAT, O_EXCL, O_NOCTTY, O_PATH, O_TMPFILE, O_NOFOLLOW and O_DIRECT
//   (guest buffers are not aligned for the host's direct I/O; the guest applies its own cache
//   policy). Only regular files and directories are opened: a symlink gives ELOOP (as
//   O_NOFOLLOW would), any other type ENXIO.
// - mknod creates regular files, fifos, sockets and, per `device_nodes`, device nodes. OPEN,
//   CREATE and DAX never open anything but regular files and directories, so a device node
//   on the share is never opened by the server (host users who can reach the share could
//   open it themselves: share a directory only they cannot reach, or turn device_nodes off).
// - Set-ID bits per `allow_setid` (stripped by default, silently, as chmod(2) may drop
//   S_ISGID); the kernel still clears them on write and chown as for any file.
// - POSIX locks follow the guest's lock owner: each owner locks through a description of the
//   file of its own (OFD locks on it), opened read-write where the host allows. A FLUSH drops
//   the owner's locks on the file, the release of its last handle drops everyone's. flock
//   locks live on the handle's own description (per open file, as flock(2) is).
// - When the process runs as root, files are created (and ACCESS is checked) under the
//   requester's uid, gid and supplementary groups, with the requester's umask. Those are
//   switched per thread, so the backend does it only on threads of its own (up to 4, started
//   on first use, named "fs:requester", each unsharing its fs attributes once for the
//   umask); the calling thread waits for it and is never changed. A thread that cannot get
//   root's credentials back ends, its request gets EIO, and the process goes on.
VFSDAX_EXPORT std::expected<std::unique_ptr<FileSystem>, int> make_passthrough(
    const PassthroughOptions& options);

// The capabilities the passthrough server needs (CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER,
// FSETID, MKNOD, SETGID, SETUID). A server whose guests may set security.capability
// (FuseOptions::xattr_capability) also needs CAP_SETFCAP, and one whose guests may set
// trusted.* names CAP_SYS_ADMIN: pass those to drop_capabilities as `keep_also`.
VFSDAX_EXPORT std::vector<int> passthrough_capabilities();

// Drops every capability but passthrough_capabilities() and `keep_also`, from the effective,
// permitted and bounding sets, with libcap-ng. Capabilities are per thread: call it before the
// VMM starts threads, which then inherit the reduced set. Errors: EINVAL for an unknown
// capability number, EPERM when the kernel refused.
VFSDAX_EXPORT std::expected<void, int> drop_capabilities(std::span<const int> keep_also = {});

// Raises RLIMIT_NOFILE: the hard limit up to /proc/sys/fs/nr_open when allowed
// (CAP_SYS_RESOURCE), and the soft limit up to the hard one. Returns the new soft limit.
VFSDAX_EXPORT std::expected<uint64_t, int> raise_fd_limit();

}  // namespace vfsdax::fs
