/* The C ABI (include/towns/towns.h), compiled as C99: two devices on two SQLite
 * stores, session sharing, both algorithms, the error paths, room keys, the
 * key exchange engine recovering a missing key, the status code table, and
 * the vector verifier on the corpus (its directory is the first argument).
 * Exits non-zero on any failed check, naming it. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "towns/towns.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                               \
  do {                                                                            \
    ++checks;                                                                     \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
      ++failures;                                                                 \
    }                                                                             \
  } while (0)

/* The call gives exactly `expected`. */
#define CHECK_STATUS(call, expected)                                                              \
  do {                                                                                            \
    towns_status s_ = (call);                                                                     \
    ++checks;                                                                                     \
    if (s_ != (expected)) {                                                                       \
      fprintf(stderr, "%s:%d: %s gave %d %s (%s), expected %d %s\n", __FILE__, __LINE__, #call, s_, \
              name_of(s_), towns_last_error_message(), (int)(expected), name_of(expected));       \
      ++failures;                                                                                 \
    }                                                                                             \
  } while (0)

/* A step the rest depends on: stop at once when it fails. */
#define REQUIRE_OK(call)                                                                        \
  do {                                                                                          \
    towns_status s_ = (call);                                                                   \
    ++checks;                                                                                   \
    if (s_ != TOWNS_OK) {                                                                       \
      fprintf(stderr, "%s:%d: %s gave %d %s (%s); stopping\n", __FILE__, __LINE__, #call, s_,   \
              name_of(s_), towns_last_error_message());                                         \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

#define CHECK_STR(actual, expected)                                                                   \
  do {                                                                                                \
    const char *a_ = (actual);                                                                        \
    const char *e_ = (expected);                                                                      \
    ++checks;                                                                                         \
    if (a_ == NULL || strcmp(a_, e_) != 0) {                                                          \
      fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #actual,          \
              a_ ? a_ : "(null)", e_);                                                                \
      ++failures;                                                                                     \
    }                                                                                                 \
  } while (0)

#define CHECK_BYTES(buf, text)                                                                        \
  do {                                                                                                \
    const char *t_ = (text);                                                                          \
    ++checks;                                                                                         \
    if ((buf).len != strlen(t_) || memcmp((buf).data, t_, strlen(t_)) != 0) {                         \
      fprintf(stderr, "%s:%d: %s is %lu bytes \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, #buf, \
              (unsigned long)(buf).len, (int)(buf).len, (buf).data ? (const char *)(buf).data : "", t_); \
      ++failures;                                                                                     \
    }                                                                                                 \
  } while (0)

static const char *name_of(towns_status s) {
  const char *n = towns_status_name(s);
  return n ? n : "(no name)";
}

static const uint8_t kPickleA[] = "pickle key of device A";
static const uint8_t kPickleB[] = "pickle key of device B";
static const uint8_t kPickleC[] = "pickle key of device C";
#define KEY(k) (k), (sizeof(k) - 1)

/* Stream ids (channels: "20" + 62 lower-case hex digits) and user ids. */
static const char kStream1[] = "20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char kStream2[] = "20bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char kStream3[] = "20cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
static const char kUserA[] = "0x1111111111111111111111111111111111111111";
static const char kUserB[] = "0x2222222222222222222222222222222222222222";

/* ---- 1. The status code table: the header's values against the library's
 * names (towns::error_code_name), complete, nothing past the last. */
static void test_status_table(void) {
  static const struct {
    int code;
    const char *name;
  } table[] = {
      {TOWNS_E_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {TOWNS_E_UNKNOWN_COMMAND, "UNKNOWN_COMMAND"},
      {TOWNS_E_NOT_INITIALIZED, "NOT_INITIALIZED"},
      {TOWNS_E_INTERNAL, "INTERNAL"},
      {TOWNS_E_LIMIT_EXCEEDED, "LIMIT_EXCEEDED"},
      {TOWNS_E_GROUP_DECRYPTION_MISSING_FIELDS, "GROUP_DECRYPTION_MISSING_FIELDS"},
      {TOWNS_E_GROUP_DECRYPTION_UNSET_ALGORITHM, "GROUP_DECRYPTION_UNSET_ALGORITHM"},
      {TOWNS_E_GROUP_DECRYPTION_UNKNOWN_ALGORITHM, "GROUP_DECRYPTION_UNKNOWN_ALGORITHM"},
      {TOWNS_E_GROUP_DECRYPTION_INVALID_VERSION, "GROUP_DECRYPTION_INVALID_VERSION"},
      {TOWNS_E_HYBRID_GROUP_DECRYPTION_MISSING_FIELDS, "HYBRID_GROUP_DECRYPTION_MISSING_FIELDS"},
      {TOWNS_E_SESSION_NOT_FOUND, "SESSION_NOT_FOUND"},
      {TOWNS_E_DECRYPTION_FAILED, "DECRYPTION_FAILED"},
      {TOWNS_E_PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"},
      {TOWNS_E_EMPTY_PAYLOAD, "EMPTY_PAYLOAD"},
      {TOWNS_E_IMPORT_FAILED, "IMPORT_FAILED"},
      {TOWNS_E_REPLAY, "REPLAY"},
      {TOWNS_E_UNKNOWN_ALGORITHM, "UNKNOWN_ALGORITHM"},
      {TOWNS_E_BAD_ENCODING, "BAD_ENCODING"},
      {TOWNS_E_OLM_NOT_ENOUGH_RANDOM, "OLM_NOT_ENOUGH_RANDOM"},
      {TOWNS_E_OLM_OUTPUT_BUFFER_TOO_SMALL, "OLM_OUTPUT_BUFFER_TOO_SMALL"},
      {TOWNS_E_OLM_BAD_MESSAGE_VERSION, "OLM_BAD_MESSAGE_VERSION"},
      {TOWNS_E_OLM_BAD_MESSAGE_FORMAT, "OLM_BAD_MESSAGE_FORMAT"},
      {TOWNS_E_OLM_BAD_MESSAGE_MAC, "OLM_BAD_MESSAGE_MAC"},
      {TOWNS_E_OLM_BAD_MESSAGE_KEY_ID, "OLM_BAD_MESSAGE_KEY_ID"},
      {TOWNS_E_OLM_INVALID_BASE64, "OLM_INVALID_BASE64"},
      {TOWNS_E_OLM_BAD_ACCOUNT_KEY, "OLM_BAD_ACCOUNT_KEY"},
      {TOWNS_E_OLM_UNKNOWN_PICKLE_VERSION, "OLM_UNKNOWN_PICKLE_VERSION"},
      {TOWNS_E_OLM_CORRUPTED_PICKLE, "OLM_CORRUPTED_PICKLE"},
      {TOWNS_E_OLM_BAD_SESSION_KEY, "OLM_BAD_SESSION_KEY"},
      {TOWNS_E_OLM_UNKNOWN_MESSAGE_INDEX, "OLM_UNKNOWN_MESSAGE_INDEX"},
      {TOWNS_E_OLM_BAD_LEGACY_ACCOUNT_PICKLE, "OLM_BAD_LEGACY_ACCOUNT_PICKLE"},
      {TOWNS_E_OLM_BAD_SIGNATURE, "OLM_BAD_SIGNATURE"},
      {TOWNS_E_OLM_INPUT_BUFFER_TOO_SMALL, "OLM_INPUT_BUFFER_TOO_SMALL"},
      {TOWNS_E_OLM_SAS_THEIR_KEY_NOT_SET, "OLM_SAS_THEIR_KEY_NOT_SET"},
      {TOWNS_E_OLM_PICKLE_EXTRA_DATA, "OLM_PICKLE_EXTRA_DATA"},
      {TOWNS_E_OLM_UNKNOWN_ERROR, "OLM_UNKNOWN_ERROR"},
      {TOWNS_E_STORE_ERROR, "STORE_ERROR"},
      {TOWNS_E_STORE_WRONG_PICKLE_KEY, "STORE_WRONG_PICKLE_KEY"},
      {TOWNS_E_STORE_CORRUPT, "STORE_CORRUPT"},
      {TOWNS_E_STORE_NEWER_SCHEMA, "STORE_NEWER_SCHEMA"},
      {TOWNS_E_STORE_BUSY, "STORE_BUSY"},
  };
  size_t n = sizeof(table) / sizeof(table[0]), i;
  CHECK(n == (size_t)TOWNS_E_LAST);
  CHECK(TOWNS_E_SESSION_NOT_FOUND == 11);
  for (i = 0; i < n; ++i) {
    CHECK(table[i].code == (int)i + 1);
    CHECK_STR(towns_status_name(table[i].code), table[i].name);
  }
  CHECK_STR(towns_status_name(TOWNS_OK), "OK");
  CHECK(towns_status_name(TOWNS_E_LAST + 1) == NULL);
  CHECK(towns_status_name(-1) == NULL);
  CHECK(towns_version() != NULL && strlen(towns_version()) > 0);
}

/* ---- The simulated node: the host callbacks queue what the engines send;
 * the test delivers it. */

enum { SOLICITATION, FULFILLMENT, SHARE };
typedef struct {
  int kind;
  int from; /* device 0 (A) or 1 (B) */
  char target[80]; /* stream id, or the user id of a share */
  uint8_t *bytes;
  size_t len;
  int ephemeral;
} message;

#define MAX_MESSAGES 64
static message queue[MAX_MESSAGES];
static size_t queued = 0;
static char device_keys[2][128], fallback_keys[2][128];
static towns_stream_solicitations *stored_solicitations; /* stream 2's state */
static towns_stream_solicitations *stored3;              /* stream 3's state */
static size_t stored_fulfillments = 0;                   /* stored KeyFulfillments the node applied */

static towns_stream_solicitations *stored_for(const char *stream_id) {
  if (strcmp(stream_id, kStream2) == 0) return stored_solicitations;
  if (strcmp(stream_id, kStream3) == 0) return stored3;
  return NULL;
}

typedef struct {
  int device;
  int decrypted;
  char event_id[32];
  char plaintext[64];
  int64_t message_index;
  int errors, missing;
  /* Re-entrancy: the engine these callbacks belong to, and what to do to it
   * from inside a callback. */
  towns_key_exchange *self;
  int reenter;                  /* call run / tick / advance on self */
  towns_status reentered[3];    /* what they gave */
  char reentered_message[256];  /* the last one's message */
  int free_self;                /* free self, then try a call on it */
  towns_status after_free;
} device_log;
static device_log logs[2];

static void reenter(device_log *l) {
  if (l->self == NULL) return;
  if (l->reenter) {
    l->reenter = 0;
    l->reentered[0] = towns_key_exchange_run(l->self, NULL);
    l->reentered[1] = towns_key_exchange_tick(l->self, NULL);
    l->reentered[2] = towns_key_exchange_advance(l->self, 1000000);
    snprintf(l->reentered_message, sizeof l->reentered_message, "%s", towns_last_error_message());
  }
  if (l->free_self) {
    towns_key_exchange_stats st;
    l->free_self = 0;
    towns_key_exchange_free(l->self); /* deferred to the end of the run in progress */
    l->after_free = towns_key_exchange_stats_get(l->self, &st);
    l->self = NULL;
  }
}

static towns_status push(int kind, int from, const char *target, const uint8_t *bytes, size_t len, int ephemeral) {
  message *m;
  if (queued == MAX_MESSAGES) return TOWNS_E_LIMIT_EXCEEDED;
  m = &queue[queued++];
  m->kind = kind;
  m->from = from;
  snprintf(m->target, sizeof m->target, "%s", target);
  m->bytes = malloc(len ? len : 1);
  if (m->bytes == NULL) return TOWNS_E_INTERNAL;
  memcpy(m->bytes, bytes, len);
  m->len = len;
  m->ephemeral = ephemeral;
  return TOWNS_OK;
}

static towns_status host_send_solicitation(void *ud, const char *stream_id, const uint8_t *s, size_t len,
                                           int ephemeral) {
  return push(SOLICITATION, ((device_log *)ud)->device, stream_id, s, len, ephemeral);
}
static towns_status host_send_fulfillment(void *ud, const char *stream_id, const uint8_t *f, size_t len,
                                          int ephemeral, int *accepted) {
  *accepted = 1;
  return push(FULFILLMENT, ((device_log *)ud)->device, stream_id, f, len, ephemeral);
}
static towns_status host_send_share(void *ud, const char *to_user, const uint8_t *m, size_t len) {
  return push(SHARE, ((device_log *)ud)->device, to_user, m, len, 0);
}
static towns_status host_user_devices(void *ud, const char *user_id, towns_reply *reply) {
  char json[600];
  int d = strcmp(user_id, kUserA) == 0 ? 0 : strcmp(user_id, kUserB) == 0 ? 1 : -1;
  (void)ud;
  if (d < 0) return TOWNS_OK; /* nobody's devices: an empty reply */
  snprintf(json, sizeof json, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]", device_keys[d], fallback_keys[d]);
  return towns_reply_set(reply, (const uint8_t *)json, strlen(json));
}
static towns_status host_stream_members(void *ud, const char *stream_id, towns_reply *reply) {
  char json[200];
  (void)ud;
  (void)stream_id;
  snprintf(json, sizeof json, "[\"%s\",\"%s\"]", kUserA, kUserB);
  return towns_reply_set(reply, (const uint8_t *)json, strlen(json));
}
static towns_status host_is_user_entitled(void *ud, const char *stream_id, const char *user_id, int *entitled) {
  (void)ud;
  (void)stream_id;
  (void)user_id;
  *entitled = 1;
  return TOWNS_OK;
}
static towns_status host_key_solicitations(void *ud, const char *stream_id, towns_stream_solicitations **out) {
  (void)ud;
  *out = stored_for(stream_id);
  return TOWNS_OK;
}
static towns_status host_miniblock(void *ud, const char *stream_id, int64_t *num, towns_reply *hash) {
  static const uint8_t zero[32] = {0};
  (void)ud;
  (void)stream_id;
  *num = 1;
  return towns_reply_set(hash, zero, sizeof zero);
}
static void host_on_decrypted(void *ud, const char *stream_id, const char *event_id, const uint8_t *plaintext,
                              size_t len, int64_t message_index) {
  device_log *l = ud;
  (void)stream_id;
  ++l->decrypted;
  snprintf(l->event_id, sizeof l->event_id, "%s", event_id);
  snprintf(l->plaintext, sizeof l->plaintext, "%.*s", (int)len, (const char *)plaintext);
  l->message_index = message_index;
  reenter(l);
}
static void host_on_error(void *ud, const char *stream_id, const char *event_id, towns_status status,
                          const char *msg, int missing_session) {
  device_log *l = ud;
  (void)stream_id;
  (void)event_id;
  (void)msg;
  ++l->errors;
  if (missing_session && status == TOWNS_E_SESSION_NOT_FOUND) ++l->missing;
  reenter(l);
}

static towns_key_exchange_host make_host(device_log *log) {
  towns_key_exchange_host h;
  memset(&h, 0, sizeof h);
  h.user_data = log;
  h.send_key_solicitation = host_send_solicitation;
  h.send_key_fulfillment = host_send_fulfillment;
  h.send_group_encryption_sessions = host_send_share;
  h.user_devices = host_user_devices;
  h.stream_members = host_stream_members;
  h.is_user_entitled = host_is_user_entitled;
  h.key_solicitations = host_key_solicitations;
  h.get_miniblock_info = host_miniblock;
  h.on_decrypted = host_on_decrypted;
  h.on_decryption_error = host_on_error;
  return h;
}

/* The node: deliver everything queued from `next` on to the other device's
 * engine, until nothing more is sent; a stored solicitation or fulfillment
 * goes through the stream's towns_stream_solicitations first. Both engines'
 * time advances to t0 + the round after each message. */
static void deliver(towns_key_exchange *xa, towns_key_exchange *xb, size_t next, int64_t t0) {
  int rounds = 0;
  while (next < queued && rounds < 20) {
    message *m = &queue[next++];
    towns_key_exchange *to = m->from == 0 ? xb : xa;
    const char *from_user = m->from == 0 ? kUserA : kUserB;
    ++rounds;
    if (m->kind == SOLICITATION) {
      if (m->ephemeral) {
        REQUIRE_OK(towns_key_exchange_enqueue_key_solicitation(to, m->target, from_user, m->bytes, m->len, 1, NULL));
      } else {
        towns_buffer stored = {0};
        REQUIRE_OK(towns_stream_solicitations_apply_solicitation(stored_for(m->target), from_user, m->bytes, m->len,
                                                                 &stored));
        REQUIRE_OK(towns_key_exchange_enqueue_key_solicitation(to, m->target, from_user, stored.data, stored.len, 0,
                                                               NULL));
        towns_buffer_free(&stored);
      }
    } else if (m->kind == FULFILLMENT) {
      if (m->ephemeral) {
        REQUIRE_OK(towns_key_exchange_on_ephemeral_key_fulfillment(to, m->target, m->bytes, m->len));
      } else {
        /* A stored fulfillment updates the requester's stored solicitation,
         * which every device then sees. */
        int found = 7;
        towns_string user = {0};
        towns_buffer updated = {0};
        REQUIRE_OK(towns_stream_solicitations_apply_fulfillment(stored_for(m->target), m->bytes, m->len, &found,
                                                                &user, &updated));
        ++stored_fulfillments;
        CHECK(found == 1);
        CHECK_STR(user.data, m->from == 0 ? kUserB : kUserA);
        if (found) {
          REQUIRE_OK(towns_key_exchange_enqueue_key_solicitation(xa, m->target, user.data, updated.data, updated.len,
                                                                 0, NULL));
          REQUIRE_OK(towns_key_exchange_enqueue_key_solicitation(xb, m->target, user.data, updated.data, updated.len,
                                                                 0, NULL));
        }
        towns_string_free(&user);
        towns_buffer_free(&updated);
      }
    } else {
      CHECK_STR(m->target, m->from == 0 ? kUserB : kUserA);
      REQUIRE_OK(towns_key_exchange_enqueue_new_group_sessions(to, m->bytes, m->len));
    }
    REQUIRE_OK(towns_key_exchange_advance(xa, t0 + rounds));
    REQUIRE_OK(towns_key_exchange_advance(xb, t0 + rounds));
  }
}

/* The first string value in a JSON object {"key":"value"}: enough for
 * encrypt_with_device_keys' one-device result (base64 needs no escapes). */
static void first_value(const char *json, char *out, size_t cap) {
  const char *p = strstr(json, "\":\"");
  size_t n;
  out[0] = '\0';
  if (p == NULL) return;
  p += 3;
  n = strcspn(p, "\"");
  if (n >= cap) return;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* ---- Test vectors */

/* The whole file, NUL-terminated; NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  if (f == NULL) return NULL;
  do {
    if (n + 4096 + 1 > cap) {
      char *bigger;
      cap = (n + 4096 + 1) * 2;
      bigger = realloc(buf, cap);
      if (bigger == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = bigger;
    }
    got = fread(buf + n, 1, 4096, f);
    n += got;
  } while (got > 0);
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

static int write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (f == NULL) return 0;
  ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

static size_t count_of(const char *text, const char *needle) {
  size_t n = 0;
  const char *p = text;
  while ((p = strstr(p, needle)) != NULL) {
    ++n;
    p += strlen(needle);
  }
  return n;
}

/* The number of tests in dir's *.json files, counted from the files (their
 * "tcId" keys) independently of the library; *declared: the sum of their
 * numberOfTests. */
static size_t count_vectors(const char *dir, size_t *declared) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t n = 0;
  *declared = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    char path[1024];
    char *text;
    const char *p;
    if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    text = read_file(path, NULL);
    if (text == NULL) continue;
    n += count_of(text, "\"tcId\":");
    p = strstr(text, "\"numberOfTests\":");
    if (p) *declared += strtoul(p + strlen("\"numberOfTests\":"), NULL, 10);
    free(text);
  }
  closedir(d);
  return n;
}

static void test_vectors(const char *dir) {
  size_t passed = 99, failed = 99, expected, declared, len = 0;
  towns_string report = {0};
  char tmp[] = "/tmp/towns-capi-vectors-XXXXXX";
  char src[1024], dst[1024], empty_dir[1024];
  char *text;

  if (dir == NULL) {
    fprintf(stderr, "no vectors directory given (the first argument)\n");
    ++checks;
    ++failures;
    return;
  }
  /* The corpus: every test passes, none fails. */
  expected = count_vectors(dir, &declared);
  CHECK(expected > 0);
  CHECK(declared == expected);
  REQUIRE_OK(towns_vectors_verify(dir, &passed, &failed, &report));
  CHECK(passed == expected);
  CHECK(failed == 0);
  CHECK_STR(report.data, "[]");
  if (failed != 0 && report.data) fprintf(stderr, "failures: %s\n", report.data);
  towns_string_free(&report);
  /* report_json may be NULL. */
  REQUIRE_OK(towns_vectors_verify(dir, &passed, &failed, NULL));
  CHECK(passed == expected && failed == 0);

  /* One tampered file (grpaes.json, its first session id changed): that test
   * fails, named; the others pass. */
  if (mkdtemp(tmp) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  snprintf(src, sizeof src, "%s/grpaes.json", dir);
  snprintf(dst, sizeof dst, "%s/tampered.json", tmp);
  text = read_file(src, &len);
  CHECK(text != NULL);
  if (text != NULL) {
    size_t in_file, declared_in_file;
    char *p = strstr(text, "\"sessionId\": \"");
    CHECK(p != NULL);
    if (p != NULL) {
      p += strlen("\"sessionId\": \"");
      *p = *p == 'a' ? 'b' : 'a';
    }
    CHECK(write_file(dst, text, len));
    free(text);
    in_file = count_vectors(tmp, &declared_in_file);
    REQUIRE_OK(towns_vectors_verify(tmp, &passed, &failed, &report));
    CHECK(failed == 1);
    CHECK(passed == in_file - 1);
    CHECK(report.data != NULL && strncmp(report.data, "[\"tampered.json tcId 1 (hybridSessionId, ", 41) == 0);
    CHECK(report.data != NULL && count_of(report.data, "tampered.json") == 1);
    towns_string_free(&report);
    CHECK(report.data == NULL && report.len == 0);
  }

  /* A directory without vector files: the run fails once, saying so. */
  snprintf(empty_dir, sizeof empty_dir, "%s/empty", tmp);
  CHECK(mkdir(empty_dir, 0700) == 0);
  REQUIRE_OK(towns_vectors_verify(empty_dir, &passed, &failed, &report));
  CHECK(passed == 0 && failed == 1);
  CHECK(report.data != NULL && strstr(report.data, "no vector files") != NULL);
  towns_string_free(&report);

  /* What is not a directory, and NULLs: INVALID_ARGUMENT, the outputs empty. */
  passed = failed = 99;
  CHECK_STATUS(towns_vectors_verify("/nonexistent/towns-vectors", &passed, &failed, &report),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK(strstr(towns_last_error_message(), "not a directory") != NULL);
  CHECK(passed == 0 && failed == 0 && report.data == NULL && report.len == 0);
  CHECK_STATUS(towns_vectors_verify(dst, &passed, &failed, &report), TOWNS_E_INVALID_ARGUMENT); /* a file */
  CHECK(report.data == NULL);
  CHECK_STATUS(towns_vectors_verify(NULL, &passed, &failed, &report), TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_vectors_verify(dir, NULL, &failed, &report), TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_vectors_verify(dir, &passed, NULL, &report), TOWNS_E_INVALID_ARGUMENT);
  CHECK(report.data == NULL);

  unlink(dst);
  rmdir(empty_dir);
  rmdir(tmp);
}

static char tmpdir[] = "/tmp/towns-capi-XXXXXX";
static char path_a[64], path_b[64];

static void cleanup(void) {
  const char *suffixes[] = {"", "-wal", "-shm", "-gen"};
  char p[96];
  size_t i;
  for (i = 0; i < 4; ++i) {
    snprintf(p, sizeof p, "%s%s", path_a, suffixes[i]);
    unlink(p);
    snprintf(p, sizeof p, "%s%s", path_b, suffixes[i]);
    unlink(p);
  }
  rmdir(tmpdir);
}

int main(int argc, char **argv) {
  towns_store *store_a = NULL, *store_b = NULL, *store_c = NULL, *store_d = NULL;
  towns_crypto *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  towns_key_exchange *xa = NULL, *xb = NULL;
  towns_key_exchange_host host_a, host_b;
  towns_key_exchange_options options;
  towns_string dk = {0}, fk = {0}, s_megolm = {0}, s_hybrid = {0}, json = {0}, json2 = {0}, skipped = {0};
  towns_buffer ed1 = {0}, ed2 = {0}, eh1 = {0}, plain = {0}, share = {0}, share_h = {0}, exported = {0};
  int64_t index = 99;
  int flag = 7;
  char expected[1024], body[2048], sessions[4096];
  static const uint8_t kMalformed[] = {0x0a, 0xff, 0xff}; /* field 1, a length past the end */
  static const uint8_t kZeroHash[32] = {0};
  towns_miniblock_info miniblock;
  size_t i;

  test_status_table();
  test_vectors(argc > 1 ? argv[1] : NULL);

  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(path_a, sizeof path_a, "%s/a.db", tmpdir);
  snprintf(path_b, sizeof path_b, "%s/b.db", tmpdir);
  atexit(cleanup);

  /* ---- 2. Two devices on two SQLite stores. */
  REQUIRE_OK(towns_store_open_sqlite(path_a, KEY(kPickleA), TOWNS_STORE_CREATE, &store_a));
  REQUIRE_OK(towns_store_open_sqlite(path_b, KEY(kPickleB), TOWNS_STORE_CREATE, &store_b));
  CHECK_STATUS(towns_store_open_sqlite(path_a, KEY(kPickleA), TOWNS_STORE_CREATE, &store_c), TOWNS_E_STORE_ERROR);
  CHECK(store_c == NULL);
  REQUIRE_OK(towns_crypto_create(store_a, KEY(kPickleA), NULL, 0, NULL, &a));
  REQUIRE_OK(towns_crypto_create(store_b, KEY(kPickleB), NULL, 0, NULL, &b));
  for (i = 0; i < 2; ++i) {
    REQUIRE_OK(towns_crypto_device_keys(i == 0 ? a : b, &dk, &fk));
    CHECK(dk.len == 43 && strlen(dk.data) == 43);
    CHECK(fk.len == 43 && strlen(fk.data) == 43);
    snprintf(device_keys[i], sizeof device_keys[i], "%s", dk.data);
    snprintf(fallback_keys[i], sizeof fallback_keys[i], "%s", fk.data);
    towns_string_free(&dk);
    towns_string_free(&fk);
    CHECK(dk.data == NULL && dk.len == 0);
  }
  CHECK(strcmp(device_keys[0], device_keys[1]) != 0);

  /* ---- 3. Megolm: A encrypts; B has no session yet. */
  REQUIRE_OK(towns_crypto_ensure_outbound_session(a, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, NULL, &s_megolm));
  CHECK(s_megolm.len == 43);
  CHECK_STATUS(towns_crypto_has_outbound_session(a, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, &flag), TOWNS_OK);
  CHECK(flag == 1);
  CHECK_STATUS(towns_crypto_has_outbound_session(b, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, &flag), TOWNS_OK);
  CHECK(flag == 0);
  REQUIRE_OK(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"hello megolm", 12,
                                              TOWNS_ALGORITHM_GROUP_ENCRYPTION, &ed1));
  REQUIRE_OK(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"second", 6,
                                              TOWNS_ALGORITHM_GROUP_ENCRYPTION, &ed2));
  CHECK(ed1.len > 0 && ed1.data != NULL);

  /* The error paths. */
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, kStream1, ed1.data, ed1.len, &plain, &index),
               TOWNS_E_SESSION_NOT_FOUND);
  CHECK(strlen(towns_last_error_message()) > 0);
  CHECK(strstr(towns_last_error_message(), "SESSION_NOT_FOUND") != NULL);
  CHECK(plain.data == NULL && plain.len == 0);
  CHECK(index == -1);
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, NULL, ed1.data, ed1.len, &plain, NULL), TOWNS_E_INVALID_ARGUMENT);
  CHECK(strlen(towns_last_error_message()) > 0);
  CHECK_STATUS(towns_crypto_decrypt_group_event(NULL, kStream1, ed1.data, ed1.len, &plain, NULL),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, kStream1, ed1.data, ed1.len, NULL, NULL), TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, kStream1, NULL, 5, &plain, NULL), TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, kStream1, kMalformed, sizeof kMalformed, &plain, NULL),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_create(NULL, KEY(kPickleC), NULL, 0, NULL, &c), TOWNS_E_INVALID_ARGUMENT);
  CHECK(c == NULL);
  CHECK_STATUS(towns_crypto_encrypt_group_event(a, "not a stream", (const uint8_t *)"x", 1,
                                                TOWNS_ALGORITHM_GROUP_ENCRYPTION, &plain),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"x", 1, (towns_algorithm)7, &plain),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_export_group_session(b, kStream1, s_megolm.data, &json), TOWNS_E_SESSION_NOT_FOUND);
  CHECK_STATUS(towns_crypto_device_keys(a, &dk, &fk), TOWNS_OK);
  CHECK_STR(towns_last_error_message(), "");
  towns_string_free(&dk);
  towns_string_free(&fk);
  /* A NULL out: refused before anything is made (nothing leaks). */
  CHECK_STATUS(towns_stream_solicitations_create(NULL), TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_has_outbound_session(a, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, NULL),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK_STATUS(towns_crypto_has_session_key(a, kStream1, s_megolm.data, TOWNS_ALGORITHM_GROUP_ENCRYPTION, NULL),
               TOWNS_E_INVALID_ARGUMENT);
  CHECK(strstr(towns_last_error_message(), "out is NULL") != NULL);
  /* A failed batch decrypt: every result is {the status, empty, -1, empty}. */
  {
    towns_bytes events[2];
    towns_decrypt_result results[2];
    events[0].data = ed1.data;
    events[0].len = ed1.len;
    events[1] = events[0];
    memset(results, 0x5a, sizeof results);
    CHECK_STATUS(towns_crypto_decrypt_group_events(a, NULL, events, 2, results), TOWNS_E_INVALID_ARGUMENT);
    for (i = 0; i < 2; ++i) {
      CHECK(results[i].status == TOWNS_E_INVALID_ARGUMENT);
      CHECK(results[i].plaintext.data == NULL && results[i].plaintext.len == 0);
      CHECK(results[i].message_index == -1);
      CHECK(results[i].error_message.data == NULL && results[i].error_message.len == 0);
    }
    towns_decrypt_results_free(results, 2); /* nothing to free: fine */
  }
  towns_store_free(NULL);
  towns_crypto_free(NULL);
  towns_key_exchange_free(NULL);
  towns_stream_solicitations_free(NULL);
  towns_buffer_free(NULL);
  towns_string_free(NULL);

  /* ---- 4. Session sharing: A shares its megolm session with B's device. */
  REQUIRE_OK(towns_crypto_export_group_session(a, kStream1, s_megolm.data, &json));
  snprintf(sessions, sizeof sessions, "[%s]", json.data);
  towns_string_free(&json);
  snprintf(body, sizeof body, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"},{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]",
           device_keys[0], fallback_keys[0], device_keys[1], fallback_keys[1]);
  REQUIRE_OK(towns_build_group_encryption_sessions(a, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, sessions, body,
                                                   &share, &skipped));
  CHECK_STR(skipped.data, "[]"); /* our own device is left out, not skipped */
  towns_string_free(&skipped);
  REQUIRE_OK(towns_receive_group_encryption_sessions(b, share.data, share.len, &json));
  snprintf(expected, sizeof expected,
           "{\"status\":\"imported\",\"streamId\":\"%s\",\"algorithm\":\"r.group-encryption.v1.aes-sha2\","
           "\"imported\":[\"%s\"],\"failed\":[]}",
           kStream1, s_megolm.data);
  CHECK_STR(json.data, expected);
  towns_string_free(&json);
  /* The same message again: nothing is missing any more. */
  REQUIRE_OK(towns_receive_group_encryption_sessions(b, share.data, share.len, &json));
  snprintf(expected, sizeof expected,
           "{\"status\":\"nothing_missing\",\"streamId\":\"%s\",\"algorithm\":\"r.group-encryption.v1.aes-sha2\","
           "\"imported\":[],\"failed\":[]}",
           kStream1);
  CHECK_STR(json.data, expected);
  towns_string_free(&json);
  CHECK_STATUS(towns_receive_group_encryption_sessions(b, kMalformed, sizeof kMalformed, &json),
               TOWNS_E_INVALID_ARGUMENT);

  REQUIRE_OK(towns_crypto_decrypt_group_event(b, kStream1, ed1.data, ed1.len, &plain, &index));
  CHECK_BYTES(plain, "hello megolm");
  CHECK(index == 0);
  towns_buffer_free(&plain);
  CHECK(plain.data == NULL && plain.len == 0);

  /* ---- 5. Hybrid (grpaes): a session at a given miniblock, shared in a batch. */
  miniblock.miniblock_num = 5;
  miniblock.miniblock_hash = kZeroHash;
  miniblock.miniblock_hash_len = sizeof kZeroHash;
  CHECK_STATUS(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"x", 1,
                                                TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, &eh1),
               TOWNS_E_INVALID_ARGUMENT); /* no session, no miniblock, no host */
  REQUIRE_OK(towns_crypto_ensure_outbound_session(a, kStream1, TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, &miniblock,
                                                  &s_hybrid));
  CHECK(s_hybrid.len == 64);
  REQUIRE_OK(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"hello grpaes", 12,
                                              TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, &eh1));
  CHECK_STATUS(towns_crypto_encrypt_group_event(a, kStream1, (const uint8_t *)"", 0,
                                                TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, &plain),
               TOWNS_E_EMPTY_PAYLOAD);
  CHECK_STATUS(towns_crypto_decrypt_group_event(b, kStream1, eh1.data, eh1.len, &plain, &index),
               TOWNS_E_SESSION_NOT_FOUND);
  REQUIRE_OK(towns_crypto_export_group_session(a, kStream1, s_hybrid.data, &json));
  snprintf(sessions, sizeof sessions, "[%s]", json.data);
  towns_string_free(&json);
  REQUIRE_OK(towns_build_group_encryption_sessions(a, kStream1, TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, sessions,
                                                   body, &share_h, NULL));
  {
    towns_bytes batch[2];
    batch[0].data = share_h.data;
    batch[0].len = share_h.len;
    batch[1].data = kMalformed;
    batch[1].len = sizeof kMalformed;
    REQUIRE_OK(towns_receive_group_encryption_sessions_batch(b, batch, 2, &json));
    snprintf(expected, sizeof expected,
             "[{\"status\":\"imported\",\"streamId\":\"%s\",\"algorithm\":\"grpaes\",\"imported\":[\"%s\"],"
             "\"failed\":[]},{\"error\":{\"code\":1,\"name\":\"INVALID_ARGUMENT\",\"message\":\"",
             kStream1, s_hybrid.data);
    CHECK(json.data != NULL && strncmp(json.data, expected, strlen(expected)) == 0);
    CHECK(json.len > strlen(expected) + 4 && strcmp(json.data + json.len - 4, "\"}}]") == 0);
    towns_string_free(&json);
  }
  REQUIRE_OK(towns_crypto_decrypt_group_event(b, kStream1, eh1.data, eh1.len, &plain, &index));
  CHECK_BYTES(plain, "hello grpaes");
  CHECK(index == -1);
  towns_buffer_free(&plain);
  CHECK_STATUS(towns_crypto_has_session_key(b, kStream1, s_hybrid.data, TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION,
                                            &flag),
               TOWNS_OK);
  CHECK(flag == 1);

  /* ---- 6. The batch decrypt: results in order, a malformed event alone refused. */
  {
    towns_bytes events[4];
    towns_decrypt_result results[4];
    events[0].data = ed1.data;
    events[0].len = ed1.len;
    events[1].data = eh1.data;
    events[1].len = eh1.len;
    events[2].data = kMalformed;
    events[2].len = sizeof kMalformed;
    events[3].data = ed2.data;
    events[3].len = ed2.len;
    REQUIRE_OK(towns_crypto_set_parallelism(b, 2));
    REQUIRE_OK(towns_crypto_decrypt_group_events(b, kStream1, events, 4, results));
    CHECK(results[0].status == TOWNS_OK);
    CHECK_BYTES(results[0].plaintext, "hello megolm");
    CHECK(results[0].message_index == 0);
    CHECK(results[0].error_message.data == NULL);
    CHECK(results[1].status == TOWNS_OK);
    CHECK_BYTES(results[1].plaintext, "hello grpaes");
    CHECK(results[1].message_index == -1);
    CHECK(results[2].status == TOWNS_E_INVALID_ARGUMENT);
    CHECK(results[2].plaintext.data == NULL && results[2].plaintext.len == 0);
    CHECK(results[2].error_message.data != NULL && results[2].error_message.len > 0);
    CHECK(results[3].status == TOWNS_OK);
    CHECK_BYTES(results[3].plaintext, "second");
    CHECK(results[3].message_index == 1);
    towns_decrypt_results_free(results, 4);
    CHECK(results[0].plaintext.data == NULL && results[2].error_message.data == NULL);
  }

  /* ---- 7. Device-to-device olm messages. */
  snprintf(body, sizeof body, "[{\"deviceKey\":\"%s\",\"fallbackKey\":\"%s\"}]", device_keys[1], fallback_keys[1]);
  REQUIRE_OK(towns_crypto_encrypt_with_device_keys(a, "to B only", body, &json));
  CHECK(strncmp(json.data, "{\"", 2) == 0 && strncmp(json.data + 2, device_keys[1], strlen(device_keys[1])) == 0);
  first_value(json.data, body, sizeof body);
  towns_string_free(&json);
  REQUIRE_OK(towns_crypto_decrypt_with_device_key(b, body, device_keys[0], &plain));
  CHECK_BYTES(plain, "to B only");
  towns_buffer_free(&plain);
  CHECK_STATUS(towns_crypto_encrypt_with_device_keys(a, "x", "{not json", &json), TOWNS_E_INVALID_ARGUMENT);

  /* ---- 8. Room keys: B's exported keys into a new device C (memory store). */
  REQUIRE_OK(towns_crypto_export_room_keys(b, &json));
  REQUIRE_OK(towns_store_create_memory(&store_c));
  REQUIRE_OK(towns_crypto_create(store_c, KEY(kPickleC), NULL, 0, NULL, &c));
  towns_store_free(store_c); /* the crypto keeps its store */
  REQUIRE_OK(towns_crypto_import_room_keys_as_json(c, json.data, &json2));
  snprintf(expected, sizeof expected, "{\"imported\":[\"%s\",\"%s\"],\"failed\":[],\"skipped\":[]}", s_megolm.data,
           s_hybrid.data);
  CHECK_STR(json2.data, expected);
  towns_string_free(&json2);
  REQUIRE_OK(towns_crypto_decrypt_group_event(c, kStream1, ed2.data, ed2.len, &plain, &index));
  CHECK_BYTES(plain, "second");
  CHECK(index == 1);
  towns_buffer_free(&plain);
  REQUIRE_OK(towns_crypto_decrypt_group_event(c, kStream1, eh1.data, eh1.len, &plain, &index));
  CHECK_BYTES(plain, "hello grpaes");
  towns_buffer_free(&plain);
  /* The same keys under one stream id (each key's own is ignored): kept. */
  REQUIRE_OK(towns_crypto_import_session_keys(c, kStream1, json.data, &json2));
  CHECK_STR(json2.data, expected);
  towns_string_free(&json2);
  CHECK_STATUS(towns_crypto_import_room_keys_as_json(c, "{}", &json2), TOWNS_E_INVALID_ARGUMENT);
  CHECK(json2.data == NULL);
  /* Not JSON, or an entry that is not an object: refused, nothing written. */
  CHECK_STATUS(towns_crypto_import_room_keys_as_json(c, "[{", &json2), TOWNS_E_INVALID_ARGUMENT);
  CHECK(json2.data == NULL);
  CHECK_STATUS(towns_crypto_import_session_keys(c, kStream1, "[1]", &json2), TOWNS_E_INVALID_ARGUMENT);
  CHECK(json2.data == NULL);
  towns_string_free(&json);

  /* The whole device: A exported, recreated as D on a memory store. */
  REQUIRE_OK(towns_crypto_export_device(a, &exported));
  CHECK(exported.len > 0);
  REQUIRE_OK(towns_store_create_memory(&store_d));
  REQUIRE_OK(towns_crypto_create(store_d, KEY(kPickleC), exported.data, exported.len, NULL, &d));
  towns_buffer_free(&exported);
  REQUIRE_OK(towns_crypto_device_keys(d, &dk, &fk));
  CHECK_STR(dk.data, device_keys[0]);
  CHECK_STR(fk.data, fallback_keys[0]);
  towns_string_free(&dk);
  towns_string_free(&fk);
  REQUIRE_OK(towns_crypto_decrypt_group_event(d, kStream1, ed1.data, ed1.len, &plain, &index));
  CHECK_BYTES(plain, "hello megolm");
  towns_buffer_free(&plain);
  {
    towns_crypto *e = d; /* a failed create sets *out to NULL */
    CHECK_STATUS(towns_crypto_create(store_d, NULL, 0, NULL, 0, NULL, &e), TOWNS_E_INVALID_ARGUMENT);
    CHECK(e == NULL);
  }

  /* ---- 9. The key exchange: B misses A's session on stream 2, solicits it;
   * A fulfills and shares; B decrypts the waiting event. */
  REQUIRE_OK(towns_stream_solicitations_create(&stored_solicitations));
  logs[0].device = 0;
  logs[1].device = 1;
  host_a = make_host(&logs[0]);
  host_b = make_host(&logs[1]);
  towns_key_exchange_options_default(&options);
  CHECK(options.struct_size == sizeof options);
  CHECK(options.ephemeral_solicitations == 1 && options.ephemeral_timeout_ms == 30000 && options.respond_delay == 1);
  options.manual_clock = 1;
  options.start_time_ms = 1000;
  options.respond_delay = 0;
  REQUIRE_OK(towns_key_exchange_create(a, &host_a, kUserA, &options, &xa));
  REQUIRE_OK(towns_key_exchange_create(b, &host_b, kUserB, &options, &xb));
  {
    towns_key_exchange_host broken = host_a;
    towns_key_exchange *x = NULL;
    broken.user_devices = NULL;
    CHECK_STATUS(towns_key_exchange_create(a, &broken, kUserA, &options, &x), TOWNS_E_INVALID_ARGUMENT);
    CHECK(x == NULL);
  }
  towns_buffer_free(&ed1);
  REQUIRE_OK(towns_crypto_encrypt_group_event(a, kStream2, (const uint8_t *)"hello exchange", 14,
                                              TOWNS_ALGORITHM_GROUP_ENCRYPTION, &ed1));
  REQUIRE_OK(towns_key_exchange_enqueue_encrypted_content(xb, kStream2, "event-1", ed1.data, ed1.len));
  CHECK_STATUS(towns_key_exchange_enqueue_encrypted_content(xb, kStream2, "event-2", kMalformed, sizeof kMalformed),
               TOWNS_E_INVALID_ARGUMENT);
  REQUIRE_OK(towns_key_exchange_run(xb, NULL));
  CHECK(logs[1].missing == 1);
  CHECK(logs[1].decrypted == 0);
  REQUIRE_OK(towns_key_exchange_missing_session_ids(xb, kStream2, &json));
  CHECK(json.data[0] == '[' && json.len == 47);
  towns_string_free(&json);
  CHECK(queued == 1 && queue[0].kind == SOLICITATION && queue[0].from == 1 && queue[0].ephemeral == 1);

  /* The node: deliver everything queued, until nothing more is sent. */
  deliver(xa, xb, 0, 2000);
  CHECK(queued == 3);
  CHECK(stored_fulfillments == 0);
  CHECK(queue[1].kind == FULFILLMENT && queue[1].from == 0 && queue[1].ephemeral == 1);
  CHECK(queue[2].kind == SHARE && queue[2].from == 0);
  CHECK(logs[1].decrypted == 1);
  CHECK_STR(logs[1].event_id, "event-1");
  CHECK_STR(logs[1].plaintext, "hello exchange");
  CHECK(logs[1].message_index == 0);
  CHECK(logs[0].errors == 0);
  {
    towns_key_exchange_stats sa, sb;
    int has = 7;
    int64_t due = 7;
    REQUIRE_OK(towns_key_exchange_stats_get(xa, &sa));
    REQUIRE_OK(towns_key_exchange_stats_get(xb, &sb));
    CHECK(sb.decrypted == 1 && sb.decryption_failures == 1 && sb.decryption_errors == 0);
    CHECK(sb.solicitations_sent == 1 && sb.sessions_imported == 1 && sb.waiting_events == 0);
    CHECK(sa.fulfillments_sent == 1 && sa.shares_sent == 1 && sa.fulfillments_refused == 0);
    CHECK(sa.status == TOWNS_KEY_EXCHANGE_IDLE && sb.status == TOWNS_KEY_EXCHANGE_IDLE);
    REQUIRE_OK(towns_key_exchange_next_due(xb, &has, &due));
    CHECK(has == 0 && due == 0);
    CHECK_STATUS(towns_key_exchange_set_time(xb, 10), TOWNS_E_INVALID_ARGUMENT); /* backwards */
  }
  REQUIRE_OK(towns_key_exchange_missing_session_ids(xb, kStream2, &json));
  CHECK_STR(json.data, "[]");
  towns_string_free(&json);

  /* ---- 10. A share_host with only what sharing calls: a new outbound session
   * of device E goes to every entitled user's devices through its callback,
   * and B imports it. */
  {
    towns_key_exchange_host sh, missing;
    towns_store *store_e = NULL;
    towns_crypto *e = NULL, *bad_e = NULL;
    towns_string s_e = {0}, s_eh = {0};
    towns_buffer ee = {0};
    size_t before = queued;
    memset(&sh, 0, sizeof sh);
    sh.user_data = &logs[0]; /* its shares are queued as from device 0 */
    sh.send_group_encryption_sessions = host_send_share;
    sh.user_devices = host_user_devices;
    sh.stream_members = host_stream_members;
    REQUIRE_OK(towns_store_create_memory(&store_e));
    missing = sh;
    missing.user_devices = NULL;
    CHECK_STATUS(towns_crypto_create(store_e, KEY(kPickleC), NULL, 0, &missing, &bad_e), TOWNS_E_INVALID_ARGUMENT);
    CHECK(bad_e == NULL);
    missing = sh;
    missing.send_group_encryption_sessions = NULL;
    CHECK_STATUS(towns_crypto_create(store_e, KEY(kPickleC), NULL, 0, &missing, &bad_e), TOWNS_E_INVALID_ARGUMENT);
    missing = sh;
    missing.stream_members = NULL;
    CHECK_STATUS(towns_crypto_create(store_e, KEY(kPickleC), NULL, 0, &missing, &bad_e), TOWNS_E_INVALID_ARGUMENT);
    missing.users_entitled_to_key_exchange = host_stream_members; /* either one will do */
    REQUIRE_OK(towns_crypto_create(store_e, KEY(kPickleC), NULL, 0, &missing, &bad_e));
    towns_crypto_free(bad_e);
    REQUIRE_OK(towns_crypto_create(store_e, KEY(kPickleC), NULL, 0, &sh, &e));
    REQUIRE_OK(towns_crypto_ensure_outbound_session(e, kStream1, TOWNS_ALGORITHM_GROUP_ENCRYPTION, NULL, &s_e));
    CHECK(queued == before + 2);
    CHECK(queue[before].kind == SHARE && strcmp(queue[before].target, kUserA) == 0);
    CHECK(queue[before + 1].kind == SHARE && strcmp(queue[before + 1].target, kUserB) == 0);
    REQUIRE_OK(towns_crypto_encrypt_group_event(e, kStream1, (const uint8_t *)"from E", 6,
                                                TOWNS_ALGORITHM_GROUP_ENCRYPTION, &ee));
    CHECK(queued == before + 2); /* the session exists: nothing shared again */
    REQUIRE_OK(towns_receive_group_encryption_sessions(b, queue[before + 1].bytes, queue[before + 1].len, &json));
    snprintf(expected, sizeof expected,
             "{\"status\":\"imported\",\"streamId\":\"%s\",\"algorithm\":\"r.group-encryption.v1.aes-sha2\","
             "\"imported\":[\"%s\"],\"failed\":[]}",
             kStream1, s_e.data);
    CHECK_STR(json.data, expected);
    towns_string_free(&json);
    REQUIRE_OK(towns_crypto_decrypt_group_event(b, kStream1, ee.data, ee.len, &plain, &index));
    CHECK_BYTES(plain, "from E");
    CHECK(index == 0);
    towns_buffer_free(&plain);
    /* No get_miniblock_info and no miniblock given: a hybrid session cannot be made. */
    CHECK_STATUS(towns_crypto_ensure_outbound_session(e, kStream1, TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION, NULL,
                                                      &s_eh),
                 TOWNS_E_INVALID_ARGUMENT);
    CHECK(strstr(towns_last_error_message(), "get_miniblock_info") != NULL);
    CHECK(s_eh.data == NULL && queued == before + 2);
    towns_string_free(&s_e);
    towns_buffer_free(&ee);
    towns_crypto_free(e);
    towns_store_free(store_e);
  }

  /* ---- 11. Stored solicitations (options.ephemeral_solicitations = 0): B
   * solicits A's stream-3 session as a stream event; the node stores it, A
   * fulfills (stored too) and shares; B decrypts. tick and
   * retry_decryption_failures on the way. */
  {
    towns_key_exchange *xa2 = NULL, *xb2 = NULL, *xa3 = NULL;
    towns_stream_solicitations *snap = NULL;
    towns_buffer ed3 = {0}, stored = {0}, updated = {0};
    towns_string user = {0};
    size_t before = queued, units = 99, sol, ful;
    int did = 7, found = 7, decrypted = logs[1].decrypted, missing = logs[1].missing;
    REQUIRE_OK(towns_stream_solicitations_create(&stored3));
    options.ephemeral_solicitations = 0;
    REQUIRE_OK(towns_key_exchange_create(a, &host_a, kUserA, &options, &xa2));
    REQUIRE_OK(towns_key_exchange_create(b, &host_b, kUserB, &options, &xb2));
    REQUIRE_OK(towns_crypto_encrypt_group_event(a, kStream3, (const uint8_t *)"stored path", 11,
                                                TOWNS_ALGORITHM_GROUP_ENCRYPTION, &ed3));
    REQUIRE_OK(towns_key_exchange_tick(xb2, &did));
    CHECK(did == 0); /* nothing to do yet */
    REQUIRE_OK(towns_key_exchange_enqueue_encrypted_content(xb2, kStream3, "event-3", ed3.data, ed3.len));
    REQUIRE_OK(towns_key_exchange_tick(xb2, &did));
    CHECK(did == 1);
    REQUIRE_OK(towns_key_exchange_run(xb2, &units));
    CHECK(units == 1);
    REQUIRE_OK(towns_key_exchange_tick(xb2, &did));
    CHECK(did == 0);
    CHECK(logs[1].missing == missing + 1);
    CHECK(queued == before + 1);
    sol = before;
    CHECK(queue[sol].kind == SOLICITATION && queue[sol].from == 1 && queue[sol].ephemeral == 0);
    CHECK_STR(queue[sol].target, kStream3);
    /* Membership changed: the waiting event is tried again; still missing, it
     * is solicited again (the same event is not reported twice). */
    REQUIRE_OK(towns_key_exchange_retry_decryption_failures(xb2, kStream3));
    REQUIRE_OK(towns_key_exchange_run(xb2, &units));
    CHECK(units == 1);
    CHECK(logs[1].missing == missing + 1);
    CHECK(queued == before + 2);
    CHECK(queue[sol + 1].kind == SOLICITATION && queue[sol + 1].from == 1 && queue[sol + 1].ephemeral == 0);
    CHECK_STATUS(towns_key_exchange_retry_decryption_failures(xb2, NULL), TOWNS_E_INVALID_ARGUMENT);

    deliver(xa2, xb2, before, 5000);
    CHECK(logs[1].decrypted == decrypted + 1);
    CHECK_STR(logs[1].event_id, "event-3");
    CHECK_STR(logs[1].plaintext, "stored path");
    /* A answered each stored solicitation with a stored fulfillment and a share. */
    CHECK(queued == before + 6);
    CHECK(stored_fulfillments == 2);
    for (i = 0; i < 2; ++i) {
      ful = sol + 2 + 2 * i;
      CHECK(queue[ful].kind == FULFILLMENT && queue[ful].from == 0 && queue[ful].ephemeral == 0);
      CHECK_STR(queue[ful].target, kStream3);
      CHECK(queue[ful + 1].kind == SHARE && queue[ful + 1].from == 0);
      CHECK_STR(queue[ful + 1].target, kUserB);
    }
    ful = sol + 2;

    /* ---- 12. The stream read from a snapshot: a new engine of A gets B's
     * stored solicitation through enqueue_init_key_solicitations. */
    REQUIRE_OK(towns_stream_solicitations_create(&snap));
    REQUIRE_OK(towns_stream_solicitations_apply_solicitation(snap, kUserB, queue[sol].bytes, queue[sol].len, &stored));
    towns_buffer_free(&stored);
    REQUIRE_OK(towns_key_exchange_create(a, &host_a, kUserA, &options, &xa3));
    before = queued;
    REQUIRE_OK(towns_key_exchange_enqueue_init_key_solicitations(xa3, kStream3, snap));
    CHECK_STATUS(towns_key_exchange_enqueue_init_key_solicitations(xa3, kStream3, NULL), TOWNS_E_INVALID_ARGUMENT);
    REQUIRE_OK(towns_key_exchange_run(xa3, &units));
    CHECK(units == 1);
    CHECK(queued == before + 2);
    CHECK(queue[before].kind == FULFILLMENT && queue[before].from == 0 && queue[before].ephemeral == 0);
    CHECK_STR(queue[before].target, kStream3);
    CHECK(queue[before + 1].kind == SHARE && queue[before + 1].from == 0);
    CHECK_STR(queue[before + 1].target, kUserB);

    /* The snapshot's solicitation answered by A's fulfillment: found, B's;
     * once B left, not found. */
    REQUIRE_OK(towns_stream_solicitations_apply_fulfillment(snap, queue[ful].bytes, queue[ful].len, &found, &user,
                                                            &updated));
    CHECK(found == 1);
    CHECK_STR(user.data, kUserB);
    CHECK(updated.len > 0);
    towns_string_free(&user);
    towns_buffer_free(&updated);
    REQUIRE_OK(towns_stream_solicitations_apply_solicitation(snap, kUserB, queue[sol].bytes, queue[sol].len, &stored));
    towns_buffer_free(&stored);
    REQUIRE_OK(towns_stream_solicitations_remove_member(snap, kUserB));
    found = 7;
    REQUIRE_OK(towns_stream_solicitations_apply_fulfillment(snap, queue[ful].bytes, queue[ful].len, &found, &user,
                                                            &updated));
    CHECK(found == 0 && user.data == NULL && updated.data == NULL);
    CHECK_STATUS(towns_stream_solicitations_remove_member(snap, NULL), TOWNS_E_INVALID_ARGUMENT);
    CHECK_STATUS(towns_stream_solicitations_remove_member(NULL, kUserB), TOWNS_E_INVALID_ARGUMENT);
    CHECK_STATUS(towns_stream_solicitations_apply_fulfillment(snap, queue[ful].bytes, queue[ful].len, NULL, &user,
                                                              &updated),
                 TOWNS_E_INVALID_ARGUMENT);

    towns_stream_solicitations_free(snap);
    towns_key_exchange_free(xa2);
    towns_key_exchange_free(xb2);
    towns_key_exchange_free(xa3);
    towns_buffer_free(&ed3);
  }

  /* ---- 13. Re-entrancy: from its own callbacks, run / tick / advance of the
   * same engine are refused; a free is deferred to the end of the outer run,
   * which stops after the current unit. */
  {
    device_log r;
    towns_key_exchange_host host_r;
    towns_key_exchange *xr = NULL;
    size_t units = 99;
    memset(&r, 0, sizeof r);
    r.device = 1;
    host_r = make_host(&r);
    REQUIRE_OK(towns_key_exchange_create(b, &host_r, kUserB, &options, &xr));
    r.self = xr;
    r.reenter = 1;
    REQUIRE_OK(towns_key_exchange_enqueue_encrypted_content(xr, kStream1, "r-1", ed2.data, ed2.len));
    REQUIRE_OK(towns_key_exchange_run(xr, &units));
    CHECK(r.decrypted == 1);
    CHECK_STR(r.plaintext, "second");
    CHECK(r.reentered[0] == TOWNS_E_INVALID_ARGUMENT && r.reentered[1] == TOWNS_E_INVALID_ARGUMENT &&
          r.reentered[2] == TOWNS_E_INVALID_ARGUMENT);
    CHECK(strstr(r.reentered_message, "towns_key_exchange_advance called from a host callback") != NULL);
    CHECK_STR(towns_last_error_message(), ""); /* the outer run succeeded */
    /* The engine still works. */
    REQUIRE_OK(towns_key_exchange_enqueue_encrypted_content(xr, kStream2, "r-2", ed1.data, ed1.len));
    REQUIRE_OK(towns_key_exchange_enqueue_encrypted_content(xr, kStream1, "r-3", eh1.data, eh1.len));
    r.free_self = 1;
    REQUIRE_OK(towns_key_exchange_run(xr, &units));
    /* Freed from the first event's callback: the run stopped after that unit. */
    CHECK(units == 1);
    CHECK(r.decrypted == 2 && r.errors == 0);
    CHECK_STR(r.event_id, "r-2");
    CHECK(r.self == NULL);
    CHECK(r.after_free == TOWNS_E_INVALID_ARGUMENT);
    /* xr is gone now (ASan would see a leak or a use after free). */
  }

  /* ---- Teardown: handles in any order. */
  towns_crypto_free(a);
  towns_crypto_free(b); /* the engines keep their crypto */
  towns_key_exchange_free(xa);
  towns_key_exchange_free(xb);
  towns_crypto_free(c);
  towns_crypto_free(d);
  towns_store_free(store_a);
  towns_store_free(store_b);
  towns_store_free(store_d);
  towns_stream_solicitations_free(stored_solicitations);
  towns_stream_solicitations_free(stored3);
  for (i = 0; i < queued; ++i) free(queue[i].bytes);
  towns_string_free(&s_megolm);
  towns_string_free(&s_hybrid);
  towns_buffer_free(&ed1);
  towns_buffer_free(&ed2);
  towns_buffer_free(&eh1);
  towns_buffer_free(&share);
  towns_buffer_free(&share_h);

  if (failures) {
    fprintf(stderr, "%d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("%d checks passed\n", checks);
  return 0;
}
