/* Parsers for /proc text. Everything here treats its input as untrusted: every field is bounded
 * by the end of its line, numbers are checked for overflow, and malformed text becomes
 * MD_ERR_BAD_DATA with the line number instead of a guess. */
/* asprintf; the Makefile defines it too, the fuzz build does not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs.h"

/* smaps of a process near vm.max_map_count is ~100 MB; anything past this is not /proc text. */
#define READ_FILE_MAX (1ULL << 30)
#define READ_FILE_FIRST (64 * 1024)

struct md_error *md_read_file(const char *path, char **buf_ret, size_t *len_ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return md_error_os(errno, "open %s", path);

	/* /proc files report st_size 0, so the size only seeds the first guess. */
	size_t cap = READ_FILE_FIRST;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < READ_FILE_MAX)
		cap = (size_t)st.st_size + 1;

	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return &md_error_nomem;
	}
	size_t len = 0;
	for (;;) {
		/* Keep one byte free for the terminating NUL. */
		if (cap - len < 2) {
			if (cap >= READ_FILE_MAX) {
				free(buf);
				close(fd);
				return md_error_os(EFBIG, "read %s: more than %llu MiB", path,
						   READ_FILE_MAX >> 20);
			}
			size_t new_cap = cap * 2 > READ_FILE_MAX ? READ_FILE_MAX : cap * 2;
			char *nb = realloc(buf, new_cap);
			if (!nb) {
				free(buf);
				close(fd);
				return &md_error_nomem;
			}
			buf = nb;
			cap = new_cap;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return md_error_os(e, "read %s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*buf_ret = buf;
	*len_ret = len;
	return NULL;
}

/* ---- small bounded scanners: [p, end) is always the rest of one line ---- */


void md_line_iter_init(struct md_line_iter *it, const char *text, size_t len)
{
	it->p = text;
	it->end = text + len;
	it->lineno = 0;
}

/* The next line without its '\n'; a last line without '\n' counts. */
bool md_line_next(struct md_line_iter *it, const char **ls, const char **le)
{
	if (it->p >= it->end)
		return false;
	const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	*ls = it->p;
	*le = nl ? nl : it->end;
	it->p = nl ? nl + 1 : it->end;
	it->lineno++;
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && is_blank(*p))
		p++;
	return p;
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

/* At least one digit; false on no digit or overflow. */
static bool scan_hex(const char **pp, const char *end, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;
	int d;
	if (p >= end || hex_digit(*p) < 0)
		return false;
	while (p < end && (d = hex_digit(*p)) >= 0) {
		if (x > (UINT64_MAX >> 4))
			return false;
		x = (x << 4) | (uint64_t)d;
		p++;
	}
	*pp = p;
	*v = x;
	return true;
}

bool md_scan_dec(const char **pp, const char *end, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9') {
		uint64_t d = (uint64_t)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
		p++;
	}
	*pp = p;
	*v = x;
	return true;
}

static bool rest_is_blank(const char *p, const char *end)
{
	return skip_blanks(p, end) == end;
}

/* "   1234 kB" → bytes. */
static bool scan_kb_value(const char *p, const char *end, uint64_t *bytes)
{
	uint64_t kb;
	p = skip_blanks(p, end);
	if (!md_scan_dec(&p, end, &kb))
		return false;
	p = skip_blanks(p, end);
	if (end - p < 2 || p[0] != 'k' || p[1] != 'B')
		return false;
	if (!rest_is_blank(p + 2, end) || kb > UINT64_MAX / 1024)
		return false;
	*bytes = kb * 1024;
	return true;
}

/* A single decimal number filling the rest of the line (blanks around allowed). */
static bool scan_dec_value(const char *p, const char *end, uint64_t *v)
{
	p = skip_blanks(p, end);
	return md_scan_dec(&p, end, v) && rest_is_blank(p, end);
}

/* "Key:value" → key span and value start; false when the first token does not end in ':'. */
static bool split_key(const char *ls, const char *le, const char **key_end, const char **value)
{
	const char *p = ls;
	while (p < le && *p != ':' && !is_blank(*p))
		p++;
	if (p == ls || p >= le || *p != ':')
		return false;
	*key_end = p;
	*value = p + 1;
	return true;
}

static bool key_is(const char *ks, const char *ke, const char *name)
{
	size_t n = strlen(name);
	return (size_t)(ke - ks) == n && memcmp(ks, name, n) == 0;
}

static struct md_error *bad_line(const char *what, size_t lineno, const char *msg)
{
	return md_error_create(MD_ERR_BAD_DATA, "%s line %zu: %s", what, lineno, msg);
}

/* ---- maps / smaps ---- */

struct map_header {
	uint64_t start, end, offset, inode;
	uint32_t perms, dev_major, dev_minor;
	const char *path, *path_end; /* raw text, path == path_end when there is none */
};

/* "start-end perms offset maj:min inode   path"; NULL on success, else what was wrong. */
static const char *parse_map_header(const char *p, const char *end, struct map_header *h)
{
	uint64_t v;
	if (!scan_hex(&p, end, &h->start) || p >= end || *p++ != '-')
		return "bad address range";
	if (!scan_hex(&p, end, &h->end))
		return "bad address range";
	if (h->start >= h->end)
		return "empty or reversed address range";
	if ((h->start | h->end) & (MD_PAGE_SIZE - 1))
		return "address range not page aligned";
	p = skip_blanks(p, end);
	if (end - p < 4)
		return "bad permissions";
	static const char perm_chars[] = "rwx";
	h->perms = 0;
	for (int i = 0; i < 3; i++) {
		if (p[i] == perm_chars[i])
			h->perms |= 1u << i;
		else if (p[i] != '-')
			return "bad permissions";
	}
	if (p[3] == 's')
		h->perms |= MD_PERM_SHARED;
	else if (p[3] != 'p')
		return "bad permissions";
	p += 4;
	if (p >= end || !is_blank(*p))
		return "bad permissions";
	p = skip_blanks(p, end);
	if (!scan_hex(&p, end, &h->offset))
		return "bad offset";
	p = skip_blanks(p, end);
	if (!scan_hex(&p, end, &v) || v > UINT32_MAX || p >= end || *p++ != ':')
		return "bad device";
	h->dev_major = (uint32_t)v;
	if (!scan_hex(&p, end, &v) || v > UINT32_MAX)
		return "bad device";
	h->dev_minor = (uint32_t)v;
	if (p >= end || !is_blank(*p))
		return "bad device";
	p = skip_blanks(p, end);
	if (!md_scan_dec(&p, end, &h->inode))
		return "bad inode";
	if (p < end && !is_blank(*p))
		return "bad inode";
	/* The kernel pads with spaces up to the path column; the path itself runs to the end of
	 * the line and may contain spaces of its own. */
	while (p < end && *p == ' ')
		p++;
	h->path = p;
	h->path_end = end;
	return NULL;
}

/* seq_file writes the characters it escapes as \ooo. Only decode the escapes it can produce
 * (space, tab, newline, backslash) so any other backslash in a name stays as it is. */
static char *unescape_path(const char *s, const char *e)
{
	char *out = malloc((size_t)(e - s) + 1);
	if (!out)
		return NULL;
	char *o = out;
	while (s < e) {
		if (*s == '\\' && e - s >= 4 && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			int c = (s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0');
			if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
				*o++ = (char)c;
				s += 4;
				continue;
			}
		}
		*o++ = *s++;
	}
	*o = '\0';
	return out;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum md_map_kind map_kind(const struct md_mapping *m)
{
	const char *path = m->path;
	if (path) {
		if (strcmp(path, "[heap]") == 0)
			return MD_MAP_HEAP;
		/* "[stack:TID]" is what kernels before 4.5 wrote for thread stacks. */
		if (strcmp(path, "[stack]") == 0 || starts_with(path, "[stack:"))
			return MD_MAP_STACK;
		if (starts_with(path, "[anon_shmem:"))
			return MD_MAP_SHARED;
		/* Every other bracketed name but a user's "[anon:...]" is a kernel-provided
		 * mapping: [vdso] [vvar] [vvar_vclock] [vsyscall] [uprobes] and their kin. */
		if (path[0] == '[' && !starts_with(path, "[anon:"))
			return MD_MAP_SPECIAL;
	}
	if (m->perms & MD_PERM_SHARED)
		return MD_MAP_SHARED;
	/* MAP_HUGETLB|MAP_ANONYMOUS memory is shown as a deleted hugetlbfs file. */
	if (path && m->deleted && strcmp(path, "/anon_hugepage") == 0)
		return MD_MAP_ANON;
	/* Shared memory objects are MAP_SHARED in practice; a private one is still shmem pages. */
	if (path && (starts_with(path, "/SYSV") || starts_with(path, "/dev/shm/")))
		return MD_MAP_SHARED;
	if (path && (m->inode != 0 || path[0] == '/'))
		return MD_MAP_FILE;
	return MD_MAP_ANON;
}

/* A "Key:" and the uint64_t field it fills; the length is kept to skip strlen per line. */
struct smaps_key {
	const char *name;
	size_t name_len;
	size_t offset;
};

#define SK(name, field) { name, sizeof(name) - 1, offsetof(struct md_smaps, field) }
static const struct smaps_key smaps_keys[] = {
	SK("Size", size),
	SK("KernelPageSize", kernel_page_size),
	SK("Rss", rss),
	SK("Pss", pss),
	SK("Pss_Dirty", pss_dirty),
	SK("Shared_Clean", shared_clean),
	SK("Shared_Dirty", shared_dirty),
	SK("Private_Clean", private_clean),
	SK("Private_Dirty", private_dirty),
	SK("Referenced", referenced),
	SK("Anonymous", anonymous),
	SK("LazyFree", lazy_free),
	SK("AnonHugePages", anon_huge_pages),
	SK("ShmemPmdMapped", shmem_pmd_mapped),
	SK("FilePmdMapped", file_pmd_mapped),
	SK("Shared_Hugetlb", shared_hugetlb),
	SK("Private_Hugetlb", private_hugetlb),
	SK("Swap", swap),
	SK("SwapPss", swap_pss),
	SK("Locked", locked),
};
#undef SK

static void set_vmflags(struct md_smaps *s, const char *p, const char *end)
{
	p = skip_blanks(p, end);
	while (end > p && (is_blank(end[-1]) || end[-1] == '\r'))
		end--;
	size_t n = (size_t)(end - p);
	if (n >= sizeof(s->vmflags))
		n = sizeof(s->vmflags) - 1;
	memcpy(s->vmflags, p, n);
	s->vmflags[n] = '\0';
	s->hugetlb = false;
	/* Flags are two-letter tokens; look at the whole text, not the truncated copy. */
	while (p < end) {
		const char *t = p;
		while (p < end && !is_blank(*p))
			p++;
		if (p - t == 2 && t[0] == 'h' && t[1] == 't')
			s->hugetlb = true;
		p = skip_blanks(p, end);
	}
}

/* One "Key: value" line of smaps or smaps_rollup. Unknown keys are ignored on purpose:
 * every kernel release adds some. NULL on success, else what was wrong. */
static const char *smaps_key_line(struct md_smaps *s, const char *ks, const char *ke,
				  const char *value, const char *end)
{
	if (key_is(ks, ke, "VmFlags")) {
		set_vmflags(s, value, end);
		return NULL;
	}
	size_t klen = (size_t)(ke - ks);
	for (size_t i = 0; i < sizeof(smaps_keys) / sizeof(smaps_keys[0]); i++) {
		if (smaps_keys[i].name_len != klen || memcmp(ks, smaps_keys[i].name, klen) != 0)
			continue;
		uint64_t bytes;
		if (!scan_kb_value(value, end, &bytes))
			return "bad kB value";
		memcpy((char *)s + smaps_keys[i].offset, &bytes, sizeof(bytes));
		return NULL;
	}
	return NULL;
}

void md_mappings_free(struct md_mapping *maps, size_t n)
{
	if (!maps)
		return;
	for (size_t i = 0; i < n; i++) {
		free(maps[i].path);
		free(maps[i].pages);
	}
	free(maps);
}

static int mapping_cmp(const void *a, const void *b)
{
	const struct md_mapping *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

struct md_error *md_parse_maps(const char *text, size_t len, struct md_mapping **maps_ret, size_t *n_ret)
{
	struct md_mapping *maps = NULL;
	size_t n = 0, cap = 0;
	bool sorted = true;
	struct md_error *err = NULL;
	struct md_line_iter it;
	const char *ls, *le;

	md_line_iter_init(&it, text, len);
	while (md_line_next(&it, &ls, &le)) {
		if (memchr(ls, '\0', (size_t)(le - ls))) {
			err = bad_line("maps", it.lineno, "NUL byte");
			goto fail;
		}
		const char *ke, *value;
		if (split_key(ls, le, &ke, &value)) {
			if (n == 0) {
				err = bad_line("maps", it.lineno, "figures before any mapping");
				goto fail;
			}
			struct md_smaps *s = &maps[n - 1].smaps;
			const char *why = smaps_key_line(s, ls, ke, value, le);
			if (why) {
				err = bad_line("maps", it.lineno, why);
				goto fail;
			}
			s->valid = true;
			continue;
		}

		struct map_header h;
		const char *why = parse_map_header(ls, le, &h);
		if (why) {
			err = bad_line("maps", it.lineno, why);
			goto fail;
		}
		if (n > 0) {
			const struct md_mapping *prev = &maps[n - 1];
			if (h.start < prev->start) {
				sorted = false; /* checked for overlaps after sorting */
			} else if (h.start < prev->end) {
				err = md_error_create(MD_ERR_BAD_DATA,
						      "maps line %zu: mapping %#llx-%#llx overlaps %#llx-%#llx",
						      it.lineno, (unsigned long long)h.start,
						      (unsigned long long)h.end,
						      (unsigned long long)prev->start,
						      (unsigned long long)prev->end);
				goto fail;
			}
		}
		if (n == cap) {
			size_t new_cap = cap ? cap * 2 : 64;
			struct md_mapping *nm = realloc(maps, new_cap * sizeof(*nm));
			if (!nm) {
				err = &md_error_nomem;
				goto fail;
			}
			maps = nm;
			cap = new_cap;
		}
		struct md_mapping *m = &maps[n];
		memset(m, 0, sizeof(*m));
		m->start = h.start;
		m->end = h.end;
		m->offset = h.offset;
		m->perms = h.perms;
		m->dev_major = h.dev_major;
		m->dev_minor = h.dev_minor;
		m->inode = h.inode;
		n++;
		if (h.path < h.path_end) {
			m->path = unescape_path(h.path, h.path_end);
			if (!m->path) {
				err = &md_error_nomem;
				goto fail;
			}
			/* Unescape first: a kernel escaping spaces would write "\040(deleted)". */
			static const char deleted[] = " (deleted)";
			size_t pl = strlen(m->path), dl = sizeof(deleted) - 1;
			if (pl > dl && strcmp(m->path + pl - dl, deleted) == 0) {
				m->path[pl - dl] = '\0';
				m->deleted = true;
			}
		}
		m->kind = map_kind(m);
	}

	if (!sorted) {
		qsort(maps, n, sizeof(*maps), mapping_cmp);
		for (size_t i = 1; i < n; i++) {
			if (maps[i].start < maps[i - 1].end) {
				err = md_error_create(MD_ERR_BAD_DATA,
						      "maps: mapping %#llx-%#llx overlaps %#llx-%#llx",
						      (unsigned long long)maps[i].start,
						      (unsigned long long)maps[i].end,
						      (unsigned long long)maps[i - 1].start,
						      (unsigned long long)maps[i - 1].end);
				goto fail;
			}
		}
	}
	*maps_ret = maps;
	*n_ret = n;
	return NULL;

fail:
	md_mappings_free(maps, n);
	return err;
}

struct md_error *md_parse_smaps_rollup(const char *text, size_t len, struct md_smaps *rollup_ret)
{
	struct md_smaps s;
	memset(&s, 0, sizeof(s));
	struct md_line_iter it;
	const char *ls, *le;
	bool any = false;

	md_line_iter_init(&it, text, len);
	while (md_line_next(&it, &ls, &le)) {
		if (memchr(ls, '\0', (size_t)(le - ls)))
			return bad_line("smaps_rollup", it.lineno, "NUL byte");
		const char *ke, *value;
		if (!split_key(ls, le, &ke, &value)) {
			struct map_header h;
			const char *why = it.lineno == 1 ? parse_map_header(ls, le, &h) : "not a \"Key: value\" line";
			if (why)
				return bad_line("smaps_rollup", it.lineno, why);
			continue;
		}
		const char *why = smaps_key_line(&s, ls, ke, value, le);
		if (why)
			return bad_line("smaps_rollup", it.lineno, why);
		any = true;
	}
	if (!any)
		return md_error_create(MD_ERR_BAD_DATA, "smaps_rollup: no figures");
	s.valid = true;
	*rollup_ret = s;
	return NULL;
}

/* ---- status ---- */

/* /proc/PID/status writes the name through seq_escape with ESCAPE_SPACE|ESCAPE_SPECIAL. */
static void unescape_name(char *out, size_t out_size, const char *p, const char *end)
{
	size_t o = 0;
	while (p < end && o + 1 < out_size) {
		char c = *p++;
		if (c == '\\' && p < end) {
			char e = *p++;
			switch (e) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'v': c = '\v'; break;
			case 'f': c = '\f'; break;
			case 'a': c = '\a'; break;
			case 'e': c = '\033'; break;
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			default: c = '\\'; p--; break;
			}
		}
		out[o++] = c;
	}
	out[o] = '\0';
}

struct status_kb {
	const char *name;
	size_t offset;
	unsigned rss_split_bit; /* RssAnon/RssFile/RssShmem: has_rss_split needs all three */
};

#define ST(name, field, bit) { name, offsetof(struct md_proc_status, field), bit }
static const struct status_kb status_kb_keys[] = {
	ST("VmPeak", vm_peak, 0), ST("VmSize", vm_size, 0), ST("VmLck", vm_lck, 0),
	ST("VmPin", vm_pin, 0), ST("VmHWM", vm_hwm, 0), ST("VmRSS", vm_rss, 0),
	ST("RssAnon", rss_anon, 1), ST("RssFile", rss_file, 2), ST("RssShmem", rss_shmem, 4),
	ST("VmData", vm_data, 0), ST("VmStk", vm_stk, 0), ST("VmExe", vm_exe, 0),
	ST("VmLib", vm_lib, 0), ST("VmPTE", vm_pte, 0), ST("VmSwap", vm_swap, 0),
};
#undef ST

static bool scan_i32(const char *p, const char *end, int32_t *v)
{
	uint64_t x;
	if (!scan_dec_value(p, end, &x) || x > INT32_MAX)
		return false;
	*v = (int32_t)x;
	return true;
}

static bool scan_ids(const char *p, const char *end, uint32_t ids[4])
{
	for (int i = 0; i < 4; i++) {
		uint64_t x;
		p = skip_blanks(p, end);
		if (!md_scan_dec(&p, end, &x) || x > UINT32_MAX)
			return false;
		ids[i] = (uint32_t)x;
	}
	return rest_is_blank(p, end);
}

struct md_error *md_parse_status(const char *text, size_t len, struct md_proc_status *status_ret)
{
	struct md_proc_status st;
	memset(&st, 0, sizeof(st));
	struct md_line_iter it;
	const char *ls, *le;
	unsigned rss_split = 0;
	bool have_name = false, have_pid = false;

	md_line_iter_init(&it, text, len);
	while (md_line_next(&it, &ls, &le)) {
		const char *ke, *v;
		if (!split_key(ls, le, &ke, &v))
			return bad_line("status", it.lineno, "not a \"Key: value\" line");
		bool ok = true;
		if (key_is(ls, ke, "Name")) {
			/* The name follows one tab; it may itself start with blanks. */
			if (v < le && *v == '\t')
				v++;
			unescape_name(st.name, sizeof(st.name), v, le);
			have_name = true;
		} else if (key_is(ls, ke, "State")) {
			v = skip_blanks(v, le);
			ok = v < le;
			if (ok)
				st.state = *v;
		} else if (key_is(ls, ke, "Tgid")) {
			ok = scan_i32(v, le, &st.tgid);
		} else if (key_is(ls, ke, "Pid")) {
			ok = scan_i32(v, le, &st.pid);
			have_pid = true;
		} else if (key_is(ls, ke, "PPid")) {
			ok = scan_i32(v, le, &st.ppid);
		} else if (key_is(ls, ke, "TracerPid")) {
			ok = scan_i32(v, le, &st.tracer_pid);
		} else if (key_is(ls, ke, "Uid")) {
			ok = scan_ids(v, le, st.uid);
		} else if (key_is(ls, ke, "Gid")) {
			ok = scan_ids(v, le, st.gid);
		} else if (key_is(ls, ke, "Threads")) {
			uint64_t x;
			ok = scan_dec_value(v, le, &x) && x <= UINT32_MAX;
			if (ok)
				st.threads = (uint32_t)x;
		} else if (key_is(ls, ke, "CapEff")) {
			const char *p = skip_blanks(v, le);
			ok = scan_hex(&p, le, &st.cap_eff) && rest_is_blank(p, le);
		} else {
			for (size_t i = 0; i < sizeof(status_kb_keys) / sizeof(status_kb_keys[0]); i++) {
				if (!key_is(ls, ke, status_kb_keys[i].name))
					continue;
				uint64_t bytes;
				ok = scan_kb_value(v, le, &bytes);
				if (ok) {
					memcpy((char *)&st + status_kb_keys[i].offset, &bytes, sizeof(bytes));
					rss_split |= status_kb_keys[i].rss_split_bit;
				}
				break;
			}
		}
		if (!ok)
			return bad_line("status", it.lineno, "bad value");
	}
	if (!have_name || !have_pid)
		return md_error_create(MD_ERR_BAD_DATA, "status: no %s line", have_name ? "Pid" : "Name");
	st.has_rss_split = rss_split == 7;
	*status_ret = st;
	return NULL;
}

/* ---- meminfo ---- */

struct md_error *md_parse_meminfo(const char *text, size_t len, struct md_meminfo *meminfo_ret)
{
#define MI(name, field) { name, sizeof(name) - 1, offsetof(struct md_meminfo, field) }
	static const struct smaps_key keys[] = {
		MI("MemTotal", mem_total), MI("MemFree", mem_free),
		MI("MemAvailable", mem_available), MI("Buffers", buffers), MI("Cached", cached),
		MI("SwapTotal", swap_total), MI("SwapFree", swap_free), MI("Shmem", shmem),
	};
#undef MI
	struct md_meminfo mi;
	memset(&mi, 0, sizeof(mi));
	struct md_line_iter it;
	const char *ls, *le;
	bool have_total = false;

	md_line_iter_init(&it, text, len);
	while (md_line_next(&it, &ls, &le)) {
		const char *ke, *v;
		if (!split_key(ls, le, &ke, &v))
			return bad_line("meminfo", it.lineno, "not a \"Key: value\" line");
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (!key_is(ls, ke, keys[i].name))
				continue;
			uint64_t bytes;
			if (!scan_kb_value(v, le, &bytes))
				return bad_line("meminfo", it.lineno, "bad kB value");
			memcpy((char *)&mi + keys[i].offset, &bytes, sizeof(bytes));
			if (i == 0)
				have_total = true;
			break;
		}
	}
	if (!have_total)
		return md_error_create(MD_ERR_BAD_DATA, "meminfo: no MemTotal line");
	*meminfo_ret = mi;
	return NULL;
}

/* ---- cgroups ---- */

static bool controller_list_has(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);
	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *ce = c ? c : end;
		if ((size_t)(ce - p) == n && memcmp(p, name, n) == 0)
			return true;
		p = c ? c + 1 : end;
	}
	return false;
}

