/* Finding mallocng: the module (musl's libc.so for dynamic programs, the executable for static
 * ones, recognised by __malloc_context or by the size_classes table in its read-only image), its
 * version, and in the pause the malloc_context itself. The context needs no symbol: its first
 * word is the allocator secret, which is also the first word of every meta area, so a qword in
 * the writable image whose meta_area_head and meta_area_tail pages start with that same qword
 * is the context (shared/docs/pymalloc-musl.md B.0: one hit in every run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "musl.h"

const uint16_t mu_size_classes[MU_NCLASSES] = {
	1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   12,   15,   18,   20,   25,   31,
	36,   42,   50,   63,   72,   84,   102,  127,  146,  170,  204,  255,  292,  340,  409,  511,
	584,  682,  818,  1023, 1169, 1364, 1637, 2047, 2340, 2730, 3276, 4095, 4680, 5460, 6552, 8191,
};

#define SCAN_WINDOW (256 * 1024)
#define SCAN_LIMIT ((uint64_t)64 << 20) /* bytes of image scanned at most */

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path ? path : "";
}

static bool is_musl_libc(const char *name)
{
	const char *b = base_name(name);
	return strcmp(b, "libc.so") == 0 || strncmp(b, "ld-musl-", 8) == 0 || strncmp(b, "libc.musl-", 10) == 0;
}

/* Calls fn on every readable mapping of mod with (or without) write permission, and on the
 * anonymous mapping right after the module's last writable one (.bss beyond the file). */
typedef bool (*range_fn)(struct md_target *t, uint64_t start, uint64_t end, void *arg);

static void for_each_image_range(struct md_target *t, const struct md_module *mod, bool writable, range_fn fn, void *arg)
{
	size_t n = 0;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	for (size_t i = 0; i < n; i++) {
		const struct md_mapping *m = &maps[i];
		if (m->start < mod->start || m->start >= mod->end || !(m->perms & MD_PERM_READ))
			continue;
		if (((m->perms & MD_PERM_WRITE) != 0) != writable || (m->perms & MD_PERM_SHARED))
			continue;
		if (!fn(t, m->start, m->end, arg))
			return;
		if (writable && i + 1 < n && maps[i + 1].start == m->end && !maps[i + 1].path &&
		    (maps[i + 1].perms & MD_PERM_WRITE) && maps[i + 1].start >= mod->end) {
			if (!fn(t, maps[i + 1].start, maps[i + 1].end, arg))
				return;
		}
	}
}

struct sig_scan {
	uint8_t sig[sizeof(mu_size_classes)];
	bool found;
	uint64_t scanned;
};

static bool scan_signature(struct md_target *t, uint64_t start, uint64_t end, void *arg)
{
	struct sig_scan *s = arg;
	static uint8_t buf[SCAN_WINDOW + sizeof(mu_size_classes)];
	for (uint64_t a = start; a < end && s->scanned < SCAN_LIMIT; a += SCAN_WINDOW) {
		uint64_t len = end - a < SCAN_WINDOW + sizeof(s->sig) ? end - a : SCAN_WINDOW + sizeof(s->sig);
		struct md_error *err = md_target_read(t, a, buf, (size_t)len);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		s->scanned += len;
		for (uint64_t o = 0; o + sizeof(s->sig) <= len; o += 2)
			if (memcmp(buf + o, s->sig, sizeof(s->sig)) == 0) {
				s->found = true;
				return false;
			}
	}
	return true;
}

/* "1.2.3": a NUL-delimited x.y.z string in musl's read-only image (dynlink.c prints it). */
struct ver_scan {
	char version[32];
};

static bool scan_version(struct md_target *t, uint64_t start, uint64_t end, void *arg)
{
	struct ver_scan *v = arg;
	static uint8_t buf[SCAN_WINDOW];
	for (uint64_t a = start; a < end; a += SCAN_WINDOW - 16) {
		size_t len = (size_t)(end - a < SCAN_WINDOW ? end - a : SCAN_WINDOW);
		struct md_error *err = md_target_read(t, a, buf, len);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		for (size_t o = 1; o + 7 < len; o++) {
			if (buf[o - 1] != 0 || buf[o] != '1' || buf[o + 1] != '.')
				continue;
			size_t e = o;
			unsigned dots = 0;
			while (e < len && e - o < 12 && ((buf[e] >= '0' && buf[e] <= '9') || buf[e] == '.'))
				dots += buf[e++] == '.';
			if (e < len && buf[e] == 0 && dots == 2 && buf[e - 1] != '.') {
				memcpy(v->version, buf + o, e - o);
				v->version[e - o] = 0;
				return false;
			}
		}
		if (a + SCAN_WINDOW >= end)
			break;
	}
	return true;
}

static bool lookup(struct md_target *t, const struct md_module *mod, const char *name, uint64_t *addr_ret)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, name, &sym);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	*addr_ret = sym.address;
	return true;
}

