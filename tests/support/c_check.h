/* CHECK(cond) for the C API tests (C99): counts failures and keeps going; a test's
 * main returns failures == 0 ? 0 : 1. */
#ifndef KFUSE_TESTS_C_CHECK_H
#define KFUSE_TESTS_C_CHECK_H

#include <stdio.h>

static int failures = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

#endif /* KFUSE_TESTS_C_CHECK_H */