static char *dup_span(const char *s, const char *e)
{
	char *out = malloc((size_t)(e - s) + 1);
	if (out) {
		memcpy(out, s, (size_t)(e - s));
		out[e - s] = '\0';
	}
	return out;
}

struct md_error *md_parse_proc_cgroup(const char *text, size_t len, char **v2_path_ret,
				      char **v1_memory_path_ret)
{
	const char *v2 = NULL, *v2_end = NULL, *v1 = NULL, *v1_end = NULL;
	struct md_line_iter it;
	const char *ls, *le;

	/* "hierarchy-ID:controller-list:cgroup-path"; the path is the rest and may hold ':'. */
	md_line_iter_init(&it, text, len);
	while (md_line_next(&it, &ls, &le)) {
		if (memchr(ls, '\0', (size_t)(le - ls)))
			return bad_line("cgroup", it.lineno, "NUL byte");
		const char *p = ls;
		uint64_t id;
		if (!md_scan_dec(&p, le, &id) || p >= le || *p != ':')
			return bad_line("cgroup", it.lineno, "bad hierarchy id");
		const char *ctl = ++p;
		const char *colon = memchr(ctl, ':', (size_t)(le - ctl));
		if (!colon)
			return bad_line("cgroup", it.lineno, "no path");
		const char *path = colon + 1;
		if (id == 0 && colon == ctl) {
			if (!v2) {
				v2 = path;
				v2_end = le;
			}
		} else if (!v1 && controller_list_has(ctl, colon, "memory")) {
			v1 = path;
			v1_end = le;
		}
	}
	char *v2_path = NULL, *v1_path = NULL;
	if (v2 && !(v2_path = dup_span(v2, v2_end)))
		return &md_error_nomem;
	if (v1 && !(v1_path = dup_span(v1, v1_end))) {
		free(v2_path);
		return &md_error_nomem;
	}
	*v2_path_ret = v2_path;
	*v1_memory_path_ret = v1_path;
	return NULL;
}

