#!/usr/bin/env python3
"""enc1.py MDK_HEX: encrypt stdin (JSON text) as an enc:1: value (SPEC 5.3).

AES-256-GCM with a random 12-byte IV, no AAD, tag appended to the
ciphertext, through the system libcrypto (the library mana_ai links), so
the demo needs no Python crypto package.  For demos and tests only.
"""
import base64
import ctypes
import ctypes.util
import os
import sys

EVP_CTRL_AEAD_GET_TAG = 0x10


def encrypt(key, plaintext):
    lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    lib.EVP_CIPHER_CTX_new.restype = vp
    lib.EVP_aes_256_gcm.restype = vp
    lib.EVP_EncryptInit_ex.argtypes = [vp, vp, vp, cp, cp]
    lib.EVP_EncryptUpdate.argtypes = [vp, cp, ctypes.POINTER(ip), cp, ip]
    lib.EVP_EncryptFinal_ex.argtypes = [vp, cp, ctypes.POINTER(ip)]
    lib.EVP_CIPHER_CTX_ctrl.argtypes = [vp, ip, ip, vp]
    lib.EVP_CIPHER_CTX_free.argtypes = [vp]
    iv = os.urandom(12)
    ctx = lib.EVP_CIPHER_CTX_new()
    try:
        out = ctypes.create_string_buffer(len(plaintext) + 16)
        n, fin = ctypes.c_int(0), ctypes.c_int(0)
        tag = ctypes.create_string_buffer(16)
        if (lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_256_gcm(), None, key, iv) != 1
                or lib.EVP_EncryptUpdate(ctx, out, ctypes.byref(n), plaintext, len(plaintext)) != 1
                or lib.EVP_EncryptFinal_ex(ctx, ctypes.cast(ctypes.addressof(out) + n.value, cp), ctypes.byref(fin)) != 1
                or lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, ctypes.cast(tag, vp)) != 1):
            sys.exit("enc1.py: libcrypto refused the encryption")
        ct = out.raw[:n.value + fin.value] + tag.raw
    finally:
        lib.EVP_CIPHER_CTX_free(ctx)
    return "enc:1:%s.%s" % (base64.b64encode(iv).decode(), base64.b64encode(ct).decode())


if __name__ == "__main__":
    if len(sys.argv) != 2 or len(bytes.fromhex(sys.argv[1])) != 32:
        sys.exit("usage: enc1.py MDK_HEX (32 bytes) < plaintext.json")
    print(encrypt(bytes.fromhex(sys.argv[1]), sys.stdin.buffer.read()))
