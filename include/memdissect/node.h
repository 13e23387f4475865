/* A small tree of plain values (JSON's data model) used for the parts of the report that differ
 * per allocator, and for reading reports back (diff, tests). Integers are kept exact: unsigned
 * 64-bit and signed 64-bit are distinct from doubles, so byte counts round-trip unchanged. */
#ifndef MEMDISSECT_NODE_H
#define MEMDISSECT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memdissect/error.h"

enum md_node_type {
	MD_NODE_NULL,
	MD_NODE_BOOL,
	MD_NODE_U64,
	MD_NODE_I64,
	MD_NODE_DOUBLE,
	MD_NODE_STRING,
	MD_NODE_ARRAY,
	MD_NODE_OBJECT,
};

struct md_node;

/* Constructors return NULL only when out of memory. */
struct md_node *md_node_null(void);
struct md_node *md_node_bool(bool v);
struct md_node *md_node_u64(uint64_t v);
struct md_node *md_node_i64(int64_t v);
struct md_node *md_node_double(double v);
struct md_node *md_node_string(const char *s);
struct md_node *md_node_stringf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "0x..." lower-case hex string, as the JSON uses for addresses. */
struct md_node *md_node_hex(uint64_t v);
struct md_node *md_node_array(void);
struct md_node *md_node_object(void);
void md_node_destroy(struct md_node *n);

/* Containers take ownership of child (also on failure, when child is destroyed).
 * Object keys keep insertion order; setting an existing key replaces its value.
 * A NULL child (failed constructor) makes the call fail with NOMEM; it never crashes. */
struct md_error *md_node_append(struct md_node *array, struct md_node *child);
struct md_error *md_node_set(struct md_node *object, const char *key, struct md_node *child);
/* Shorthands: set key to a freshly made value. */
struct md_error *md_node_set_u64(struct md_node *object, const char *key, uint64_t v);
struct md_error *md_node_set_i64(struct md_node *object, const char *key, int64_t v);
struct md_error *md_node_set_double(struct md_node *object, const char *key, double v);
struct md_error *md_node_set_bool(struct md_node *object, const char *key, bool v);
struct md_error *md_node_set_string(struct md_node *object, const char *key, const char *s);
struct md_error *md_node_set_hex(struct md_node *object, const char *key, uint64_t v);

enum md_node_type md_node_type(const struct md_node *n);
size_t md_node_count(const struct md_node *n);              /* array/object length, else 0 */
struct md_node *md_node_at(const struct md_node *n, size_t i); /* array element or object value */
const char *md_node_key_at(const struct md_node *n, size_t i); /* object key */
struct md_node *md_node_get(const struct md_node *object, const char *key); /* NULL if absent */
/* Dotted path lookup, e.g. "memory.rss_bytes" or "allocators.0.mallinfo.arena". */
struct md_node *md_node_path(const struct md_node *root, const char *path);
bool md_node_get_bool(const struct md_node *n);
uint64_t md_node_get_u64(const struct md_node *n);  /* U64, non-negative I64, DOUBLE truncated, hex string */
int64_t md_node_get_i64(const struct md_node *n);
double md_node_get_double(const struct md_node *n);
const char *md_node_get_string(const struct md_node *n); /* NULL unless STRING */

/* JSON text. indent 0 = one line; otherwise pretty-printed with that many spaces. */
struct md_error *md_node_write_json(const struct md_node *n, FILE *out, int indent);
/* Strict JSON parser (RFC 8259) with a depth bound; integers that fit are U64/I64. */
struct md_error *md_node_parse_json(const char *text, size_t len, struct md_node **node_ret);

#endif
