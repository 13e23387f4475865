/* Memory cgroup files and /proc/meminfo. Formats: Documentation/admin-guide/cgroup-v2.rst
 * ("Memory Interface Files", "PSI"), Documentation/admin-guide/cgroup-v1/memory.rst,
 * Documentation/filesystems/proc.rst (meminfo). Everything is kernel text, but a cgroup directory
 * may be a container's and /proc belongs to whoever runs there: every line is checked. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroupfs.h"
#include "procfs.h"

/* ---- lines and numbers ---- */

static void skip_blanks(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* "12.34" as a double, by hand (no locale, no NUL needed). */
static bool scan_fixed(const char **p, const char *end, double *v)
{
	uint64_t ip;
	if (!md_scan_dec(p, end, &ip))
		return false;
	double x = (double)ip;
	if (*p < end && **p == '.') {
		(*p)++;
		double scale = 0.1;
		const char *s = *p;
		while (*p < end && **p >= '0' && **p <= '9') {
			x += scale * (**p - '0');
			scale /= 10;
			(*p)++;
		}
		if (*p == s)
			return false;
	}
	*v = x;
	return true;
}

/* Room for one more of n items of size bytes (doubling from first). */
static bool grow(void **items, size_t *cap, size_t n, size_t size, size_t first)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : first;
	void *p = realloc(*items, ncap * size);
	if (!p)
		return false;
	*items = p;
	*cap = ncap;
	return true;
}

static struct md_error *bad(const char *what, size_t lineno, const char *why)
{
	return md_error_create(MD_ERR_BAD_DATA, "%s line %zu: %s", what, lineno, why);
}

/* ---- flat keyed files ---- */

struct md_error *md_parse_keyed(const char *text, size_t len, bool meminfo_style, struct md_kv_list *list_ret)
{
	const char *what = meminfo_style ? "meminfo" : "keyed file";
	struct md_kv_list l = { 0 };
	size_t cap = 0;
	struct md_line_iter it;
	md_line_iter_init(&it, text, len);
	const char *ls, *le;
	while (md_line_next(&it, &ls, &le)) {
		if (ls == le)
			continue;
		const char *k = ls, *p = ls;
		while (p < le && *p != ' ' && *p != '\t' && *p != ':')
			p++;
		size_t klen = (size_t)(p - k);
		struct md_error *err = NULL;
		if (klen == 0)
			err = bad(what, it.lineno, "no key");
		else if (klen >= sizeof(l.items[0].key))
			err = bad(what, it.lineno, "key too long");
		else if (memchr(k, '\0', klen))
			err = bad(what, it.lineno, "NUL byte");
		if (!err && meminfo_style) {
			if (p >= le || *p != ':')
				err = bad(what, it.lineno, "no ':' after the key");
			else
				p++;
		}
		uint64_t v = 0;
		if (!err) {
			skip_blanks(&p, le);
			if (!md_scan_dec(&p, le, &v))
				err = bad(what, it.lineno, "not a number");
		}
		if (!err) {
			skip_blanks(&p, le);
			if (meminfo_style && le - p == 2 && p[0] == 'k' && p[1] == 'B') {
				if (v > UINT64_MAX / 1024)
					err = bad(what, it.lineno, "number too large");
				v *= 1024;
				p = le;
			}
			if (!err && p != le)
				err = bad(what, it.lineno, "text after the number");
		}
		if (!err && l.n >= MD_KV_MAX)
			err = bad(what, it.lineno, "too many lines");
		if (!err && !grow((void **)&l.items, &cap, l.n, sizeof(*l.items), 64))
			err = &md_error_nomem;
		if (err) {
			md_kv_list_deinit(&l);
			return err;
		}
		memcpy(l.items[l.n].key, k, klen);
		l.items[l.n].key[klen] = '\0';
		l.items[l.n].value = v;
		l.n++;
	}
	*list_ret = l;
	return NULL;
}

