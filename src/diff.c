/* memdissect diff A.json B.json: what changed between two reports (attach --json), read back
 * with the JSON parser: the totals and the gap, each class, each allocator's byte figures and
 * those of its groups, and the mappings and allocator regions that changed the most.
 * Mappings are matched by start address and path, allocator regions by allocator, label and
 * start: a mapping that moved shows as gone and new, which is what happened to its pages.
 * Documents are untrusted input: every key is looked up by name and may be absent. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "render.h"

#define MAX_DOC_BYTES (1024ULL * 1024 * 1024)

static const char *const class_keys[MD_CLASS_COUNT] = {
	"live", "free", "metadata", "stack", "file", "shared", "anon_other",
};
static const char *const class_words[MD_CLASS_COUNT] = {
	"live heap", "retained free", "allocator metadata", "stacks", "code and file", "shared",
	"other anonymous",
};

struct figures {
	uint64_t rss, pss, uss, swap;
	uint64_t live_heap, gap, releasable, pinned;
	bool have_live;
	uint64_t classes[MD_CLASS_COUNT];
};

static uint64_t u64_at(const struct md_node *n, const char *path)
{
	const struct md_node *v = md_node_path(n, path);
	enum md_node_type ty = md_node_type(v);
	return v && (ty == MD_NODE_U64 || ty == MD_NODE_I64 || ty == MD_NODE_STRING) ? md_node_get_u64(v) : 0;
}

static bool is_number(const struct md_node *v)
{
	enum md_node_type ty = md_node_type(v);
	return v && (ty == MD_NODE_U64 || ty == MD_NODE_I64);
}

static void figures_of(const struct md_node *doc, struct figures *f)
{
	memset(f, 0, sizeof(*f));
	f->rss = u64_at(doc, "memory.rss_bytes");
	f->pss = u64_at(doc, "memory.pss_bytes");
	f->uss = u64_at(doc, "memory.uss_bytes");
	f->swap = u64_at(doc, "memory.swap_bytes");
	const struct md_node *classes = md_node_get(doc, "classes");
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		f->classes[c] = u64_at(classes, class_keys[c]);
	const struct md_node *allocators = md_node_get(doc, "allocators");
	for (size_t i = 0; i < md_node_count(allocators); i++) {
		const struct md_node *a = md_node_at(allocators, i);
		const struct md_node *live = md_node_get(a, "live_bytes");
		if (is_number(live)) {
			f->live_heap += md_node_get_u64(live);
			f->have_live = true;
		}
	}
	const struct md_node *ar = md_node_get(doc, "alloc_regions");
	uint64_t rel = 0, pinned = 0;
	for (size_t i = 0; i < md_node_count(ar); i++) {
		rel += u64_at(md_node_at(ar, i), "releasable_bytes");
		pinned += u64_at(md_node_at(ar, i), "pinned_free_bytes");
	}
	if (!md_node_count(ar)) {
		for (size_t i = 0; i < md_node_count(allocators); i++) {
			const struct md_node *a = md_node_at(allocators, i);
			rel += u64_at(md_node_get(a, "release"), "bytes");
			pinned += u64_at(a, "pinned_free_bytes");
		}
	}
	f->releasable = rel;
	f->pinned = pinned;
	if (!f->have_live)
		f->live_heap = f->classes[MD_CLASS_LIVE] > pinned ? f->classes[MD_CLASS_LIVE] - pinned : 0;
	f->gap = f->rss > f->live_heap ? f->rss - f->live_heap : 0;
}

/* "+5.40 MiB", "-1.00 MiB", "0 B" */
static const char *signed_bytes(uint64_t a, uint64_t b, char *buf, size_t len)
{
	char h[32];
	if (a == b) {
		snprintf(buf, len, "0 B");
		return buf;
	}
	md_format_bytes(b > a ? b - a : a - b, h, sizeof(h));
	snprintf(buf, len, "%c%s", b > a ? '+' : '-', h);
	return buf;
}

struct out {
	FILE *f;
	bool color;
	int width;
};

