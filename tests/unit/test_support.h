// Shared by the host unit tests.
#pragma once

#include <lamina/assert.h>

#include <stdexcept>

namespace lamina {

// What a failed LAMINA_ASSERT throws on the host (main.cpp), so REQUIRE_THROWS_AS can check
// that code refuses what it must refuse.
struct AssertionFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace lamina
