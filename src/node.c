/* The value tree of include/memdissect/node.h: construction, lookup, JSON writer and strict parser.
 *
 * Choices that the JSON output depends on (documented in docs/json.md):
 * - Integers stay exact: U64 and I64 print with all their digits.
 * - Doubles print in the shortest of %.15g/%.16g/%.17g that reads back to the same value, with
 *   ".0" appended when that text would otherwise read back as an integer, so the type survives a
 *   round trip. NaN and infinities have no JSON form and print as null.
 * - Strings are written as UTF-8. Well-formed UTF-8 passes through; control characters, '"' and
 *   '\\' are escaped; a byte that is not part of well-formed UTF-8 (a path or comm read from the
 *   target may hold anything) is written as \u00XX of that byte, so the output is always valid JSON.
 * - The parser is strict RFC 8259: no comments, trailing commas, NaN, leading zeros, or invalid
 *   UTF-8; unpaired surrogate escapes are rejected; nesting is bounded by MD_JSON_MAX_DEPTH and the
 *   input by MD_JSON_MAX_SIZE; a duplicate object key keeps the last value. */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "memdissect/node.h"

#define MD_JSON_MAX_DEPTH 200
#define MD_JSON_MAX_SIZE (1024u * 1024u * 1024u)
/* Objects with at least this many keys get a hash index; smaller ones are scanned. */
#define OBJECT_INDEX_MIN 16

struct node_str {
	char *s;     /* NUL-terminated; may also hold NULs from \u0000 */
	size_t len;
};

struct md_node {
	enum md_node_type type;
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double d;
		struct node_str str;
		struct {
			struct md_node **items;
			size_t n, cap;
		} arr;
		struct {
			struct node_str *keys;
			struct md_node **vals;
			size_t n, cap;
			/* Open addressing: slot holds entry index + 1, 0 = empty. NULL until large. */
			size_t *index;
			size_t index_cap;
		} obj;
	};
};

/* ---- construction ---- */

static struct md_node *node_new(enum md_node_type type)
{
	struct md_node *n = calloc(1, sizeof(*n));
	if (n)
		n->type = type;
	return n;
}

struct md_node *md_node_null(void)
{
	return node_new(MD_NODE_NULL);
}

struct md_node *md_node_bool(bool v)
{
	struct md_node *n = node_new(MD_NODE_BOOL);
	if (n)
		n->b = v;
	return n;
}

struct md_node *md_node_u64(uint64_t v)
{
	struct md_node *n = node_new(MD_NODE_U64);
	if (n)
		n->u = v;
	return n;
}

struct md_node *md_node_i64(int64_t v)
{
	struct md_node *n = node_new(MD_NODE_I64);
	if (n)
		n->i = v;
	return n;
}

struct md_node *md_node_double(double v)
{
	struct md_node *n = node_new(MD_NODE_DOUBLE);
	if (n)
		n->d = v;
	return n;
}

/* Takes ownership of s (len bytes plus a terminating NUL). */
static struct md_node *node_string_take(char *s, size_t len)
{
	struct md_node *n = node_new(MD_NODE_STRING);
	if (!n) {
		free(s);
		return NULL;
	}
	n->str.s = s;
	n->str.len = len;
	return n;
}

struct md_node *md_node_string(const char *s)
{
	if (!s)
		s = "";
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	return node_string_take(copy, strlen(copy));
}

struct md_node *md_node_stringf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int len = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (len < 0)
		return NULL;
	return node_string_take(s, (size_t)len);
}

struct md_node *md_node_hex(uint64_t v)
{
	return md_node_stringf("0x%" PRIx64, v);
}

struct md_node *md_node_array(void)
{
	return node_new(MD_NODE_ARRAY);
}

struct md_node *md_node_object(void)
{
	return node_new(MD_NODE_OBJECT);
}

