// HandleTable: the files and directories the guest has open, by FUSE file handle.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <unordered_map>

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
};

class HandleTable {
public:
    uint64_t add(std::shared_ptr<OpenFile> file);
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
    mutable std::mutex mutex_;
    uint64_t next_ = 1;
    std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> files_;
    // Open file handles per node id; nodes with none are absent.
    std::unordered_map<uint64_t, std::size_t> files_of_node_;
};

}  // namespace vfsdax::fs::passthrough
