#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "test_support.h"

#include <string>

namespace lamina {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line) {
    throw AssertionFailure(std::string(file) + ":" + std::to_string(line) + ": " + expr);
}
}  // namespace lamina