void md_node_destroy(struct md_node *n)
{
	if (!n)
		return;
	switch (n->type) {
	case MD_NODE_STRING:
		free(n->str.s);
		break;
	case MD_NODE_ARRAY:
		for (size_t i = 0; i < n->arr.n; i++)
			md_node_destroy(n->arr.items[i]);
		free(n->arr.items);
		break;
	case MD_NODE_OBJECT:
		for (size_t i = 0; i < n->obj.n; i++) {
			free(n->obj.keys[i].s);
			md_node_destroy(n->obj.vals[i]);
		}
		free(n->obj.keys);
		free(n->obj.vals);
		free(n->obj.index);
		break;
	default:
		break;
	}
	free(n);
}

/* ---- containers ---- */

static bool grow(void **items, size_t elem, size_t n, size_t *cap)
{
	if (n < *cap)
		return true;
	size_t new_cap = *cap ? *cap * 2 : 4;
	if (new_cap > SIZE_MAX / elem)
		return false;
	void *p = realloc(*items, new_cap * elem);
	if (!p)
		return false;
	*items = p;
	*cap = new_cap;
	return true;
}

struct md_error *md_node_append(struct md_node *array, struct md_node *child)
{
	if (!child)
		return &md_error_nomem;
	if (!array || array->type != MD_NODE_ARRAY) {
		md_node_destroy(child);
		return md_error_create(MD_ERR_BAD_DATA, "md_node_append: not an array");
	}
	if (!grow((void **)&array->arr.items, sizeof(*array->arr.items), array->arr.n,
		  &array->arr.cap)) {
		md_node_destroy(child);
		return &md_error_nomem;
	}
	array->arr.items[array->arr.n++] = child;
	return NULL;
}

static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool key_equal(const struct node_str *k, const char *key, size_t len)
{
	return k->len == len && memcmp(k->s, key, len) == 0;
}

static void index_insert(struct md_node *o, size_t entry)
{
	size_t mask = o->obj.index_cap - 1;
	size_t slot = key_hash(o->obj.keys[entry].s, o->obj.keys[entry].len) & mask;
	while (o->obj.index[slot])
		slot = (slot + 1) & mask;
	o->obj.index[slot] = entry + 1;
}

/* Keep the index at most half full. Failing to allocate it is harmless: lookups then scan. */
static void index_maintain(struct md_node *o)
{
	if (o->obj.n < OBJECT_INDEX_MIN)
		return;
	if (o->obj.index && o->obj.n * 2 <= o->obj.index_cap) {
		index_insert(o, o->obj.n - 1);
		return;
	}
	size_t cap = 64;
	while (cap < o->obj.n * 4)
		cap *= 2;
	size_t *index = calloc(cap, sizeof(*index));
	free(o->obj.index);
	o->obj.index = index;
	o->obj.index_cap = index ? cap : 0;
	if (!index)
		return;
	for (size_t i = 0; i < o->obj.n; i++)
		index_insert(o, i);
}

static ssize_t object_find(const struct md_node *o, const char *key, size_t len)
{
	if (o->obj.index) {
		size_t mask = o->obj.index_cap - 1;
		for (size_t slot = key_hash(key, len) & mask; o->obj.index[slot];
		     slot = (slot + 1) & mask) {
			size_t e = o->obj.index[slot] - 1;
			if (key_equal(&o->obj.keys[e], key, len))
				return (ssize_t)e;
		}
		return -1;
	}
	for (size_t i = 0; i < o->obj.n; i++) {
		if (key_equal(&o->obj.keys[i], key, len))
			return (ssize_t)i;
	}
	return -1;
}

/* Set key (len bytes, may hold NULs) to child; takes ownership of child in all cases. */
static struct md_error *object_set(struct md_node *o, const char *key, size_t len,
				   struct md_node *child)
{
	ssize_t found = object_find(o, key, len);
	if (found >= 0) {
		md_node_destroy(o->obj.vals[found]);
		o->obj.vals[found] = child;
		return NULL;
	}
	size_t cap = o->obj.cap;
	if (!grow((void **)&o->obj.keys, sizeof(*o->obj.keys), o->obj.n, &cap) ||
	    !grow((void **)&o->obj.vals, sizeof(*o->obj.vals), o->obj.n, &o->obj.cap)) {
		/* keys may have grown while vals did not: both are sized by the smaller cap */
		md_node_destroy(child);
		return &md_error_nomem;
	}
	char *copy = malloc(len + 1);
	if (!copy) {
		md_node_destroy(child);
		return &md_error_nomem;
	}
	memcpy(copy, key, len);
	copy[len] = '\0';
	o->obj.keys[o->obj.n] = (struct node_str){ copy, len };
	o->obj.vals[o->obj.n] = child;
	o->obj.n++;
	index_maintain(o);
	return NULL;
}