struct md_error *mu_locate(struct md_target *t, bool no_debug, struct mu_roots *r)
{
	(void)no_debug; /* .symtab is the module's own table: allowed with --debuginfo=off */
	memset(r, 0, sizeof(*r));
	size_t n = 0;
	const struct md_module *mods = md_target_modules(t, &n);
	const struct md_module *mod = NULL;
	for (size_t i = 0; i < n && !mod; i++)
		if (is_musl_libc(mods[i].name))
			mod = &mods[i];
	r->dynamic = mod != NULL;
	if (!mod) {
		const struct md_module *exe = md_target_find_module(t, NULL);
		if (!exe)
			return NULL;
		/* A program on glibc's libc.so.6 is not a static musl program: no scan. */
		for (size_t i = 0; i < n; i++)
			if (strncmp(base_name(mods[i].name), "libc.so.6", 9) == 0)
				return NULL;
		uint64_t a;
		if (lookup(t, exe, "__malloc_context", &a)) {
			mod = exe;
		} else {
			struct sig_scan s = {0};
			for (size_t i = 0; i < MU_NCLASSES; i++) {
				s.sig[2 * i] = (uint8_t)(mu_size_classes[i] & 0xff);
				s.sig[2 * i + 1] = (uint8_t)(mu_size_classes[i] >> 8);
			}
			for_each_image_range(t, exe, false, scan_signature, &s);
			if (!s.found)
				return NULL;
			mod = exe;
		}
	}
	r->module = mod;
	const char *path = md_target_module_file(t, mod);
	snprintf(r->module_path, sizeof(r->module_path), "%s", path ? path : mod->name ? mod->name : "");
	r->has_ctx_symbol = lookup(t, mod, "__malloc_context", &r->ctx_symbol);
	r->has_lock_symbol = lookup(t, mod, "__malloc_lock", &r->lock_symbol);
	if (r->dynamic) {
		struct ver_scan v = {{0}};
		for_each_image_range(t, mod, false, scan_version, &v);
		snprintf(r->version, sizeof(r->version), "%s", v.version);
		unsigned maj = 0, min = 0, pat = 0;
		if (r->version[0] && sscanf(r->version, "%u.%u.%u", &maj, &min, &pat) == 3 &&
		    (maj < 1 || (maj == 1 && (min < 2 || (min == 2 && pat < 1)))))
			return md_error_create(MD_ERR_UNSUPPORTED,
					       "musl %s in %s uses the old allocator (oldmalloc); only mallocng "
					       "(musl 1.2.1 and later) can be analysed",
					       r->version, r->module_path);
		/* A dynamic musl older than 1.2.1 has no size_classes table either. */
		struct sig_scan s = {0};
		for (size_t i = 0; i < MU_NCLASSES; i++) {
			s.sig[2 * i] = (uint8_t)(mu_size_classes[i] & 0xff);
			s.sig[2 * i + 1] = (uint8_t)(mu_size_classes[i] >> 8);
		}
		for_each_image_range(t, mod, false, scan_signature, &s);
		if (!s.found)
			return md_error_create(MD_ERR_UNSUPPORTED,
					       "%s is musl %s without mallocng's size class table: the old allocator "
					       "(musl before 1.2.1) or a replaced malloc cannot be analysed",
					       r->module_path, r->version[0] ? r->version : "(version unknown)");
	}
	return NULL;
}

struct ctx_scan {
	uint64_t found, hits, scanned;
};

static bool ctx_shape(struct md_target *t, const uint8_t *c, uint64_t secret)
{
	uint32_t init_done;
	uint64_t head, tail, w;
	memcpy(&init_done, c + MU_CTX_INIT_DONE, 4);
	memcpy(&head, c + MU_CTX_META_AREA_HEAD, 8);
	memcpy(&tail, c + MU_CTX_META_AREA_TAIL, 8);
	if (init_done != 1 || !head || !tail || (head & 4095) || (tail & 4095))
		return false;
	/* One of the two suffices, so that a damaged first (or last) area is still found and
	 * reported by the walk rather than hiding the whole heap. */
	unsigned matches = 0;
	uint64_t ends[2] = { head, tail };
	for (int i = 0; i < 2; i++) {
		struct md_error *err = md_target_read_u64(t, ends[i], &w);
		if (!err && w == secret)
			matches++;
		md_error_destroy(err);
	}
	return matches > 0;
}

static bool scan_ctx(struct md_target *t, uint64_t start, uint64_t end, void *arg)
{
	struct ctx_scan *s = arg;
	static uint8_t buf[SCAN_WINDOW + MU_CTX_SIZE];
	for (uint64_t a = start; a < end && s->scanned < SCAN_LIMIT; a += SCAN_WINDOW) {
		uint64_t len = end - a < SCAN_WINDOW + MU_CTX_SIZE ? end - a : SCAN_WINDOW + MU_CTX_SIZE;
		struct md_error *err = md_target_read(t, a, buf, (size_t)len);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		s->scanned += len < SCAN_WINDOW ? len : SCAN_WINDOW;
		for (uint64_t o = 0; o + MU_CTX_SIZE <= len && o < SCAN_WINDOW; o += 8) {
			uint64_t q;
			memcpy(&q, buf + o, 8);
			if (q == 0 || buf[o + MU_CTX_INIT_DONE] != 1)
				continue;
			if (ctx_shape(t, buf + o, q)) {
				if (!s->hits)
					s->found = a + o;
				s->hits++;
			}
		}
	}
	return true;
}

struct md_error *mu_find_ctx(struct md_target *t, const struct mu_roots *r, uint64_t *ctx_ret, unsigned *hits_ret,
			     uint64_t *scanned_ret, bool *found_ret)
{
	*found_ret = false;
	*hits_ret = 0;
	*scanned_ret = 0;
	if (r->has_ctx_symbol) {
		*ctx_ret = r->ctx_symbol;
		*hits_ret = 1;
		uint32_t init_done = 0;
		struct md_error *err = md_target_read(t, r->ctx_symbol + MU_CTX_INIT_DONE, &init_done, 4);
		if (err)
			return md_error_wrap(err, "reading __malloc_context");
		*found_ret = init_done != 0;
		return NULL;
	}
	struct ctx_scan s = {0};
	for_each_image_range(t, r->module, true, scan_ctx, &s);
	*scanned_ret = s.scanned;
	*hits_ret = (unsigned)s.hits;
	if (s.hits) {
		*ctx_ret = s.found;
		*found_ret = true;
	}
	return NULL;
}
