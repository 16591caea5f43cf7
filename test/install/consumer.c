/* The C API as an installed application sees it (check_install.sh step 5):
 * built as C99 with pkg-config alone. Two devices on SQLite stores in the
 * directory given, a session shared by hand, an event decrypted. */
#include <stdio.h>
#include <string.h>

#include "towns/towns.h"

#define TRY(call)                                                                              \
  do {                                                                                         \
    towns_status s_ = (call);                                                                  \
    if (s_ != TOWNS_OK) {                                                                      \
      fprintf(stderr, "%s: %s: %s\n", #call, towns_status_name(s_), towns_last_error_message()); \
      return 1;                                                                                \
    }                                                                                          \
  } while (0)

int main(int argc, char **argv) {
  static const char stream[] = "20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  static const uint8_t key_a[] = "key A", key_b[] = "key B";
  towns_store *sa = NULL, *sb = NULL;
  towns_crypto *a = NULL, *b = NULL;
  towns_string sid = {0}, session = {0}, dk = {0}, fk = {0}, result = {0};
  towns_buffer event = {0}, message = {0}, plain = {0};
  char path_a[512], path_b[512], sessions[4096], devices[512];
  int ok;

  if (argc != 2) return 2;
  snprintf(path_a, sizeof path_a, "%s/a.db", argv[1]);
  snprintf(path_b, sizeof path_b, "%s/b.db", argv[1]);
  TRY(towns_store_open_sqlite(path_a, key_a, 5, TOWNS_STORE_CREATE, &sa));
  TRY(towns_store_open_sqlite(path_b, key_b, 5, TOWNS_STORE_CREATE, &sb));
  TRY(towns_crypto_create(sa, key_a, 5, NULL, 0, NULL, &a));
  TRY(towns_crypto_create(sb, key_b, 5, NULL, 0, NULL, &b));

  TRY(towns_crypto_encrypt_group_event(a, stream, (const uint8_t *)"hi", 2, TOWNS_ALGORITHM_GROUP_ENCRYPTION, &event));
  TRY(towns_crypto_ensure_outbound_session(a, stream, TOWNS_ALGORITHM_GROUP_ENCRYPTION, NULL, &sid));
  TRY(towns_crypto_export_group_session(a, stream, sid.data, &session));
  snprintf(sessions, sizeof sessions, "[%s]", session.data);
  TRY(towns_crypto_device_keys(b, &dk, &fk));
  snprintf(devices, sizeof devices, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]", dk.data, fk.data);
  TRY(towns_build_group_encryption_sessions(a, stream, TOWNS_ALGORITHM_GROUP_ENCRYPTION, sessions, devices, &message,
                                            NULL));
  TRY(towns_receive_group_encryption_sessions(b, message.data, message.len, &result));
  TRY(towns_crypto_decrypt_group_event(b, stream, event.data, event.len, &plain, NULL));
  ok = plain.len == 2 && memcmp(plain.data, "hi", 2) == 0;

  towns_buffer_free(&plain);
  towns_buffer_free(&message);
  towns_buffer_free(&event);
  towns_string_free(&result);
  towns_string_free(&session);
  towns_string_free(&sid);
  towns_string_free(&dk);
  towns_string_free(&fk);
  towns_crypto_free(a);
  towns_crypto_free(b);
  towns_store_free(sa);
  towns_store_free(sb);
  if (!ok) {
    fprintf(stderr, "the decrypted event is not the one sent\n");
    return 1;
  }
  printf("C consumer built against towns-e2ee %s works\n", towns_version());
  return 0;
}
