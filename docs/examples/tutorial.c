/* The tutorial's program (docs/tutorial.md) with the C ABI, towns.h: Alice
 * shares a session with Bob by hand and Bob decrypts her message; then Alice
 * encrypts with a session Bob never got, Bob's decryption fails with
 * SESSION_NOT_FOUND, and the key exchange engines recover the key.
 *
 * C99: cc -std=c99 tutorial.c $(pkg-config --cflags --libs towns-e2ee)
 * Usage: tutorial-c DIR  (an existing, empty directory for the two store files)
 * Exits 0 when every step gave exactly the expected result, 1 otherwise. */
#include <stdio.h>
#include <string.h>

#include "towns/towns.h"

#define MEGOLM TOWNS_ALGORITHM_GROUP_ENCRYPTION
#define HYBRID TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION

/* A call that must succeed: on failure, say why and stop. */
#define TRY(call)                                                                                   \
  do {                                                                                              \
    towns_status s_ = (call);                                                                       \
    if (s_ != TOWNS_OK) {                                                                           \
      printf("FAIL: %s: %s: %s\n", #call, towns_status_name(s_), towns_last_error_message());       \
      return 1;                                                                                     \
    }                                                                                               \
  } while (0)

static int failures = 0;
static void expect(int ok, const char *what) {
  printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

static const char kChannel[] = "20cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
static const uint8_t kMiniblockHash[32] = {0x4d};

/* The two devices, and the node's state: the channel's stored solicitations. */
typedef struct {
  const char *name, *user_id;
  towns_store *store;
  towns_crypto *crypto;
  towns_key_exchange *engine;
  towns_string device_key, fallback_key;
  char decrypted[128]; /* "event id: text" of the last event the engine decrypted */
} device;
static device devices[2] = {{"Alice", "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, NULL, NULL, {0}, {0}, ""},
                            {"Bob", "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", NULL, NULL, NULL, {0}, {0}, ""}};
static towns_stream_solicitations *channel_solicitations;

static device *other(void *me) { return (device *)me == &devices[0] ? &devices[1] : &devices[0]; }

/* ---- The host: what an engine sends is relayed at once to the other device. */
static towns_status send_solicitation(void *me, const char *stream, const uint8_t *s, size_t len, int ephemeral) {
  device *from = me, *to = other(me);
  towns_buffer stored = {0};
  towns_status status;
  printf("  %s -> channel: KeySolicitation, %s, %zu bytes\n", from->name, ephemeral ? "ephemeral" : "stored", len);
  if (ephemeral) return towns_key_exchange_enqueue_key_solicitation(to->engine, stream, from->user_id, s, len, 1, NULL);
  /* A stored solicitation becomes part of the channel's state first. */
  status = towns_stream_solicitations_apply_solicitation(channel_solicitations, from->user_id, s, len, &stored);
  if (status == TOWNS_OK)
    status = towns_key_exchange_enqueue_key_solicitation(to->engine, stream, from->user_id, stored.data, stored.len,
                                                         0, NULL);
  towns_buffer_free(&stored);
  return status;
}
static towns_status send_fulfillment(void *me, const char *stream, const uint8_t *f, size_t len, int ephemeral,
                                     int *accepted) {
  device *from = me, *to = other(me);
  towns_string user = {0};
  towns_buffer updated = {0};
  int found = 0;
  towns_status status;
  printf("  %s -> channel: KeyFulfillment, %s, %zu bytes\n", from->name, ephemeral ? "ephemeral" : "stored", len);
  *accepted = 1; /* a real node refuses a second fulfillment of the same request */
  if (ephemeral) return towns_key_exchange_on_ephemeral_key_fulfillment(to->engine, stream, f, len);
  status = towns_stream_solicitations_apply_fulfillment(channel_solicitations, f, len, &found, &user, &updated);
  if (status == TOWNS_OK && found)
    status = towns_key_exchange_enqueue_key_solicitation(to->engine, stream, user.data, updated.data, updated.len, 0,
                                                         NULL);
  towns_string_free(&user);
  towns_buffer_free(&updated);
  return status;
}
static towns_status send_sessions(void *me, const char *to_user, const uint8_t *m, size_t len) {
  device *from = me, *to = other(me);
  if (strcmp(to_user, to->user_id) != 0) return TOWNS_OK;
  printf("  %s -> %s's inbox: GroupEncryptionSessions, %zu bytes\n", from->name, to->name, len);
  return towns_key_exchange_enqueue_new_group_sessions(to->engine, m, len);
}
static towns_status user_devices(void *me, const char *user_id, towns_reply *reply) {
  char json[256];
  int i;
  (void)me;
  for (i = 0; i < 2; ++i) {
    if (strcmp(user_id, devices[i].user_id) != 0) continue;
    snprintf(json, sizeof json, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]", devices[i].device_key.data,
             devices[i].fallback_key.data);
    return towns_reply_set(reply, (const uint8_t *)json, strlen(json));
  }
  return TOWNS_OK; /* no reply: no devices */
}
static towns_status stream_members(void *me, const char *stream, towns_reply *reply) {
  char json[128];
  (void)me;
  (void)stream;
  snprintf(json, sizeof json, "[\"%s\",\"%s\"]", devices[0].user_id, devices[1].user_id);
  return towns_reply_set(reply, (const uint8_t *)json, strlen(json));
}
static towns_status is_user_entitled(void *me, const char *stream, const char *user_id, int *entitled) {
  (void)me;
  (void)stream;
  (void)user_id;
  *entitled = 1;
  return TOWNS_OK;
}
static towns_status key_solicitations(void *me, const char *stream, towns_stream_solicitations **out) {
  (void)me;
  (void)stream;
  *out = channel_solicitations;
  return TOWNS_OK;
}
static towns_status miniblock(void *me, const char *stream, int64_t *num, towns_reply *hash) {
  (void)me;
  (void)stream;
  *num = 1;
  return towns_reply_set(hash, kMiniblockHash, sizeof kMiniblockHash);
}
static void on_decrypted(void *me, const char *stream, const char *event_id, const uint8_t *text, size_t len,
                         int64_t message_index) {
  device *d = me;
  (void)stream;
  (void)message_index;
  snprintf(d->decrypted, sizeof d->decrypted, "%s: %.*s", event_id, (int)len, (const char *)text);
  printf("  %s decrypts %s\n", d->name, d->decrypted);
}
static void on_decryption_error(void *me, const char *stream, const char *event_id, towns_status status,
                                const char *message, int missing_session) {
  device *d = me;
  (void)stream;
  (void)message;
  printf("  %s cannot decrypt %s: %s%s\n", d->name, event_id, towns_status_name(status),
         missing_session ? " (it waits for the key)" : "");
}

int main(int argc, char **argv) {
  towns_key_exchange_host host;
  towns_key_exchange_options options;
  towns_key_exchange_stats stats;
  towns_miniblock_info mb = {1, kMiniblockHash, sizeof kMiniblockHash};
  towns_string session_id = {0}, session = {0}, hybrid_id = {0}, result = {0};
  towns_buffer message = {0}, event1 = {0}, event2 = {0}, plain = {0};
  char path[512], json[4096], bob_devices[256];
  size_t units;
  int i;
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR  (an existing, empty directory for the store files)\n", argv[0]);
    return 2;
  }

  printf("1. Two devices, each on its own store\n");
  memset(&host, 0, sizeof host);
  host.send_key_solicitation = send_solicitation;
  host.send_key_fulfillment = send_fulfillment;
  host.send_group_encryption_sessions = send_sessions;
  host.user_devices = user_devices;
  host.stream_members = stream_members;
  host.is_user_entitled = is_user_entitled;
  host.key_solicitations = key_solicitations;
  host.get_miniblock_info = miniblock;
  host.on_decrypted = on_decrypted;
  host.on_decryption_error = on_decryption_error;
  towns_key_exchange_options_default(&options);
  options.manual_clock = 1; /* the engines' time moves only when we move it */
  options.start_time_ms = 1700000000000;
  options.respond_delay = 0; /* answer at once, not after a random delay */
  TRY(towns_stream_solicitations_create(&channel_solicitations));
  for (i = 0; i < 2; ++i) {
    device *d = &devices[i];
    /* A real application draws the pickle key at random and keeps it in a key store. */
    const char *pickle_key = i == 0 ? "Alice's pickle key" : "Bob's pickle key";
    snprintf(path, sizeof path, "%s/%s.db", argv[1], i == 0 ? "alice" : "bob");
    TRY(towns_store_open_sqlite(path, (const uint8_t *)pickle_key, strlen(pickle_key), TOWNS_STORE_CREATE,
                                &d->store));
    /* No share host: new sessions are shared by the program, or by the engine. */
    TRY(towns_crypto_create(d->store, (const uint8_t *)pickle_key, strlen(pickle_key), NULL, 0, NULL, &d->crypto));
    TRY(towns_crypto_device_keys(d->crypto, &d->device_key, &d->fallback_key));
    host.user_data = d;
    TRY(towns_key_exchange_create(d->crypto, &host, d->user_id, &options, &d->engine));
  }
  expect(strcmp(devices[0].device_key.data, devices[1].device_key.data) != 0, "each device has its own device key");

  printf("2. Alice creates a session for the channel and shares it with Bob\n");
  TRY(towns_crypto_ensure_outbound_session(devices[0].crypto, kChannel, MEGOLM, NULL, &session_id));
  TRY(towns_crypto_export_group_session(devices[0].crypto, kChannel, session_id.data, &session));
  snprintf(json, sizeof json, "[%s]", session.data);
  towns_string_free(&session); /* wipes the session key */
  snprintf(bob_devices, sizeof bob_devices, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]",
           devices[1].device_key.data, devices[1].fallback_key.data); /* as Bob published them */
  TRY(towns_build_group_encryption_sessions(devices[0].crypto, kChannel, MEGOLM, json, bob_devices, &message, NULL));
  /* message: GroupEncryptionSessions protobuf bytes, posted to Bob's inbox. */
  TRY(towns_receive_group_encryption_sessions(devices[1].crypto, message.data, message.len, &result));
  expect(strstr(result.data, "\"status\":\"imported\"") != NULL && strstr(result.data, session_id.data) != NULL,
         "Bob imports the session from his inbox");

  printf("3. Alice encrypts a message, Bob decrypts it\n");
  TRY(towns_crypto_encrypt_group_event(devices[0].crypto, kChannel, (const uint8_t *)"Hello Bob", 9, MEGOLM, &event1));
  TRY(towns_crypto_decrypt_group_event(devices[1].crypto, kChannel, event1.data, event1.len, &plain, NULL));
  expect(plain.len == 9 && memcmp(plain.data, "Hello Bob", 9) == 0, "Bob reads \"Hello Bob\"");
  towns_buffer_free(&plain); /* wipes the plaintext */

  printf("4. Alice encrypts with a session Bob never got\n");
  TRY(towns_crypto_ensure_outbound_session(devices[0].crypto, kChannel, HYBRID, &mb, &hybrid_id));
  TRY(towns_crypto_encrypt_group_event(devices[0].crypto, kChannel, (const uint8_t *)"This key was never shared", 25,
                                       HYBRID, &event2));
  expect(towns_crypto_decrypt_group_event(devices[1].crypto, kChannel, event2.data, event2.len, &plain, NULL) ==
             TOWNS_E_SESSION_NOT_FOUND,
         "Bob's decryption fails with SESSION_NOT_FOUND");

  printf("5. The key exchange recovers the missing key\n");
  TRY(towns_key_exchange_enqueue_encrypted_content(devices[1].engine, kChannel, "event-2", event2.data, event2.len));
  do { /* the node: let both engines work until neither has anything to do */
    size_t a = 0, b = 0;
    TRY(towns_key_exchange_run(devices[0].engine, &a));
    TRY(towns_key_exchange_run(devices[1].engine, &b));
    units = a + b;
  } while (units > 0);
  expect(strcmp(devices[1].decrypted, "event-2: This key was never shared") == 0,
         "Bob's engine decrypts the waiting event once the key arrives");
  TRY(towns_key_exchange_stats_get(devices[1].engine, &stats));
  expect(stats.solicitations_sent == 1 && stats.sessions_imported == 1 && stats.waiting_events == 0,
         "Bob: one solicitation, one session imported, nothing waits");
  TRY(towns_key_exchange_stats_get(devices[0].engine, &stats));
  expect(stats.fulfillments_sent == 1 && stats.shares_sent == 1, "Alice: one fulfillment, one share");

  /* Handles may be freed in any order; buffers and strings are wiped. */
  towns_buffer_free(&message);
  towns_buffer_free(&event1);
  towns_buffer_free(&event2);
  towns_string_free(&session_id);
  towns_string_free(&hybrid_id);
  towns_string_free(&result);
  for (i = 0; i < 2; ++i) {
    towns_key_exchange_free(devices[i].engine);
    towns_crypto_free(devices[i].crypto);
    towns_store_free(devices[i].store);
    towns_string_free(&devices[i].device_key);
    towns_string_free(&devices[i].fallback_key);
  }
  towns_stream_solicitations_free(channel_solicitations);
  if (failures != 0) {
    printf("%d check(s) failed.\n", failures);
    return 1;
  }
  printf("All steps gave the expected results.\n");
  return 0;
}