static void heading(const struct out *o, const char *title)
{
	fprintf(o->f, "\n%s%s%s\n", o->color ? "\033[1m" : "", title, o->color ? "\033[0m" : "");
}

static void row(const struct out *o, const char *label, uint64_t a, uint64_t b)
{
	char ha[32], hb[32], d[40];
	const char *c = "";
	if (o->color && a != b)
		c = b > a ? "\033[31m" : "\033[32m"; /* more memory is the news to look at */
	fprintf(o->f, "  %-26s %10s %10s  %s%11s%s\n", md_esc(label), md_format_bytes(a, ha, sizeof(ha)),
		md_format_bytes(b, hb, sizeof(hb)), c, signed_bytes(a, b, d, sizeof(d)), c[0] ? "\033[0m" : "");
}

static const char *describe(const struct md_node *doc, char *buf, size_t len)
{
	const struct md_node *t = md_node_get(doc, "target");
	const char *comm = md_node_get_string(md_node_get(t, "comm"));
	const char *source = md_node_get_string(md_node_get(t, "source"));
	snprintf(buf, len, "pid %" PRId64 " (%s), %s", md_node_get_i64(md_node_get(t, "pid")), comm ? md_esc(comm) : "?",
		 source ? md_esc(source) : "live");
	return buf;
}

/* ---- per allocator ---- */

