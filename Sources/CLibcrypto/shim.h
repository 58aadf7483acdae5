// OpenSSL's libcrypto (Debian's libssl-dev), for dm-crypt's AES-XTS: its EVP interface
// runs aes-xts on AES-NI, which swift-crypto does not offer. Only DMCrypt imports it.
#include <openssl/evp.h>
