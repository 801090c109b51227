// OpenMP's thread queries for the CPU paths, also in a build without OpenMP (one
// thread, never inside a parallel region).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kfuse::cpu {

// The threads a parallel region would get.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
// This thread's index in its team, and the team's size.
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
inline bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

}  // namespace kfuse::cpu
