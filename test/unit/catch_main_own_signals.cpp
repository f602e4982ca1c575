// SPDX-License-Identifier: Apache-2.0
// Catch2's main without its fatal-signal handlers: they would sit in front of the DAX fault
// handler for every test case and report the SIGSEGV the handler exists to absorb.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>
