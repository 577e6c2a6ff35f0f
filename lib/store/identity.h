/* SPDX-License-Identifier: MIT */
/*
 * identity.h: a volume's identity: the store id (a GUID naming its chunk
 * store) and the stub key (HMAC key of every stub). Stored in
 * .ddp/Settings/identity (docs/FORMAT.md).
 */
#ifndef DDP_IDENTITY_H
#define DDP_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#define DDP_IDENTITY_SIZE 72
#define DDP_STORE_ID_SIZE 16
#define DDP_KEY_SIZE 32

typedef struct ddp_identity {
    uint8_t store_id[DDP_STORE_ID_SIZE];
    uint8_t key[DDP_KEY_SIZE];
} ddp_identity;

/* New random identity. */
HRESULT ddp_identity_generate(ddp_identity *id);
void ddp_identity_encode(const ddp_identity *id, uint8_t out[DDP_IDENTITY_SIZE]);
/* Bounds- and checksum-checked: DDP_E_INVALID_DATA (bad size, magic or checksum),
 * DDP_E_UNSUPPORTED_VERSION. */
HRESULT ddp_identity_decode(const uint8_t *buf, size_t n, ddp_identity *id);

/* "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" (38 chars + NUL). */
void ddp_guid_format(const uint8_t id[DDP_STORE_ID_SIZE], char out[39]);
/* Parses that form (braces optional); 0 on success. */
int ddp_guid_parse(const char *s, uint8_t id[DDP_STORE_ID_SIZE]);

#endif /* DDP_IDENTITY_H */