struct md_error *md_node_set(struct md_node *object, const char *key, struct md_node *child)
{
	if (!child)
		return &md_error_nomem;
	if (!object || object->type != MD_NODE_OBJECT || !key) {
		md_node_destroy(child);
		return md_error_create(MD_ERR_BAD_DATA, "md_node_set: not an object or no key");
	}
	return object_set(object, key, strlen(key), child);
}

struct md_error *md_node_set_u64(struct md_node *object, const char *key, uint64_t v)
{
	return md_node_set(object, key, md_node_u64(v));
}

struct md_error *md_node_set_i64(struct md_node *object, const char *key, int64_t v)
{
	return md_node_set(object, key, md_node_i64(v));
}

struct md_error *md_node_set_double(struct md_node *object, const char *key, double v)
{
	return md_node_set(object, key, md_node_double(v));
}

struct md_error *md_node_set_bool(struct md_node *object, const char *key, bool v)
{
	return md_node_set(object, key, md_node_bool(v));
}

struct md_error *md_node_set_string(struct md_node *object, const char *key, const char *s)
{
	return md_node_set(object, key, md_node_string(s));
}

struct md_error *md_node_set_hex(struct md_node *object, const char *key, uint64_t v)
{
	return md_node_set(object, key, md_node_hex(v));
}

/* ---- lookup ---- */

enum md_node_type md_node_type(const struct md_node *n)
{
	return n ? n->type : MD_NODE_NULL;
}

size_t md_node_count(const struct md_node *n)
{
	if (!n)
		return 0;
	if (n->type == MD_NODE_ARRAY)
		return n->arr.n;
	if (n->type == MD_NODE_OBJECT)
		return n->obj.n;
	return 0;
}

struct md_node *md_node_at(const struct md_node *n, size_t i)
{
	if (!n)
		return NULL;
	if (n->type == MD_NODE_ARRAY && i < n->arr.n)
		return n->arr.items[i];
	if (n->type == MD_NODE_OBJECT && i < n->obj.n)
		return n->obj.vals[i];
	return NULL;
}

const char *md_node_key_at(const struct md_node *n, size_t i)
{
	if (!n || n->type != MD_NODE_OBJECT || i >= n->obj.n)
		return NULL;
	return n->obj.keys[i].s;
}

struct md_node *md_node_get(const struct md_node *object, const char *key)
{
	if (!object || object->type != MD_NODE_OBJECT || !key)
		return NULL;
	ssize_t i = object_find(object, key, strlen(key));
	return i >= 0 ? object->obj.vals[i] : NULL;
}

struct md_node *md_node_path(const struct md_node *root, const char *path)
{
	if (!root || !path)
		return NULL;
	const struct md_node *cur = root;
	const char *p = path;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (len == 0)
			return NULL;
		if (cur->type == MD_NODE_OBJECT) {
			ssize_t i = object_find(cur, p, len);
			if (i < 0)
				return NULL;
			cur = cur->obj.vals[i];
		} else if (cur->type == MD_NODE_ARRAY) {
			size_t idx = 0;
			for (size_t k = 0; k < len; k++) {
				if (p[k] < '0' || p[k] > '9' || idx > (SIZE_MAX - 9) / 10)
					return NULL;
				idx = idx * 10 + (size_t)(p[k] - '0');
			}
			if (idx >= cur->arr.n)
				return NULL;
			cur = cur->arr.items[idx];
		} else {
			return NULL;
		}
		if (!dot)
			break;
		p = dot + 1;
		if (!*p)
			return NULL; /* trailing dot */
	}
	return (struct md_node *)cur;
}

