#ifndef MVC_ZSTD_SHIM_H
#define MVC_ZSTD_SHIM_H
// zstd (Debian `libzstd-dev`): compression of remote pack entries that compress well.
#include <zstd.h>
#endif
