// What the library knows of its own libolm delegate (olm_delegate.cpp) beyond
// the EncryptionDelegate contract, for callers inside the library.
#pragma once

#include "towns/protocol/encryption_delegate.h"

namespace towns {

// True when `account` is this library's libolm account, whose
// decrypt_prekey_message only reads it (libolm's inbound session looks the
// fallback key up and uses nothing else of the account), so several threads
// may decrypt with it at once. The delegate contract does not promise this of
// other implementations, which are then called one at a time.
bool decrypts_without_writing(const DelegateAccount& account);

// True for this library's libolm delegate (olm_encryption_delegate()), which
// is stateless: its factory methods may run on several threads at once. The
// delegate contract does not promise that of other implementations.
bool is_olm_delegate(const EncryptionDelegate& delegate);

}  // namespace towns
