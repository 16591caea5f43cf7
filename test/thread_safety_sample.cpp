// Compiled by clang with -Wthread-safety -Werror in tools/test, twice: with
// TOWNS_TAKE_LOCK it must compile, without it it must not (a member guarded by
// a towns::Mutex written without the lock). This shows the annotations the
// library's locks carry are checked, not decoration.
#include "towns/detail_sync.h"

struct Guarded {
  towns::Mutex mu;
  int value TOWNS_GUARDED_BY(mu) = 0;
  void set(int v) {
#ifdef TOWNS_TAKE_LOCK
    towns::MutexLock l(mu);
#endif
    value = v;
  }
};

int main() {
  Guarded g;
  g.set(1);
  return 0;
}