void md_kv_list_deinit(struct md_kv_list *l)
{
	if (!l)
		return;
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

uint64_t md_kv_get(const struct md_kv_list *l, const char *key, uint64_t fallback, bool *found_ret)
{
	for (size_t i = 0; l && i < l->n; i++) {
		if (strcmp(l->items[i].key, key) == 0) {
			if (found_ret)
				*found_ret = true;
			return l->items[i].value;
		}
	}
	if (found_ret)
		*found_ret = false;
	return fallback;
}

/* ---- pressure ---- */

static bool scan_field(const char **p, const char *end, const char *name)
{
	size_t n = strlen(name);
	if ((size_t)(end - *p) < n || memcmp(*p, name, n) != 0)
		return false;
	*p += n;
	return true;
}

struct md_error *md_parse_pressure(const char *text, size_t len, struct md_psi *psi_ret)
{
	struct md_psi psi = { 0 };
	struct md_line_iter it;
	md_line_iter_init(&it, text, len);
	const char *ls, *le;
	while (md_line_next(&it, &ls, &le)) {
		if (ls == le)
			continue;
		const char *p = ls;
		struct md_psi_line *line;
		if (scan_field(&p, le, "some "))
			line = &psi.some;
		else if (scan_field(&p, le, "full "))
			line = &psi.full;
		else
			return bad("pressure", it.lineno, "neither 'some' nor 'full'");
		if (line->valid)
			return bad("pressure", it.lineno, "repeated line");
		bool ok = scan_field(&p, le, "avg10=") && scan_fixed(&p, le, &line->avg10) &&
			  scan_field(&p, le, " avg60=") && scan_fixed(&p, le, &line->avg60) &&
			  scan_field(&p, le, " avg300=") && scan_fixed(&p, le, &line->avg300) &&
			  scan_field(&p, le, " total=") && md_scan_dec(&p, le, &line->total_us);
		skip_blanks(&p, le);
		if (!ok || p != le)
			return bad("pressure", it.lineno, "not 'avg10=N avg60=N avg300=N total=N'");
		if (line->avg10 > 100 || line->avg60 > 100 || line->avg300 > 100)
			return bad("pressure", it.lineno, "an average above 100 %");
		line->valid = true;
	}
	if (!psi.some.valid)
		return md_error_create(MD_ERR_BAD_DATA, "pressure: no 'some' line");
	*psi_ret = psi;
	return NULL;
}

/* ---- cgroup.procs ---- */

struct md_error *md_parse_pid_list(const char *text, size_t len, pid_t **pids_ret, size_t *n_ret)
{
	pid_t *pids = NULL;
	size_t n = 0, cap = 0;
	struct md_line_iter it;
	md_line_iter_init(&it, text, len);
	const char *ls, *le;
	while (md_line_next(&it, &ls, &le)) {
		if (ls == le)
			continue;
		const char *p = ls;
		uint64_t v = 0;
		struct md_error *err = NULL;
		if (!md_scan_dec(&p, le, &v) || p != le || v == 0 || v > INT_MAX)
			err = bad("cgroup.procs", it.lineno, "not a process id");
		else if (n >= MD_PIDS_MAX)
			err = bad("cgroup.procs", it.lineno, "too many processes");
		else if (!grow((void **)&pids, &cap, n, sizeof(*pids), 16))
			err = &md_error_nomem;
		if (err) {
			free(pids);
			return err;
		}
		pids[n++] = (pid_t)v;
	}
	*pids_ret = pids;
	*n_ret = n;
	return NULL;
}

/* ---- a cgroup directory ---- */

static struct md_error *read_in(const char *dir, const char *file, char **buf_ret, size_t *len_ret)
{
	char *path;
	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return &md_error_nomem;
	struct md_error *err = md_read_file(path, buf_ret, len_ret);
	free(path);
	return err;
}

/* One number, or "max" (v2: unlimited). */
static struct md_error *read_number(const char *dir, const char *file, uint64_t *v_ret)
{
	char *buf;
	size_t len;
	struct md_error *err = read_in(dir, file, &buf, &len);
	if (err)
		return err;
	const char *p = buf, *end = buf + len;
	while (end > p && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	uint64_t v = 0;
	if ((size_t)(end - p) == 3 && memcmp(p, "max", 3) == 0)
		v = UINT64_MAX;
	else if (!md_scan_dec(&p, end, &v) || p != end)
		err = md_error_create(MD_ERR_BAD_DATA, "%s/%s: not a number", dir, file);
	free(buf);
	if (!err)
		*v_ret = v;
	return err;
}

static struct md_error *read_keyed(const char *dir, const char *file, struct md_kv_list *l)
{
	char *buf;
	size_t len;
	struct md_error *err = read_in(dir, file, &buf, &len);
	if (err)
		return err;
	err = md_parse_keyed(buf, len, false, l);
	free(buf);
	return err ? md_error_wrap(err, "%s/%s", dir, file) : NULL;
}

static bool has_file(const char *dir, const char *file)
{
	char *path;
	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return false;
	struct stat st;
	bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return ok;
}

/* v1 keeps OOM counts in memory.oom_control and limit hits in memory.failcnt; they go into
 * events under their own names, since v1 has no memory.events. */
static struct md_error *read_v1_events(const char *dir, struct md_kv_list *events)
{
	struct md_error *err = read_keyed(dir, "memory.oom_control", events);
	if (err)
		return err;
	uint64_t failcnt;
	err = read_number(dir, "memory.failcnt", &failcnt);
	if (err) {
		md_error_destroy(err);
		return NULL;
	}
	if (events->n < MD_KV_MAX) {
		struct md_kv *items = realloc(events->items, (events->n + 1) * sizeof(*items));
		if (!items)
			return &md_error_nomem;
		events->items = items;
		snprintf(items[events->n].key, sizeof(items[0].key), "failcnt");
		items[events->n].value = failcnt;
		events->n++;
	}
	return NULL;
}

struct md_error *md_cgroup_read(const char *dir, const char *path, struct md_cgroup *cg_ret)
{
	struct md_cgroup cg = { 0 };
	cg.high_bytes = UINT64_MAX;
	cg.limit_bytes = UINT64_MAX;
	if (has_file(dir, "memory.current"))
		cg.version = 2;
	else if (has_file(dir, "memory.usage_in_bytes"))
		cg.version = 1;
	else
		return md_error_create(MD_ERR_NOT_FOUND, "%s is not a memory cgroup (no memory.current, no "
				       "memory.usage_in_bytes)", dir);
	cg.dir = strdup(dir);
	cg.path = strdup(path ? path : dir);
	if (!cg.dir || !cg.path) {
		md_cgroup_deinit(&cg);
		return &md_error_nomem;
	}
	struct md_error *err;
	char *buf = NULL;
	size_t len;
	if (cg.version == 2) {
		err = read_number(dir, "memory.current", &cg.usage_bytes);
		/* The v2 root has no memory.max nor memory.high: unlimited. */
		if (!err && has_file(dir, "memory.max"))
			err = read_number(dir, "memory.max", &cg.limit_bytes);
		if (!err && has_file(dir, "memory.high"))
			err = read_number(dir, "memory.high", &cg.high_bytes);
		if (!err && has_file(dir, "memory.swap.current"))
			err = read_number(dir, "memory.swap.current", &cg.swap_bytes);
		if (!err)
			err = read_keyed(dir, "memory.stat", &cg.stat);
		if (!err && has_file(dir, "memory.events"))
			err = read_keyed(dir, "memory.events", &cg.events);
		if (!err && has_file(dir, "memory.pressure")) {
			err = read_in(dir, "memory.pressure", &buf, &len);
			if (!err) {
				err = md_parse_pressure(buf, len, &cg.pressure);
				if (err)
					err = md_error_wrap(err, "%s/memory.pressure", dir);
				cg.has_pressure = !err;
			}
		}
	} else {
		err = read_number(dir, "memory.usage_in_bytes", &cg.usage_bytes);
		if (!err && has_file(dir, "memory.limit_in_bytes"))
			err = read_number(dir, "memory.limit_in_bytes", &cg.limit_bytes);
		/* v1 writes "no limit" as the largest page-aligned long. */
		if (!err && cg.limit_bytes >= (uint64_t)LONG_MAX - 4095)
			cg.limit_bytes = UINT64_MAX;
		uint64_t memsw;
		if (!err && has_file(dir, "memory.memsw.usage_in_bytes")) {
			struct md_error *e = read_number(dir, "memory.memsw.usage_in_bytes", &memsw);
			if (!e && memsw > cg.usage_bytes)
				cg.swap_bytes = memsw - cg.usage_bytes;
			md_error_destroy(e);
		}
		if (!err && has_file(dir, "memory.kmem.usage_in_bytes"))
			err = read_number(dir, "memory.kmem.usage_in_bytes", &cg.kmem_bytes);
		cg.has_kmem = !err && has_file(dir, "memory.kmem.usage_in_bytes");
		if (!err)
			err = read_keyed(dir, "memory.stat", &cg.stat);
		if (!err && has_file(dir, "memory.oom_control"))
			err = read_v1_events(dir, &cg.events);
	}
	free(buf);
	buf = NULL;
	if (!err) {
		err = read_in(dir, "cgroup.procs", &buf, &len);
		if (!err) {
			err = md_parse_pid_list(buf, len, &cg.pids, &cg.n_pids);
			if (err)
				err = md_error_wrap(err, "%s/cgroup.procs", dir);
		}
		free(buf);
	}
	if (err) {
		md_cgroup_deinit(&cg);
		return err;
	}
	*cg_ret = cg;
	return NULL;
}

void md_cgroup_deinit(struct md_cgroup *cg)
{
	if (!cg)
		return;
	free(cg->dir);
	free(cg->path);
	md_kv_list_deinit(&cg->stat);
	md_kv_list_deinit(&cg->events);
	free(cg->pids);
	memset(cg, 0, sizeof(*cg));
}

/* Absolute, no "..": a cgroup namespace writes paths outside the reader's view that way. */
static bool usable_path(const char *path)
{
	return path[0] == '/' && !strstr(path, "/..");
}

struct md_error *md_cgroup_dir_of_pid(pid_t pid, const char *cgroup_root, char **dir_ret, char **path_ret)
{
	char proc_path[64];
	snprintf(proc_path, sizeof(proc_path), "/proc/%d/cgroup", (int)pid);
	char *text;
	size_t len;
	struct md_error *err = md_read_file(proc_path, &text, &len);
	if (err) {
		if (err->code == MD_ERR_OS && err->errnum == ENOENT) {
			md_error_destroy(err);
			return md_error_create(MD_ERR_NO_PROCESS, "no process %d", (int)pid);
		}
		return err;
	}
	char *v2 = NULL, *v1 = NULL;
	err = md_parse_proc_cgroup(text, len, &v2, &v1);
	free(text);
	if (err)
		return md_error_wrap(err, "%s", proc_path);
	/* Hybrid hosts mount v2 at <root>/unified, often without the memory controller there. */
	const char *const v2_bases[] = { "", "/unified" };
	char *dir = NULL, *path = NULL;
	for (size_t i = 0; !dir && v2 && usable_path(v2) && i < 2; i++) {
		char *d;
		if (asprintf(&d, "%s%s%s", cgroup_root, v2_bases[i], strcmp(v2, "/") ? v2 : "") < 0)
			break;
		if (has_file(d, "memory.current"))
			dir = d, path = v2, v2 = NULL;
		else
			free(d);
	}
	if (!dir && v1 && usable_path(v1)) {
		char *d;
		if (asprintf(&d, "%s/memory%s", cgroup_root, strcmp(v1, "/") ? v1 : "") >= 0) {
			if (has_file(d, "memory.usage_in_bytes"))
				dir = d, path = v1, v1 = NULL;
			else
				free(d);
		}
	}
	free(v1);
	free(v2);
	if (!dir)
		return md_error_create(MD_ERR_NOT_FOUND, "process %d: no memory cgroup found under %s", (int)pid,
				       cgroup_root);
	*dir_ret = dir;
	*path_ret = path;
	return NULL;
}

/* ---- listing ---- */

struct walk {
	char **dirs;
	size_t n, cap, max;
	int max_depth;
	bool truncated;
};

static struct md_error *walk_add(struct walk *w, const char *dir)
{
	if (w->n >= w->max) {
		w->truncated = true;
		return NULL;
	}
	if (!grow((void **)&w->dirs, &w->cap, w->n, sizeof(*w->dirs), 32))
		return &md_error_nomem;
	if (!(w->dirs[w->n] = strdup(dir)))
		return &md_error_nomem;
	w->n++;
	return NULL;
}

static struct md_error *walk_dir(struct walk *w, const char *dir, int depth)
{
	if (has_file(dir, "memory.current") || has_file(dir, "memory.usage_in_bytes")) {
		struct md_error *err = walk_add(w, dir);
		if (err)
			return err;
	}
	if (depth >= w->max_depth) {
		w->truncated = true;
		return NULL;
	}
	DIR *d = opendir(dir);
	if (!d)
		return NULL; /* gone or unreadable: the list is of what can be read */
	struct dirent *de;
	struct md_error *err = NULL;
	while (!err && w->n < w->max && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		char *sub;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0) {
			err = &md_error_nomem;
			break;
		}
		err = walk_dir(w, sub, depth + 1);
		free(sub);
	}
	closedir(d);
	return err;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct md_error *walk_finish(struct walk *w, struct md_error *err, char ***dirs_ret, size_t *n_ret,
				    bool *truncated_ret)
{
	if (err) {
		md_cgroup_list_free(w->dirs, w->n);
		return err;
	}
	if (w->n > 1)
		qsort(w->dirs, w->n, sizeof(w->dirs[0]), cmp_str);
	*dirs_ret = w->dirs;
	*n_ret = w->n;
	*truncated_ret = w->truncated;
	return NULL;
}

struct md_error *md_cgroup_list_under(const char *dir, size_t max_groups, int max_depth, char ***dirs_ret,
				      size_t *n_ret, bool *truncated_ret)
{
	struct walk w = { .max = max_groups, .max_depth = max_depth };
	return walk_finish(&w, walk_dir(&w, dir, 0), dirs_ret, n_ret, truncated_ret);
}

struct md_error *md_cgroup_list(const char *cgroup_root, size_t max_groups, int max_depth, char ***dirs_ret,
				size_t *n_ret, bool *truncated_ret)
{
	struct walk w = { .max = max_groups, .max_depth = max_depth };
	struct md_error *err = NULL;
	char *v1;
	if (asprintf(&v1, "%s/memory", cgroup_root) < 0)
		return &md_error_nomem;
	char *controllers = NULL;
	size_t len;
	struct md_error *e = read_in(cgroup_root, "cgroup.controllers", &controllers, &len);
	bool v2_memory = !e && strstr(controllers, "memory");
	md_error_destroy(e);
	free(controllers);
	if (v2_memory)
		err = walk_dir(&w, cgroup_root, 0);
	else if (has_file(v1, "memory.usage_in_bytes"))
		err = walk_dir(&w, v1, 0);
	free(v1);
	return walk_finish(&w, err, dirs_ret, n_ret, truncated_ret);
}

void md_cgroup_list_free(char **dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

/* ---- one process's memory ---- */

struct md_error *md_proc_memory_read(pid_t pid, struct md_proc_memory *pm_ret)
{
	struct md_proc_memory pm = { .pid = pid };
	char path[64];
	char *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err)
		goto out;
	struct md_proc_status st;
	err = md_parse_status(buf, len, &st);
	free(buf);
	if (err)
		goto out;
	snprintf(pm.comm, sizeof(pm.comm), "%s", st.name);
	pm.anon_bytes = st.rss_anon;
	pm.swap_bytes = st.vm_swap;
	/* Kernel threads and zombies have no smaps_rollup figures: RSS 0. */
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	err = md_read_file(path, &buf, &len);
	if (err)
		goto out;
	struct md_smaps sm = { 0 };
	pm.has_mm = len > 0;
	if (len > 0)
		err = md_parse_smaps_rollup(buf, len, &sm);
	free(buf);
	if (err)
		goto out;
	pm.rss_bytes = sm.rss;
	pm.pss_bytes = sm.pss;
	pm.uss_bytes = sm.private_clean + sm.private_dirty;
out:
	if (err && err->code == MD_ERR_OS && (err->errnum == ENOENT || err->errnum == ESRCH)) {
		md_error_destroy(err);
		return md_error_create(MD_ERR_EXITED, "process %d exited", (int)pid);
	}
	if (!err)
		*pm_ret = pm;
	return err;
}

/* ---- naming a cgroup on the command line ---- */

static bool is_memory_cgroup(const char *dir)
{
	return has_file(dir, "memory.current") || has_file(dir, "memory.usage_in_bytes");
}

/* The cgroup's name below the mount it lives in: dir with the mount point cut off. */
static char *path_below_mount(const char *dir, const char *cgroup_root)
{
	const char *const mounts[] = { "/memory", "/unified", "" };
	size_t rl = strlen(cgroup_root);
	if (strncmp(dir, cgroup_root, rl) == 0) {
		for (size_t i = 0; i < 3; i++) {
			size_t ml = strlen(mounts[i]);
			const char *rest = dir + rl;
			if (strncmp(rest, mounts[i], ml) == 0 && (rest[ml] == '/' || rest[ml] == '\0'))
				return strdup(rest[ml] ? rest + ml : "/");
		}
	}
	return strdup(dir);
}

struct md_error *md_cgroup_resolve(const char *arg, const char *cgroup_root, char **dir_ret, char **path_ret)
{
	char *dir = NULL;
	if (is_memory_cgroup(arg)) {
		dir = strdup(arg);
	} else if (arg[0] == '/' && !strstr(arg, "/..")) {
		const char *const bases[] = { "", "/unified", "/memory" };
		for (size_t i = 0; !dir && i < 3; i++) {
			char *d;
			if (asprintf(&d, "%s%s%s", cgroup_root, bases[i], strcmp(arg, "/") ? arg : "") < 0)
				return &md_error_nomem;
			if (is_memory_cgroup(d))
				dir = d;
			else
				free(d);
		}
		if (!dir)
			return md_error_create(MD_ERR_NOT_FOUND, "no memory cgroup %s (neither a directory with "
					       "memory.current or memory.usage_in_bytes, nor a group under %s)",
					       arg, cgroup_root);
	} else {
		return md_error_create(MD_ERR_NOT_FOUND, "%s is not a memory cgroup directory (no memory.current, "
				       "no memory.usage_in_bytes)", arg);
	}
	if (!dir)
		return &md_error_nomem;
	/* No trailing slashes: the path shown is the cgroup's name. */
	for (size_t l = strlen(dir); l > 1 && dir[l - 1] == '/'; l--)
		dir[l - 1] = '\0';
	char *path = path_below_mount(dir, cgroup_root);
	if (!path) {
		free(dir);
		return &md_error_nomem;
	}
	*dir_ret = dir;
	*path_ret = path;
	return NULL;
}