bool md_node_get_bool(const struct md_node *n)
{
	return n && n->type == MD_NODE_BOOL && n->b;
}

uint64_t md_node_get_u64(const struct md_node *n)
{
	if (!n)
		return 0;
	switch (n->type) {
	case MD_NODE_U64:
		return n->u;
	case MD_NODE_I64:
		return n->i < 0 ? 0 : (uint64_t)n->i;
	case MD_NODE_DOUBLE:
		if (!(n->d > 0)) /* also NaN */
			return 0;
		if (n->d >= 18446744073709551616.0)
			return UINT64_MAX;
		return (uint64_t)n->d;
	case MD_NODE_BOOL:
		return n->b;
	case MD_NODE_STRING: {
		const char *s = n->str.s;
		if ((s[0] != '0') || (s[1] != 'x' && s[1] != 'X') || !s[2])
			return 0;
		uint64_t v = 0;
		for (const char *c = s + 2; *c; c++) {
			unsigned d;
			if (*c >= '0' && *c <= '9')
				d = (unsigned)(*c - '0');
			else if (*c >= 'a' && *c <= 'f')
				d = (unsigned)(*c - 'a' + 10);
			else if (*c >= 'A' && *c <= 'F')
				d = (unsigned)(*c - 'A' + 10);
			else
				return 0;
			if (v >> 60)
				return UINT64_MAX;
			v = v << 4 | d;
		}
		return v;
	}
	default:
		return 0;
	}
}

int64_t md_node_get_i64(const struct md_node *n)
{
	if (!n)
		return 0;
	switch (n->type) {
	case MD_NODE_I64:
		return n->i;
	case MD_NODE_U64:
		return n->u > INT64_MAX ? INT64_MAX : (int64_t)n->u;
	case MD_NODE_DOUBLE:
		if (isnan(n->d))
			return 0;
		if (n->d >= 9223372036854775808.0)
			return INT64_MAX;
		if (n->d <= -9223372036854775808.0)
			return INT64_MIN;
		return (int64_t)n->d;
	case MD_NODE_BOOL:
		return n->b;
	case MD_NODE_STRING: {
		uint64_t v = md_node_get_u64(n);
		return v > INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	default:
		return 0;
	}
}

double md_node_get_double(const struct md_node *n)
{
	if (!n)
		return 0;
	switch (n->type) {
	case MD_NODE_DOUBLE:
		return n->d;
	case MD_NODE_U64:
		return (double)n->u;
	case MD_NODE_I64:
		return (double)n->i;
	case MD_NODE_BOOL:
		return n->b;
	default:
		return 0;
	}
}

const char *md_node_get_string(const struct md_node *n)
{
	return n && n->type == MD_NODE_STRING ? n->str.s : NULL;
}

/* ---- numbers and locale ---- */

/* Number text must not depend on LC_NUMERIC: whatever the process's locale, numbers are written
 * and read in the C locale. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_make(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static locale_t get_c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_make);
	return c_locale;
}

/* Shortest text that reads back as the same double, and reads back as a double. */
static void format_double(double v, char *buf, size_t len)
{
	if (!isfinite(v)) {
		snprintf(buf, len, "null");
		return;
	}
	locale_t loc = get_c_locale();
	locale_t old = loc ? uselocale(loc) : (locale_t)0;
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (prec == 17 || strtod(buf, NULL) == v)
			break;
	}
	if (loc)
		uselocale(old);
	if (!strpbrk(buf, ".eEni")) {
		size_t l = strlen(buf);
		if (l + 3 <= len)
			memcpy(buf + l, ".0", 3);
	}
}

