// unit_main.cpp — doctest's main for the bridge-only unit test binary (MUSTER_BRIDGE_UNIT_TESTS).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
