#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 side of vmm_exit: e2e.wait on the command line: say so and wait for the host to stop the VMM.
# Without it the test passes at once and /init ends the guest (reboot -f with e2e.reboot).
if grep -qw e2e.wait /proc/cmdline; then
  echo "L2-WAITING"
  sleep 600
  echo "E2E-FAIL: vmm_exit: the VMM was not stopped within 600 s of L2-WAITING"
  exit 1
fi
echo "vmm_exit: L2 test done; /init ends the guest"
