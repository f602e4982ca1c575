// SPDX-License-Identifier: Apache-2.0
// HandleTable: the files and directories the guest has open, by FUSE file handle.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "passthrough/dir_stream.hpp"
#include "passthrough/inode_table.hpp"
#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::fs::passthrough {

struct OpenFile {
    std::shared_ptr<const Inode> inode;
    UniqueFd fd;
    bool directory = false;
    int access = 0;  // O_RDONLY, O_WRONLY or O_RDWR as opened on the host
    // A directory listing seeks and reads the shared fd; one listing step at a time.
    std::mutex dir_mutex;
    DirStream listing;  // directories only; under dir_mutex
};

class HandleTable {
public:
    // At most `max_handles` handles are open or reserved at a time.
    explicit HandleTable(std::size_t max_handles) : max_handles_(max_handles) {}

    // Room for one handle, taken before the file is opened or created, so that a request over
    // the budget leaves the host untouched (no O_TRUNC, no new file). Given back when dropped
    // unless add() took it.
    class Reservation {
    public:
        Reservation(Reservation&& other) noexcept : table_(std::exchange(other.table_, nullptr)) {}
        Reservation& operator=(Reservation&&) = delete;
        ~Reservation() { give_back(); }
        // Early, when the caller turns out not to need it.
        void give_back();

    private:
        friend class HandleTable;
        explicit Reservation(HandleTable* table) : table_(table) {}
        HandleTable* table_;
    };
    // EMFILE when max_handles are open or reserved.
    std::expected<Reservation, int> reserve();
    uint64_t add(Reservation room, std::shared_ptr<OpenFile> file);
    // EBADF unless `fh` is open, belongs to `nodeid` and is of the wanted kind.
    std::expected<std::shared_ptr<OpenFile>, int> get(uint64_t fh, uint64_t nodeid,
                                                      bool directory) const;
    // Removes and returns the handle (EBADF as for get()).
    std::expected<std::shared_ptr<OpenFile>, int> remove(uint64_t fh, uint64_t nodeid,
                                                         bool directory);
    // Whether any file (not directory) handle of `nodeid` is open.
    bool has_files(uint64_t nodeid) const;
    void clear();

private:
    const std::size_t max_handles_;
    mutable std::mutex mutex_;
    uint64_t next_ = 1;
    std::size_t reserved_ = 0;
    std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> files_;
    // Open file handles per node id; nodes with none are absent.
    std::unordered_map<uint64_t, std::size_t> files_of_node_;
};

}  // namespace vfsdax::fs::passthrough