static const struct md_node *find_allocator(const struct md_node *doc, const char *name)
{
	const struct md_node *allocators = md_node_get(doc, "allocators");
	for (size_t i = 0; i < md_node_count(allocators); i++) {
		const struct md_node *a = md_node_at(allocators, i);
		const char *n = md_node_get_string(md_node_get(a, "name"));
		if (n && strcmp(n, name) == 0)
			return a;
	}
	return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Every numeric "*_bytes" key of either object that differs. */
static size_t object_bytes(const struct out *o, const char *prefix, const struct md_node *a, const struct md_node *b)
{
	size_t printed = 0;
	const struct md_node *objs[2] = { a, b };
	for (int side = 0; side < 2; side++) {
		const struct md_node *obj = objs[side];
		for (size_t i = 0; i < md_node_count(obj); i++) {
			const char *key = md_node_key_at(obj, i);
			if (md_node_type(obj) != MD_NODE_OBJECT || !key || !ends_with(key, "_bytes") ||
			    !is_number(md_node_at(obj, i)))
				continue;
			/* a key of b already seen in a */
			if (side == 1 && is_number(md_node_get(a, key)))
				continue;
			uint64_t va = is_number(md_node_get(a, key)) ? md_node_get_u64(md_node_get(a, key)) : 0;
			uint64_t vb = is_number(md_node_get(b, key)) ? md_node_get_u64(md_node_get(b, key)) : 0;
			if (va == vb)
				continue;
			char label[96];
			snprintf(label, sizeof(label), "%s%.*s", prefix, (int)(strlen(key) - 6), key);
			row(o, label, va, vb);
			printed++;
		}
	}
	return printed;
}

/* A group row of the allocator object by its group number (the standard "groups"). */
static const struct md_node *group_by_number(const struct md_node *alloc, int64_t number)
{
	const struct md_node *groups = md_node_get(alloc, "groups");
	for (size_t i = 0; i < md_node_count(groups); i++) {
		const struct md_node *gr = md_node_at(groups, i);
		if (is_number(md_node_get(gr, "group")) && md_node_get_i64(md_node_get(gr, "group")) == number)
			return gr;
	}
	return NULL;
}

static void allocator_diff(const struct out *o, const struct md_node *da, const struct md_node *db)
{
	const struct md_node *docs[2] = { da, db };
	for (int side = 0; side < 2; side++) {
		const struct md_node *allocators = md_node_get(docs[side], "allocators");
		for (size_t i = 0; i < md_node_count(allocators); i++) {
			const char *name = md_node_get_string(md_node_get(md_node_at(allocators, i), "name"));
			if (!name || (side == 1 && find_allocator(da, name)))
				continue;
			const struct md_node *a = find_allocator(da, name), *b = find_allocator(db, name);
			char title[96];
			snprintf(title, sizeof(title), "Allocator %s%s", md_esc(name), !a ? " (only in B)" : !b ? " (only in A)" : "");
			heading(o, title);
			size_t printed = object_bytes(o, "", a, b);
			/* groups by number */
			const struct md_node *sides[2] = { a, b };
			for (int s = 0; s < 2; s++) {
				const struct md_node *groups = md_node_get(sides[s], "groups");
				for (size_t k = 0; k < md_node_count(groups); k++) {
					const struct md_node *gr = md_node_at(groups, k);
					if (!is_number(md_node_get(gr, "group")))
						continue;
					int64_t num = md_node_get_i64(md_node_get(gr, "group"));
					if (s == 1 && group_by_number(a, num))
						continue;
					const char *gname = md_node_get_string(md_node_get(gr, "name"));
					char prefix[96];
					if (gname)
						snprintf(prefix, sizeof(prefix), "%s ", md_esc(gname));
					else
						snprintf(prefix, sizeof(prefix), "group %" PRId64 " ", num);
					printed += object_bytes(o, prefix, group_by_number(a, num), group_by_number(b, num));
				}
			}
			if (!printed)
				fputs("  no byte figure changed\n", o->f);
		}
	}
}

/* ---- per region ---- */

struct change {
	const struct md_node *a, *b;
	int64_t delta;
};

static int change_cmp(const void *x, const void *y)
{
	const struct change *p = x, *q = y;
	uint64_t ap = (uint64_t)(p->delta < 0 ? -p->delta : p->delta);
	uint64_t aq = (uint64_t)(q->delta < 0 ? -q->delta : q->delta);
	if (ap != aq)
		return ap > aq ? -1 : 1;
	return 0;
}

static bool same_string(const struct md_node *a, const struct md_node *b, const char *key)
{
	const char *x = md_node_get_string(md_node_get(a, key)), *y = md_node_get_string(md_node_get(b, key));
	if (!x || !y)
		return !x && !y;
	return strcmp(x, y) == 0;
}

static bool same_mapping(const struct md_node *a, const struct md_node *b)
{
	return u64_at(a, "start") == u64_at(b, "start") && same_string(a, b, "path");
}

static bool same_alloc_region(const struct md_node *a, const struct md_node *b)
{
	return u64_at(a, "start") == u64_at(b, "start") && same_string(a, b, "label") &&
	       same_string(a, b, "allocator");
}

static uint64_t resident_of(const struct md_node *n, bool alloc_region)
{
	if (!n)
		return 0;
	if (!alloc_region)
		return u64_at(n, "rss_bytes");
	return (u64_at(n, "pages.live") + u64_at(n, "pages.free") + u64_at(n, "pages.metadata") +
		u64_at(n, "pages.other")) * MD_PAGE_SIZE;
}

/* Pairs of the two arrays (a NULL side: only in the other), by their largest change. */
static struct md_error *pair_up(const struct md_node *aa, const struct md_node *bb, bool alloc_region,
				struct change **changes_ret, size_t *n_ret)
{
	size_t na = md_node_count(aa), nb = md_node_count(bb);
	struct change *ch = calloc(na + nb + 1, sizeof(*ch));
	bool *used = calloc(nb + 1, sizeof(*used));
	if (!ch || !used) {
		free(ch);
		free(used);
		return &md_error_nomem;
	}
	size_t n = 0, j = 0;
	/* both arrays are in address order: a merge walk finds equal starts in linear time */
	for (size_t i = 0; i < na; i++) {
		const struct md_node *a = md_node_at(aa, i);
		uint64_t sa = u64_at(a, "start");
		while (j < nb && u64_at(md_node_at(bb, j), "start") < sa)
			j++;
		const struct md_node *match = NULL;
		for (size_t k = j; k < nb && u64_at(md_node_at(bb, k), "start") == sa; k++) {
			const struct md_node *b = md_node_at(bb, k);
			if (!used[k] && (alloc_region ? same_alloc_region(a, b) : same_mapping(a, b))) {
				used[k] = true;
				match = b;
				break;
			}
		}
		ch[n++] = (struct change){ .a = a, .b = match,
					   .delta = (int64_t)resident_of(match, alloc_region) -
						    (int64_t)resident_of(a, alloc_region) };
	}
	for (size_t k = 0; k < nb; k++)
		if (!used[k])
			ch[n++] = (struct change){ .b = md_node_at(bb, k),
						   .delta = (int64_t)resident_of(md_node_at(bb, k), alloc_region) };
	free(used);
	if (n > 0)
		qsort(ch, n, sizeof(*ch), change_cmp);
	*changes_ret = ch;
	*n_ret = n;
	return NULL;
}

static void region_name(const struct md_node *n, bool alloc_region, char *buf, size_t len)
{
	if (alloc_region) {
		const char *label = md_node_get_string(md_node_get(n, "label"));
		snprintf(buf, len, "%s", label ? md_esc(label) : "allocator region");
		return;
	}
	const char *path = md_node_get_string(md_node_get(n, "path"));
	const char *kind = md_node_get_string(md_node_get(n, "kind"));
	const char *alloc = md_node_get_string(md_node_get(n, "allocator"));
	snprintf(buf, len, "%s%s%s%s", path ? md_esc(path) : kind ? md_esc(kind) : "anon", alloc ? " (" : "",
		 alloc ? md_esc(alloc) : "", alloc ? ")" : "");
}

static struct md_error *regions_diff(const struct out *o, const struct md_node *da, const struct md_node *db,
				     const char *key, bool alloc_region, int top)
{
	struct change *ch;
	size_t n;
	struct md_error *err = pair_up(md_node_get(da, key), md_node_get(db, key), alloc_region, &ch, &n);
	if (err)
		return err;
	size_t changed = 0;
	for (size_t i = 0; i < n; i++)
		changed += ch[i].delta != 0 || !ch[i].a || !ch[i].b;
	char title[128];
	snprintf(title, sizeof(title), "%s that changed the most (%zu of %zu changed)",
		 alloc_region ? "Allocator regions" : "Mappings", changed, n);
	heading(o, title);
	if (!changed)
		fputs("  none\n", o->f);
	size_t shown = 0;
	for (size_t i = 0; i < n && shown < (size_t)top; i++) {
		const struct change *c = &ch[i];
		if (!c->delta && c->a && c->b)
			continue;
		const struct md_node *any = c->b ? c->b : c->a;
		char name[256], d[40], ra[32], rb[32];
		region_name(any, alloc_region, name, sizeof(name));
		uint64_t va = resident_of(c->a, alloc_region), vb = resident_of(c->b, alloc_region);
		const char *state = !c->a ? "new " : !c->b ? "gone" : "    ";
		fprintf(o->f, "  %11s  %s  %12" PRIx64 "  %9s -> %-9s  ", signed_bytes(va, vb, d, sizeof(d)), state,
			u64_at(any, "start"), md_format_bytes(va, ra, sizeof(ra)), md_format_bytes(vb, rb, sizeof(rb)));
		int used = 2 + 11 + 2 + 4 + 2 + 12 + 2 + 9 + 4 + 9 + 2;
		int avail = o->width - used;
		if (avail < 10)
			avail = 10;
		fprintf(o->f, "%.*s\n", avail, name);
		/* what moved inside a mapping: its classes */
		if (!alloc_region && c->a && c->b) {
			char line[512] = "";
			size_t l = 0;
			for (int k = 0; k < MD_CLASS_COUNT; k++) {
				char path[64], dd[40];
				snprintf(path, sizeof(path), "classes.%s", class_keys[k]);
				uint64_t x = u64_at(c->a, path), y = u64_at(c->b, path);
				if (x == y || l + 64 > sizeof(line))
					continue;
				l += (size_t)snprintf(line + l, sizeof(line) - l, "%s%s %s", l ? ", " : "", class_keys[k],
						      signed_bytes(x, y, dd, sizeof(dd)));
			}
			if (l)
				fprintf(o->f, "  %11s  %s\n", "", line);
		}
		shown++;
	}
	if (changed > shown)
		fprintf(o->f, "  ... %zu more changed\n", changed - shown);
	free(ch);
	return NULL;
}

/* ---- JSON output ---- */

static struct md_node *figures_node(const struct figures *f)
{
	struct md_node *o = md_node_object();
	struct md_error *err = NULL;
#define PUT(k, v)                                      \
	do {                                           \
		if (!err)                              \
			err = md_node_set_u64(o, k, v); \
	} while (0)
	PUT("rss_bytes", f->rss);
	PUT("pss_bytes", f->pss);
	PUT("uss_bytes", f->uss);
	PUT("swap_bytes", f->swap);
	PUT("live_heap_bytes", f->live_heap);
	PUT("gap_bytes", f->gap);
	PUT("releasable_bytes", f->releasable);
	PUT("pinned_free_bytes", f->pinned);
#undef PUT
	struct md_node *c = md_node_object();
	if (!err)
		err = md_node_set(o, "classes", c);
	for (int k = 0; k < MD_CLASS_COUNT && !err; k++)
		err = md_node_set_u64(c, class_keys[k], f->classes[k]);
	if (err) {
		md_error_destroy(err);
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

static struct md_error *diff_json(const struct figures *fa, const struct figures *fb, FILE *out)
{
	struct md_node *root = md_node_object();
	struct md_error *err = md_node_set(root, "a", figures_node(fa));
	if (!err)
		err = md_node_set(root, "b", figures_node(fb));
	struct md_node *d = md_node_object();
	if (!err)
		err = md_node_set(root, "delta", d);
	const struct {
		const char *key;
		uint64_t a, b;
	} pairs[] = {
		{ "rss_bytes", fa->rss, fb->rss },
		{ "pss_bytes", fa->pss, fb->pss },
		{ "uss_bytes", fa->uss, fb->uss },
		{ "swap_bytes", fa->swap, fb->swap },
		{ "live_heap_bytes", fa->live_heap, fb->live_heap },
		{ "gap_bytes", fa->gap, fb->gap },
		{ "releasable_bytes", fa->releasable, fb->releasable },
		{ "pinned_free_bytes", fa->pinned, fb->pinned },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]) && !err; i++)
		err = md_node_set_i64(d, pairs[i].key, (int64_t)(pairs[i].b - pairs[i].a));
	struct md_node *c = md_node_object();
	if (!err)
		err = md_node_set(d, "classes", c);
	for (int k = 0; k < MD_CLASS_COUNT && !err; k++)
		err = md_node_set_i64(c, class_keys[k], (int64_t)(fb->classes[k] - fa->classes[k]));
	if (!err)
		err = md_node_write_json(root, out, 2);
	if (!err)
		fputc('\n', out);
	md_node_destroy(root);
	return err;
}

struct md_error *md_diff_documents(const struct md_node *da, const struct md_node *db,
				   const struct md_diff_options *opts, FILE *out)
{
	struct figures fa, fb;
	figures_of(da, &fa);
	figures_of(db, &fb);
	if (opts && opts->json)
		return diff_json(&fa, &fb, out);
	struct out o = { .f = out, .color = opts && opts->color, .width = opts && opts->width > 0 ? opts->width : 100 };
	if (o.width < 60)
		o.width = 60;
	if (o.width > MD_MAX_WIDTH)
		o.width = MD_MAX_WIDTH;
	int top = opts && opts->top > 0 ? opts->top : 10;
	char da_s[128], db_s[128], d1[40], d2[40];
	fprintf(out, "%smemdissect diff%s: A %s -> B %s\n", o.color ? "\033[1m" : "", o.color ? "\033[0m" : "",
		describe(da, da_s, sizeof(da_s)), describe(db, db_s, sizeof(db_s)));
	fprintf(out, "  RSS %s, live heap %s, gap %s\n", signed_bytes(fa.rss, fb.rss, d1, sizeof(d1)),
		signed_bytes(fa.live_heap, fb.live_heap, d2, sizeof(d2)),
		signed_bytes(fa.gap, fb.gap, da_s, sizeof(da_s)));

	heading(&o, "Totals");
	fprintf(out, "  %-26s %10s %10s  %11s\n", "", "A", "B", "change");
	row(&o, "RSS", fa.rss, fb.rss);
	row(&o, "PSS", fa.pss, fb.pss);
	row(&o, "USS", fa.uss, fb.uss);
	row(&o, "Swap", fa.swap, fb.swap);
	row(&o, "live heap", fa.live_heap, fb.live_heap);
	row(&o, "gap (RSS - live heap)", fa.gap, fb.gap);
	row(&o, "  releasable now", fa.releasable, fb.releasable);
	row(&o, "  pinned free", fa.pinned, fb.pinned);
	heading(&o, "Classes");
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		row(&o, class_words[c], fa.classes[c], fb.classes[c]);
	allocator_diff(&o, da, db);
	struct md_error *err = regions_diff(&o, da, db, "alloc_regions", true, top);
	if (!err)
		err = regions_diff(&o, da, db, "regions", false, top);
	if (!err && (fflush(out) == EOF || ferror(out)))
		err = md_error_os(errno ? errno : EIO, "writing the diff");
	return err;
}

/* ---- what diff reads, validated: a report from another tool version, a hand edit or a
 * truncated copy must name its bad field, never turn into "RSS -20.2 MiB" ---- */

/* Beyond any x86-64 address space (57-bit with 5-level paging): not a byte count of a process. */
#define MAX_PLAUSIBLE_BYTES (1ULL << 57)

static const char *type_word(const struct md_node *v)
{
	switch (md_node_type(v)) {
	case MD_NODE_NULL: return "null";
	case MD_NODE_BOOL: return "a boolean";
	case MD_NODE_U64: return "an integer";
	case MD_NODE_I64: return "a negative integer";
	case MD_NODE_DOUBLE: return "a fraction or an integer too large";
	case MD_NODE_STRING: return "a string";
	case MD_NODE_ARRAY: return "an array";
	case MD_NODE_OBJECT: return "an object";
	}
	return "?";
}

/* where: "memory.rss_bytes" or "regions[3].rss_bytes". A byte count: an integer in range. */
static struct md_error *check_count(const char *path, const char *where, const struct md_node *v, bool required,
				    uint64_t max)
{
	if (!v)
		return required ? md_error_create(MD_ERR_BAD_FILE, "%s: %s is missing", path, where) : NULL;
	if (md_node_type(v) != MD_NODE_U64)
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s is %s, not a count", path, where, type_word(v));
	if (md_node_get_u64(v) > max)
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s is %" PRIu64 ", out of range (at most %" PRIu64 ")", path,
				       where, md_node_get_u64(v), max);
	return NULL;
}

