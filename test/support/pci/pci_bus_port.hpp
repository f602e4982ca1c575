// SPDX-License-Identifier: Apache-2.0
// PciBusPort: how a guest-side driver model reaches one PCI function (config space, MMIO).
#pragma once

#include <cstdint>

namespace vfsdax::test {

// The guest's two windows onto a function: configuration space by register offset (what
// port 0xcf8/0xcfc or MMCONFIG give a kernel), and memory by guest-physical address.
class PciBusPort {
public:
    virtual ~PciBusPort() = default;
    virtual uint32_t config_read(uint16_t offset, unsigned width) = 0;
    virtual void config_write(uint16_t offset, unsigned width, uint32_t value) = 0;
    virtual uint64_t mmio_read(uint64_t address, unsigned width) = 0;
    virtual void mmio_write(uint64_t address, unsigned width, uint64_t value) = 0;
};

}  // namespace vfsdax::test
