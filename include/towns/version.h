// Versions of this library and of what it was built against and runs with.
#pragma once

#include <string>

#include "towns/export.h"

namespace towns {

struct Versions {
  std::string towns_e2ee;  // this library
  std::string olm;         // libolm at run time
  std::string sqlite;      // SQLite at run time
  std::string openssl;     // OpenSSL libcrypto at run time
};

TOWNS_API Versions versions();

}  // namespace towns
