#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Host side of the kvm_smoke case: /dev/kvm runs real-mode code (no VMM, no L2 guest).
# Nested, it also runs this very case through `run --mode direct` on L1's real KVM, started
# from / by relative paths: what a user with KVM runs (issue #13: run's direct mode once
# started the host script by a relative path after changing into the work directory).
set -euo pipefail
smoke="$E2E_BIN/kvm_smoke"
[ -x "$smoke" ] || { echo "E2E-FAIL: kvm_smoke: $smoke is missing (pass --bin)"; exit 1; }
if "$smoke"; then
  echo "E2E-PASS: kvm_smoke"
else
  echo "E2E-FAIL: kvm_smoke: $smoke exited with $?"
  exit 1
fi
[ "$E2E_MODE" = nested ] || exit 0

# The inner run's lines are prefixed, so its markers are not taken for this run's (an
# E2E-FAIL anywhere in a line still fails the case). Its output goes below $E2E_WORK.
rc=0
inner="$(cd / && E2E_OUT="${E2E_WORK#/}/direct-out" bash "${E2E_RIG#/}/run" --mode direct \
  --name kvm_smoke_direct --expect kvm_smoke --host "${0#/}" --bin "${E2E_BIN#/}/kvm_smoke" \
  --timeout 120 2>&1)" ||
  rc=$?
printf '%s\n' "$inner" | sed 's/^/direct| /'
if [ "$rc" -eq 0 ] && grep -qx 'e2e\[kvm_smoke_direct\]: PASS' <<<"$inner"; then
  echo "E2E-PASS: kvm_smoke_direct"
else
  echo "E2E-FAIL: kvm_smoke: run --mode direct on L1's KVM, started from / by relative paths, failed (status $rc)"
  exit 1
fi
