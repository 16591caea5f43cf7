// Symbol visibility for the towns-e2ee shared library: the library is built with
// hidden visibility, and only declarations marked TOWNS_API are exported.
#pragma once

#if defined(TOWNS_BUILDING_LIBRARY)
#define TOWNS_API __attribute__((visibility("default")))
#else
#define TOWNS_API
#endif
