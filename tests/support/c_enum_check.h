/* Out-of-range C enumeration values for the C API tests (C99). A C caller may
 * store any int in an enumeration; the library must reject it as an invalid
 * argument naming the argument, without loading it as a C++ enum (undefined
 * behaviour that UBSan reports). Include after kfuse.h and c_check.h. */
#ifndef KFUSE_TESTS_C_ENUM_CHECK_H
#define KFUSE_TESTS_C_ENUM_CHECK_H

#include <stdio.h>
#include <string.h>

/* One past the enumerators would do too; these are the values a sloppy binding
 * passes (an uninitialised 99, a -1 "unset"). */
enum { BAD_ENUM_COUNT = 2 };
static const int bad_enum_values[BAD_ENUM_COUNT] = {99, -1};

/* The last error is "op: argument '<argument>': ..." */
static int last_error_names(const char* argument) {
  char want[160];
  snprintf(want, sizeof want, "argument '%s'", argument);
  return strstr(kfuse_last_error(), want) != NULL;
}

/* `call` returns KFUSE_INVALID_ARGUMENT and its message names `argument`. */
#define CHECK_REJECTS(call, argument)                                                       \
  do {                                                                                      \
    const kfuse_status_t status_ = (call);                                                  \
    CHECK(status_ == KFUSE_INVALID_ARGUMENT);                                               \
    CHECK(last_error_names(argument));                                                      \
    if (status_ != KFUSE_INVALID_ARGUMENT || !last_error_names(argument))                   \
      fprintf(stderr, "  status %d, message \"%s\" (wanted argument '%s')\n", (int)status_, \
              kfuse_last_error(), argument);                                                \
  } while (0)

#endif /* KFUSE_TESTS_C_ENUM_CHECK_H */