/* An address: an integer or a "0x..." string, as docs/json.md writes them. */
static struct md_error *check_address(const char *path, const char *where, const struct md_node *v)
{
	if (!v)
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s is missing", path, where);
	if (md_node_type(v) == MD_NODE_U64)
		return NULL;
	const char *str = md_node_get_string(v);
	if (md_node_type(v) == MD_NODE_STRING && str && str[0] == '0' && (str[1] == 'x' || str[1] == 'X') && str[2] &&
	    strlen(str) <= 18 && strspn(str + 2, "0123456789abcdefABCDEF") == strlen(str + 2))
		return NULL;
	return md_error_create(MD_ERR_BAD_FILE, "%s: %s is %s, not an address", path, where, type_word(v));
}

static struct md_error *check_string(const char *path, const char *where, const struct md_node *v, bool required)
{
	if (!v || md_node_type(v) == MD_NODE_NULL)
		return required ? md_error_create(MD_ERR_BAD_FILE, "%s: %s is missing", path, where) : NULL;
	if (md_node_type(v) != MD_NODE_STRING)
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s is %s, not a string", path, where, type_word(v));
	return NULL;
}

static struct md_error *check_array(const char *path, const char *key, const struct md_node *v)
{
	if (v && md_node_type(v) != MD_NODE_ARRAY)
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s is %s, not an array", path, key, type_word(v));
	for (size_t i = 0; i < md_node_count(v); i++)
		if (md_node_type(md_node_at(v, i)) != MD_NODE_OBJECT)
			return md_error_create(MD_ERR_BAD_FILE, "%s: %s[%zu] is %s, not an object", path, key, i,
					       type_word(md_node_at(v, i)));
	return NULL;
}

