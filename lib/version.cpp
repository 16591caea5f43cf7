#include "towns/version.h"

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "towns/olm/olm.h"

namespace towns {

Versions versions() {
  Versions v;
  v.towns_e2ee = TOWNS_E2EE_VERSION;
  v.olm = olm::library_version();
  v.sqlite = sqlite3_libversion();
  v.openssl = OpenSSL_version_num() ? OpenSSL_version(OPENSSL_VERSION) : "unknown";
  return v;
}

}  // namespace towns
