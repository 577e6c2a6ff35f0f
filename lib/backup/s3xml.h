/* SPDX-License-Identifier: MIT */
/*
 * s3xml.h: the little XML that S3 answers with (s3xml.c): the text of an
 * element found by name (<Code>, <Key>, <UploadId>, ...), entities decoded,
 * and a walk over repeated elements (<Contents> of a listing). Not a general
 * XML parser: S3's answers are flat, without attributes that matter, CDATA
 * or comments.
 */
#ifndef DDP_S3XML_H
#define DDP_S3XML_H

#include <stddef.h>

/* The decoded text of the first <tag>...</tag> in [xml, xml + n), malloc'd,
 * or NULL when there is none. */
char *ddp_s3_xml_text(const char *xml, size_t n, const char *tag);
/* The next <tag>...</tag> element at or after *pos: its inner text's
 * [*start, *start + *len); *pos moves past it. 0 when there is no more. */
int ddp_s3_xml_next(const char *xml, size_t n, const char *tag, size_t *pos, size_t *start, size_t *len);

#endif /* DDP_S3XML_H */