/* ---- writer ---- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when the bytes there are not one. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (avail < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

static void write_string(const char *str, size_t len, FILE *out)
{
	const unsigned char *s = (const unsigned char *)str;
	putc_unlocked('"', out);
	size_t i = 0;
	while (i < len) {
		/* A run of printable ASCII that needs no escape goes out in one write. */
		size_t run = i;
		while (run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			fwrite_unlocked(s + i, 1, run - i, out);
			i = run;
			continue;
		}
		unsigned char c = s[i];
		switch (c) {
		case '"': fputs_unlocked("\\\"", out); i++; continue;
		case '\\': fputs_unlocked("\\\\", out); i++; continue;
		case '\b': fputs_unlocked("\\b", out); i++; continue;
		case '\f': fputs_unlocked("\\f", out); i++; continue;
		case '\n': fputs_unlocked("\\n", out); i++; continue;
		case '\r': fputs_unlocked("\\r", out); i++; continue;
		case '\t': fputs_unlocked("\\t", out); i++; continue;
		default: break;
		}
		if (c < 0x20) {
			fprintf(out, "\\u%04x", c);
			i++;
			continue;
		}
		size_t seq = utf8_sequence(s + i, len - i);
		if (seq == 0) {
			fprintf(out, "\\u%04x", c); /* not UTF-8: keep the byte visible, stay valid */
			i++;
			continue;
		}
		fwrite_unlocked(s + i, 1, seq, out);
		i += seq;
	}
	putc_unlocked('"', out);
}

static void write_newline(FILE *out, int indent, int depth)
{
	if (indent <= 0)
		return;
	static const char spaces[] = "                                                                ";
	putc_unlocked('\n', out);
	for (int left = indent * depth; left > 0;) {
		int n = left < (int)sizeof(spaces) - 1 ? left : (int)sizeof(spaces) - 1;
		fwrite_unlocked(spaces, 1, (size_t)n, out);
		left -= n;
	}
}

