// SPDX-License-Identifier: Apache-2.0
// PosixLocks: the guest's POSIX lock owners, each with an open file description of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "passthrough/handle_table.hpp"
#include "passthrough/inode_table.hpp"
#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::fs::passthrough {

// Linux leaves POSIX lock semantics to the server and names the owner (the locking process's
// files_struct) in every request. An OFD lock belongs to an open file description, so one
// description per (inode, owner) makes OFD locks behave as POSIX ones: owners conflict with
// each other, never with themselves, whichever handle they lock through.
class PosixLocks {
public:
    struct Description {
        UniqueFd fd;
        int access = 0;  // O_RDONLY, O_WRONLY or O_RDWR
    };
    using DescriptionPtr = std::shared_ptr<const Description>;

    // Descriptions are opened through `inodes` and live only while `handles` holds a file
    // handle of their node; at most `max_descriptions` exist at a time, over all nodes.
    PosixLocks(const InodeTable& inodes, const HandleTable& handles, std::size_t max_descriptions)
        : inodes_(inodes), handles_(handles), max_descriptions_(max_descriptions) {}

    // The owner's description of `node`; null when it has none, so holds no lock there.
    DescriptionPtr find(uint64_t node, uint64_t owner) const;
    // The owner's description of `inode`, opened on its first lock, able to take a lock of
    // `type` (F_RDLCK or F_WRLCK). ENOLCK when max_descriptions are open, EBADF when the
    // description cannot take `type` or no handle of the inode is open any more.
    std::expected<DescriptionPtr, int> acquire(const Inode& inode, uint64_t owner, int type);
    // The owner closed a descriptor of the file: POSIX drops all its locks there.
    void drop_owner(uint64_t node, uint64_t owner);
    // Once no file handle of `node` is open, no guest process can hold a lock on it.
    void drop_if_unused(uint64_t node);
    void clear();

private:
    using Key = std::pair<uint64_t, uint64_t>;  // node id, owner
    std::expected<Description, int> open_description(const Inode& inode, int type) const;
    // Unlocks explicitly: an operation in flight may keep a description open a little longer.
    static void unlock_all(const std::vector<DescriptionPtr>& dropped);

    const InodeTable& inodes_;
    const HandleTable& handles_;
    const std::size_t max_descriptions_;
    mutable std::mutex mutex_;
    std::map<Key, DescriptionPtr> descriptions_;
};

}  // namespace vfsdax::fs::passthrough