/* A cgroup path we can append to the mount point: absolute and without "..", which a cgroup
 * namespace writes for groups outside the reader's view (they are not under our mount). */
static bool cgroup_path_usable(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
		if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
			return false;
	}
	return true;
}

/* Read a cgroup file of one number; "max" (v2) means unlimited. */
static bool read_cgroup_number(const char *dir, const char *file, uint64_t *v)
{
	char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return false;
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	free(path);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	const char *p = skip_blanks(buf, buf + len), *end = buf + len;
	while (end > p && (end[-1] == '\n' || is_blank(end[-1])))
		end--;
	bool ok;
	if (end - p == 3 && memcmp(p, "max", 3) == 0) {
		*v = UINT64_MAX;
		ok = true;
	} else {
		ok = md_scan_dec(&p, end, v) && p == end;
	}
	free(buf);
	return ok;
}

static bool cgroup_try(int version, const char *base, const char *path, struct md_cgroup_memory *cg)
{
	char *dir = NULL;
	/* path "/" names the mount point itself. */
	if (asprintf(&dir, "%s%s", base, strcmp(path, "/") == 0 ? "" : path) < 0)
		return false;
	uint64_t usage, limit;
	bool ok = read_cgroup_number(dir, version == 2 ? "memory.current" : "memory.usage_in_bytes",
				     &usage);
	/* The root cgroup has usage files but no limit file: it is unlimited. */
	if (ok && !read_cgroup_number(dir, version == 2 ? "memory.max" : "memory.limit_in_bytes", &limit))
		limit = UINT64_MAX;
	free(dir);
	if (!ok)
		return false;
	/* v1 writes "no limit" as PAGE_COUNTER_MAX in bytes (2^63 - page), not a keyword. */
	if (version == 1 && limit >= (1ULL << 62))
		limit = UINT64_MAX;
	cg->version = version;
	cg->usage_bytes = usage;
	cg->limit_bytes = limit;
	return true;
}

