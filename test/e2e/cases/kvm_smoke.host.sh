#!/usr/bin/env bash
# Host side of the kvm_smoke case: /dev/kvm runs real-mode code (no VMM, no L2 guest).
set -euo pipefail
smoke="$E2E_BIN/kvm_smoke"
[ -x "$smoke" ] || { echo "E2E-FAIL: kvm_smoke: $smoke is missing (pass --bin)"; exit 1; }
if "$smoke"; then
  echo "E2E-PASS: kvm_smoke"
else
  echo "E2E-FAIL: kvm_smoke: $smoke exited with $?"
  exit 1
fi
