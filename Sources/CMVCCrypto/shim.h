#ifndef CMVC_CRYPTO_SHIM_H
#define CMVC_CRYPTO_SHIM_H
// Only the EVP digest interface: the low-level SHA256_* functions are deprecated in OpenSSL 3 and
// would make Swift warn at every call.
#include <openssl/evp.h>
#endif