struct md_error *md_cgroup_memory_read(pid_t pid, const char *cgroup_root, struct md_cgroup_memory *ret)
{
	char proc_path[64];
	snprintf(proc_path, sizeof(proc_path), "/proc/%d/cgroup", (int)pid);
	char *text;
	size_t len;
	struct md_error *err = md_read_file(proc_path, &text, &len);
	if (err) {
		if (err->code == MD_ERR_OS && err->errnum == ENOENT) {
			char pid_dir[32];
			snprintf(pid_dir, sizeof(pid_dir), "/proc/%d", (int)pid);
			md_error_destroy(err);
			if (access(pid_dir, F_OK) != 0)
				return md_error_create(MD_ERR_NO_PROCESS, "no process %d", (int)pid);
			return md_error_create(MD_ERR_NOT_FOUND, "process %d has no cgroup file", (int)pid);
		}
		return err;
	}
	char *v2 = NULL, *v1 = NULL;
	err = md_parse_proc_cgroup(text, len, &v2, &v1);
	free(text);
	if (err)
		return md_error_wrap(err, "%s", proc_path);

	struct md_cgroup_memory cg = { 0 };
	char *chosen = NULL, *base = NULL;
	/* A hybrid host mounts v2 at <root>/unified and keeps the memory controller in v1, so the
	 * v2 path often leads to a group without memory files: take whichever has figures. */
	if (v2 && cgroup_path_usable(v2)) {
		if (cgroup_try(2, cgroup_root, v2, &cg)) {
			chosen = v2;
		} else if (asprintf(&base, "%s/unified", cgroup_root) >= 0) {
			if (cgroup_try(2, base, v2, &cg))
				chosen = v2;
			free(base);
		}
	}
	if (!chosen && v1 && cgroup_path_usable(v1) && asprintf(&base, "%s/memory", cgroup_root) >= 0) {
		if (cgroup_try(1, base, v1, &cg))
			chosen = v1;
		free(base);
	}
	if (!chosen) {
		free(v1);
		free(v2);
		return md_error_create(MD_ERR_NOT_FOUND, "process %d: no memory cgroup with readable figures",
				       (int)pid);
	}
	if (chosen == v1)
		free(v2);
	else
		free(v1);
	cg.path = chosen;
	*ret = cg;
	return NULL;
}

void md_cgroup_memory_deinit(struct md_cgroup_memory *cg)
{
	if (!cg)
		return;
	free(cg->path);
	cg->path = NULL;
}