static struct md_error *validate(const char *path, const struct md_node *doc)
{
	char where[96];
	struct md_error *err = NULL;
	const struct md_node *target = md_node_get(doc, "target"), *memory = md_node_get(doc, "memory");
	const struct md_node *classes = md_node_get(doc, "classes");
	if (md_node_type(target) != MD_NODE_OBJECT)
		return md_error_create(MD_ERR_BAD_FILE, "%s: target is %s, not an object", path, target ? type_word(target) : "missing");
	if ((err = check_count(path, "target.pid", md_node_get(target, "pid"), true, INT32_MAX)) ||
	    (err = check_string(path, "target.comm", md_node_get(target, "comm"), false)) ||
	    (err = check_string(path, "target.source", md_node_get(target, "source"), false)))
		return err;
	static const char *const memory_keys[] = { "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes" };
	for (size_t k = 0; k < 4; k++) {
		snprintf(where, sizeof(where), "memory.%s", memory_keys[k]);
		if ((err = check_count(path, where, md_node_get(memory, memory_keys[k]), k == 0, MAX_PLAUSIBLE_BYTES)))
			return err;
	}
	uint64_t rss = md_node_get_u64(md_node_get(memory, "rss_bytes"));
	if (md_node_type(classes) != MD_NODE_OBJECT)
		return md_error_create(MD_ERR_BAD_FILE, "%s: classes is %s, not an object", path,
				       classes ? type_word(classes) : "missing");
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		snprintf(where, sizeof(where), "classes.%s", class_keys[c]);
		/* a class is part of the RSS */
		if ((err = check_count(path, where, md_node_get(classes, class_keys[c]), true, rss)))
			return err;
	}
	const struct md_node *allocators = md_node_get(doc, "allocators");
	if ((err = check_array(path, "allocators", allocators)))
		return err;
	for (size_t i = 0; i < md_node_count(allocators); i++) {
		const struct md_node *a = md_node_at(allocators, i);
		static const char *const keys[] = { "live_bytes", "release.bytes", "pinned_free_bytes" };
		snprintf(where, sizeof(where), "allocators[%zu].name", i);
		if ((err = check_string(path, where, md_node_get(a, "name"), true)))
			return err;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			snprintf(where, sizeof(where), "allocators[%zu].%s", i, keys[k]);
			if ((err = check_count(path, where, md_node_path(a, keys[k]), false, MAX_PLAUSIBLE_BYTES)))
				return err;
		}
	}
	const struct md_node *regions = md_node_get(doc, "regions");
	if ((err = check_array(path, "regions", regions)))
		return err;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		const struct md_node *reg = md_node_at(regions, i);
		snprintf(where, sizeof(where), "regions[%zu].start", i);
		if ((err = check_address(path, where, md_node_get(reg, "start"))))
			return err;
		snprintf(where, sizeof(where), "regions[%zu].rss_bytes", i);
		if ((err = check_count(path, where, md_node_get(reg, "rss_bytes"), true, rss)))
			return err;
		snprintf(where, sizeof(where), "regions[%zu].path", i);
		if ((err = check_string(path, where, md_node_get(reg, "path"), false)))
			return err;
		const struct md_node *rc = md_node_get(reg, "classes");
		for (int c = 0; rc && c < MD_CLASS_COUNT; c++) {
			snprintf(where, sizeof(where), "regions[%zu].classes.%s", i, class_keys[c]);
			if ((err = check_count(path, where, md_node_get(rc, class_keys[c]), false, rss)))
				return err;
		}
	}
	const struct md_node *ar = md_node_get(doc, "alloc_regions");
	if ((err = check_array(path, "alloc_regions", ar)))
		return err;
	for (size_t i = 0; i < md_node_count(ar); i++) {
		const struct md_node *reg = md_node_at(ar, i);
		static const char *const keys[] = { "releasable_bytes", "pinned_free_bytes" };
		static const char *const pages[] = { "live", "free", "metadata", "other" };
		snprintf(where, sizeof(where), "alloc_regions[%zu].start", i);
		if ((err = check_address(path, where, md_node_get(reg, "start"))))
			return err;
		snprintf(where, sizeof(where), "alloc_regions[%zu].label", i);
		if ((err = check_string(path, where, md_node_get(reg, "label"), false)))
			return err;
		for (size_t k = 0; k < 2; k++) {
			snprintf(where, sizeof(where), "alloc_regions[%zu].%s", i, keys[k]);
			if ((err = check_count(path, where, md_node_get(reg, keys[k]), false, MAX_PLAUSIBLE_BYTES)))
				return err;
		}
		for (size_t k = 0; k < 4; k++) {
			snprintf(where, sizeof(where), "alloc_regions[%zu].pages.%s", i, pages[k]);
			if ((err = check_count(path, where, md_node_get(md_node_get(reg, "pages"), pages[k]), false,
					       MAX_PLAUSIBLE_BYTES / MD_PAGE_SIZE)))
				return err;
		}
	}
	return NULL;
}