static void write_node(const struct md_node *n, FILE *out, int indent, int depth)
{
	char buf[64];
	if (!n) {
		fputs_unlocked("null", out);
		return;
	}
	switch (n->type) {
	case MD_NODE_NULL:
		fputs_unlocked("null", out);
		break;
	case MD_NODE_BOOL:
		fputs_unlocked(n->b ? "true" : "false", out);
		break;
	case MD_NODE_U64: {
		char *e = buf + sizeof(buf), *q = e;
		uint64_t v = n->u;
		do {
			*--q = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		fwrite_unlocked(q, 1, (size_t)(e - q), out);
		break;
	}
	case MD_NODE_I64:
		fprintf(out, "%" PRId64, n->i);
		break;
	case MD_NODE_DOUBLE:
		format_double(n->d, buf, sizeof(buf));
		fputs_unlocked(buf, out);
		break;
	case MD_NODE_STRING:
		write_string(n->str.s, n->str.len, out);
		break;
	case MD_NODE_ARRAY:
		putc_unlocked('[', out);
		for (size_t i = 0; i < n->arr.n; i++) {
			if (i)
				putc_unlocked(',', out);
			write_newline(out, indent, depth + 1);
			write_node(n->arr.items[i], out, indent, depth + 1);
		}
		if (n->arr.n)
			write_newline(out, indent, depth);
		putc_unlocked(']', out);
		break;
	case MD_NODE_OBJECT:
		putc_unlocked('{', out);
		for (size_t i = 0; i < n->obj.n; i++) {
			if (i)
				putc_unlocked(',', out);
			write_newline(out, indent, depth + 1);
			write_string(n->obj.keys[i].s, n->obj.keys[i].len, out);
			fputs_unlocked(indent > 0 ? ": " : ":", out);
			write_node(n->obj.vals[i], out, indent, depth + 1);
		}
		if (n->obj.n)
			write_newline(out, indent, depth);
		putc_unlocked('}', out);
		break;
	}
}

struct md_error *md_node_write_json(const struct md_node *n, FILE *out, int indent)
{
	if (indent > 16)
		indent = 16;
	flockfile(out); /* one lock for the whole document: the writers use the unlocked calls */
	write_node(n, out, indent, 0);
	funlockfile(out);
	if (ferror(out))
		return md_error_os(errno ? errno : EIO, "writing JSON");
	return NULL;
}

/* ---- parser ---- */

struct parser {
	const char *text;
	size_t len, pos;
	int depth;
	/* scratch buffer for string contents */
	char *buf;
	size_t buf_len, buf_cap;
};

static struct md_error *parse_error(size_t at, const char *what)
{
	/* The byte offset is in the message and, for callers that want it as a number, in address. */
	return md_error_fault(MD_ERR_BAD_DATA, at, "JSON: %s at byte %zu", what, at);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->text[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static bool buf_put(struct parser *p, const void *bytes, size_t n)
{
	if (p->buf_len + n + 1 > p->buf_cap) {
		size_t cap = p->buf_cap ? p->buf_cap : 64;
		while (cap < p->buf_len + n + 1)
			cap *= 2;
		char *nb = realloc(p->buf, cap);
		if (!nb)
			return false;
		p->buf = nb;
		p->buf_cap = cap;
	}
	memcpy(p->buf + p->buf_len, bytes, n);
	p->buf_len += n;
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p->pos; advances past them. */
static bool read_hex4(struct parser *p, unsigned *v_ret)
{
	if (p->len - p->pos < 4)
		return false;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(p->text[p->pos + i]);
		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	p->pos += 4;
	*v_ret = v;
	return true;
}

static size_t utf8_encode(unsigned cp, unsigned char *out)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | cp >> 18);
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string starting at the opening quote; the decoded bytes end up in p->buf[0..buf_len). */
static struct md_error *parse_string_raw(struct parser *p)
{
	p->buf_len = 0;
	p->pos++; /* opening quote */
	for (;;) {
		if (p->pos >= p->len)
			return parse_error(p->pos, "unterminated string");
		unsigned char c = (unsigned char)p->text[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return parse_error(p->pos, "control character in string");
		if (c == '\\') {
			size_t esc_at = p->pos;
			if (p->pos + 1 >= p->len)
				return parse_error(p->pos, "unterminated escape");
			char e = p->text[p->pos + 1];
			p->pos += 2;
			char out;
			switch (e) {
			case '"': out = '"'; break;
			case '\\': out = '\\'; break;
			case '/': out = '/'; break;
			case 'b': out = '\b'; break;
			case 'f': out = '\f'; break;
			case 'n': out = '\n'; break;
			case 'r': out = '\r'; break;
			case 't': out = '\t'; break;
			case 'u': {
				unsigned cp;
				if (!read_hex4(p, &cp))
					return parse_error(esc_at, "bad \\u escape");
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return parse_error(esc_at, "unpaired low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					unsigned lo;
					if (p->len - p->pos < 2 || p->text[p->pos] != '\\' ||
					    p->text[p->pos + 1] != 'u')
						return parse_error(esc_at, "unpaired high surrogate");
					p->pos += 2;
					if (!read_hex4(p, &lo))
						return parse_error(p->pos - 2, "bad \\u escape");
					if (lo < 0xdc00 || lo > 0xdfff)
						return parse_error(esc_at, "unpaired high surrogate");
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				unsigned char enc[4];
				size_t n = utf8_encode(cp, enc);
				if (!buf_put(p, enc, n))
					return &md_error_nomem;
				continue;
			}
			default:
				return parse_error(esc_at, "bad escape");
			}
			if (!buf_put(p, &out, 1))
				return &md_error_nomem;
			continue;
		}
		/* copy a run of plain bytes, checking UTF-8 */
		size_t start = p->pos;
		while (p->pos < p->len) {
			unsigned char d = (unsigned char)p->text[p->pos];
			if (d == '"' || d == '\\' || d < 0x20)
				break;
			size_t seq = utf8_sequence((const unsigned char *)p->text + p->pos,
						   p->len - p->pos);
			if (seq == 0)
				return parse_error(p->pos, "invalid UTF-8");
			p->pos += seq;
		}
		if (!buf_put(p, p->text + start, p->pos - start))
			return &md_error_nomem;
	}
	if (!buf_put(p, "", 1)) /* terminator, not counted */
		return &md_error_nomem;
	p->buf_len--;
	return NULL;
}

static struct md_error *parse_number(struct parser *p, struct md_node **node_ret)
{
	size_t start = p->pos;
	const char *t = p->text;
	size_t i = p->pos;
	bool neg = false, is_int = true;
	if (i < p->len && t[i] == '-') {
		neg = true;
		i++;
	}
	if (i >= p->len || t[i] < '0' || t[i] > '9')
		return parse_error(start, "bad number");
	size_t int_start = i;
	if (t[i] == '0') {
		i++;
		if (i < p->len && t[i] >= '0' && t[i] <= '9')
			return parse_error(start, "leading zero in number");
	} else {
		while (i < p->len && t[i] >= '0' && t[i] <= '9')
			i++;
	}
	size_t int_end = i;
	if (i < p->len && t[i] == '.') {
		is_int = false;
		i++;
		if (i >= p->len || t[i] < '0' || t[i] > '9')
			return parse_error(start, "bad fraction in number");
		while (i < p->len && t[i] >= '0' && t[i] <= '9')
			i++;
	}
	if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
		is_int = false;
		i++;
		if (i < p->len && (t[i] == '+' || t[i] == '-'))
			i++;
		if (i >= p->len || t[i] < '0' || t[i] > '9')
			return parse_error(start, "bad exponent in number");
		while (i < p->len && t[i] >= '0' && t[i] <= '9')
			i++;
	}
	p->pos = i;
	if (is_int) {
		uint64_t mag = 0;
		bool overflow = false;
		for (size_t k = int_start; k < int_end; k++) {
			unsigned d = (unsigned)(t[k] - '0');
			if (mag > (UINT64_MAX - d) / 10) {
				overflow = true;
				break;
			}
			mag = mag * 10 + d;
		}
		if (!overflow && !neg) {
			*node_ret = md_node_u64(mag);
			return *node_ret ? NULL : &md_error_nomem;
		}
		if (!overflow && mag <= (uint64_t)INT64_MAX + 1) {
			*node_ret = md_node_i64(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
									: -(int64_t)mag);
			return *node_ret ? NULL : &md_error_nomem;
		}
	}
	/* strtod needs a terminated copy: the input is not NUL-terminated */
	size_t n = i - start;
	char small[128];
	char *copy = n < sizeof(small) ? small : malloc(n + 1);
	if (!copy)
		return &md_error_nomem;
	memcpy(copy, t + start, n);
	copy[n] = '\0';
	locale_t loc = get_c_locale();
	double v = loc ? strtod_l(copy, NULL, loc) : strtod(copy, NULL);
	if (copy != small)
		free(copy);
	if (isinf(v))
		return parse_error(start, "number out of range");
	*node_ret = md_node_double(v);
	return *node_ret ? NULL : &md_error_nomem;
}

static bool match_literal(struct parser *p, const char *lit)
{
	size_t n = strlen(lit);
	if (p->len - p->pos < n || memcmp(p->text + p->pos, lit, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static struct md_error *parse_value(struct parser *p, struct md_node **node_ret);

static struct md_error *parse_array(struct parser *p, struct md_node **node_ret)
{
	struct md_node *arr = md_node_array();
	if (!arr)
		return &md_error_nomem;
	struct md_error *err;
	p->pos++; /* [ */
	skip_ws(p);
	if (p->pos < p->len && p->text[p->pos] == ']') {
		p->pos++;
		*node_ret = arr;
		return NULL;
	}
	for (;;) {
		struct md_node *child = NULL;
		err = parse_value(p, &child);
		if (err)
			goto fail;
		err = md_node_append(arr, child);
		if (err)
			goto fail;
		skip_ws(p);
		if (p->pos >= p->len) {
			err = parse_error(p->pos, "unterminated array");
			goto fail;
		}
		char c = p->text[p->pos];
		if (c == ']') {
			p->pos++;
			break;
		}
		if (c != ',') {
			err = parse_error(p->pos, "expected ',' or ']'");
			goto fail;
		}
		p->pos++;
	}
	*node_ret = arr;
	return NULL;
fail:
	md_node_destroy(arr);
	return err;
}

static struct md_error *parse_object(struct parser *p, struct md_node **node_ret)
{
	struct md_node *obj = md_node_object();
	if (!obj)
		return &md_error_nomem;
	struct md_error *err;
	char *key = NULL;
	p->pos++; /* { */
	skip_ws(p);
	if (p->pos < p->len && p->text[p->pos] == '}') {
		p->pos++;
		*node_ret = obj;
		return NULL;
	}
	for (;;) {
		skip_ws(p);
		if (p->pos >= p->len || p->text[p->pos] != '"') {
			err = parse_error(p->pos, "expected a string key");
			goto fail;
		}
		err = parse_string_raw(p);
		if (err)
			goto fail;
		size_t key_len = p->buf_len;
		key = malloc(key_len + 1);
		if (!key) {
			err = &md_error_nomem;
			goto fail;
		}
		memcpy(key, p->buf, key_len + 1);
		skip_ws(p);
		if (p->pos >= p->len || p->text[p->pos] != ':') {
			err = parse_error(p->pos, "expected ':'");
			goto fail;
		}
		p->pos++;
		struct md_node *child = NULL;
		err = parse_value(p, &child);
		if (err)
			goto fail;
		err = object_set(obj, key, key_len, child);
		free(key);
		key = NULL;
		if (err)
			goto fail;
		skip_ws(p);
		if (p->pos >= p->len) {
			err = parse_error(p->pos, "unterminated object");
			goto fail;
		}
		char c = p->text[p->pos];
		if (c == '}') {
			p->pos++;
			break;
		}
		if (c != ',') {
			err = parse_error(p->pos, "expected ',' or '}'");
			goto fail;
		}
		p->pos++;
	}
	*node_ret = obj;
	return NULL;
fail:
	free(key);
	md_node_destroy(obj);
	return err;
}

static struct md_error *parse_value(struct parser *p, struct md_node **node_ret)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return parse_error(p->pos, "unexpected end of input");
	char c = p->text[p->pos];
	struct md_error *err;
	switch (c) {
	case '{':
	case '[':
		if (p->depth >= MD_JSON_MAX_DEPTH)
			return parse_error(p->pos, "nesting too deep");
		p->depth++;
		err = c == '{' ? parse_object(p, node_ret) : parse_array(p, node_ret);
		p->depth--;
		return err;
	case '"': {
		err = parse_string_raw(p);
		if (err)
			return err;
		char *s = malloc(p->buf_len + 1);
		if (!s)
			return &md_error_nomem;
		memcpy(s, p->buf, p->buf_len + 1);
		*node_ret = node_string_take(s, p->buf_len);
		return *node_ret ? NULL : &md_error_nomem;
	}
	case 't':
		if (!match_literal(p, "true"))
			break;
		*node_ret = md_node_bool(true);
		return *node_ret ? NULL : &md_error_nomem;
	case 'f':
		if (!match_literal(p, "false"))
			break;
		*node_ret = md_node_bool(false);
		return *node_ret ? NULL : &md_error_nomem;
	case 'n':
		if (!match_literal(p, "null"))
			break;
		*node_ret = md_node_null();
		return *node_ret ? NULL : &md_error_nomem;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(p, node_ret);
		break;
	}
	return parse_error(p->pos, "unexpected character");
}

struct md_error *md_node_parse_json(const char *text, size_t len, struct md_node **node_ret)
{
	if (!text && len)
		return md_error_create(MD_ERR_BAD_DATA, "JSON: no input");
	if (len > MD_JSON_MAX_SIZE)
		return md_error_create(MD_ERR_BAD_DATA, "JSON: input of %zu bytes is larger than %u",
				       len, MD_JSON_MAX_SIZE);
	struct parser p = { .text = text ? text : "", .len = len };
	struct md_node *root = NULL;
	struct md_error *err = parse_value(&p, &root);
	if (!err) {
		skip_ws(&p);
		if (p.pos != p.len) {
			err = parse_error(p.pos, "trailing characters after the value");
			md_node_destroy(root);
		}
	}
	free(p.buf);
	if (err)
		return err;
	*node_ret = root;
	return NULL;
}
