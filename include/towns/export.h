// Symbol visibility for the towns-e2ee shared library: the library is built with
// hidden visibility, and only declarations marked TOWNS_API are exported.
#pragma once

#if defined(TOWNS_BUILDING_LIBRARY)
#define TOWNS_API __attribute__((visibility("default")))
#else
#define TOWNS_API
#endif

// A class nested in an exported one would be exported with it; its private
// implementation is marked TOWNS_INTERNAL so that it stays out of the ABI.
#if defined(TOWNS_BUILDING_LIBRARY)
#define TOWNS_INTERNAL __attribute__((visibility("hidden")))
#else
#define TOWNS_INTERNAL
#endif