static struct md_error *load(const char *path, struct md_node **doc_ret)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return md_error_create(MD_ERR_BAD_FILE, "cannot open %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return md_error_create(MD_ERR_BAD_FILE, "%s is a directory, not a report", path);
	FILE *f = fopen(path, "r");
	if (!f)
		return md_error_create(MD_ERR_BAD_FILE, "cannot open %s: %s", path, strerror(errno));
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	struct md_error *err = NULL;
	while (buf) {
		if (len == cap) {
			if (cap >= MAX_DOC_BYTES) {
				err = md_error_create(MD_ERR_BAD_FILE, "%s: larger than 1 GiB, not a report", path);
				break;
			}
			char *more = realloc(buf, cap * 2);
			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	bool read_error = ferror(f);
	fclose(f);
	if (!buf)
		return &md_error_nomem;
	if (!err && read_error)
		err = md_error_create(MD_ERR_BAD_FILE, "reading %s: %s", path, strerror(EIO));
	if (!err && len == 0)
		err = md_error_create(MD_ERR_BAD_FILE, "%s is empty", path);
	struct md_node *doc = NULL;
	if (!err) {
		err = md_node_parse_json(buf, len, &doc);
		if (err) {
			char *msg = err->message;
			struct md_error *e2 = md_error_create(MD_ERR_BAD_FILE, "%s: not JSON: %s", path, msg ? msg : "?");
			md_error_destroy(err);
			err = e2;
		}
	}
	free(buf);
	if (!err && (md_node_type(doc) != MD_NODE_OBJECT || !md_node_get(doc, "schema_version") ||
		     md_node_type(md_node_get(doc, "memory")) != MD_NODE_OBJECT)) {
		err = md_error_create(MD_ERR_BAD_FILE, "%s: not a memdissect report (memdissect attach --json)", path);
	} else if (!err && (md_node_type(md_node_get(doc, "schema_version")) != MD_NODE_U64 ||
			    md_node_get_u64(md_node_get(doc, "schema_version")) != 1)) {
		const struct md_node *sv = md_node_get(doc, "schema_version");
		if (md_node_type(sv) == MD_NODE_U64)
			err = md_error_create(MD_ERR_UNSUPPORTED, "%s: schema_version %" PRIu64 " (this memdissect reads 1)",
					      path, md_node_get_u64(sv));
		else
			err = md_error_create(MD_ERR_BAD_FILE, "%s: schema_version is %s, not an integer", path, type_word(sv));
	} else if (!err) {
		err = validate(path, doc);
	}
	if (err) {
		md_node_destroy(doc);
		return err;
	}
	*doc_ret = doc;
	return NULL;
}

struct md_error *md_diff_files(const char *path_a, const char *path_b, const struct md_diff_options *opts,
			       FILE *out)
{
	struct md_node *a = NULL, *b = NULL;
	struct md_error *err = load(path_a, &a);
	if (!err)
		err = load(path_b, &b);
	if (!err)
		err = md_diff_documents(a, b, opts, out);
	md_node_destroy(a);
	md_node_destroy(b);
	return err;
}
