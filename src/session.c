#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "session.h"

struct watched_process {
	pid_t pid;
	struct md_symbols *symbols; /* NULL until the first attach, or after a failed one */
};

struct md_session {
	struct md_analyze_options opts;
	struct md_plugin_set plugins;
	bool plugins_loaded;
	struct md_live_tracer *tracer; /* threads an attach could not let go, until they stop */
	struct md_symbols_counters symbol_counters; /* every process's symbols count here */
	struct md_symbols_cache *symbol_cache;      /* shared by every process's symbols */
	struct md_session_counters counters;
	struct watched_process *procs;
	size_t n_procs;
};

struct md_error *md_session_create(const struct md_analyze_options *opts, struct md_session **session_ret)
{
	struct md_session *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	if (opts)
		s->opts = *opts;
	struct md_error *err = md_live_tracer_create(&s->tracer);
	if (!err)
		err = md_symbols_cache_create(&s->symbol_cache);
	if (err) {
		md_live_tracer_destroy(s->tracer);
		free(s);
		return err;
	}
	*session_ret = s;
	return NULL;
}

void md_session_destroy(struct md_session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_procs; i++)
		md_symbols_destroy(s->procs[i].symbols);
	free(s->procs);
	md_symbols_cache_destroy(s->symbol_cache); /* after every symbols made with it */
	md_live_tracer_destroy(s->tracer);
	md_plugins_unload(&s->plugins);
	free(s);
}

static struct watched_process *process_of(struct md_session *s, pid_t pid)
{
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i].pid == pid)
			return &s->procs[i];
	struct watched_process *more = realloc(s->procs, (s->n_procs + 1) * sizeof(*more));
	if (!more)
		return NULL;
	s->procs = more;
	s->procs[s->n_procs] = (struct watched_process){ .pid = pid };
	return &s->procs[s->n_procs++];
}

void md_session_forget(struct md_session *s, pid_t pid)
{
	for (size_t i = 0; s && i < s->n_procs; i++)
		if (s->procs[i].pid == pid) {
			md_symbols_destroy(s->procs[i].symbols);
			s->procs[i] = s->procs[--s->n_procs];
			return;
		}
}

struct md_error *md_session_analyze_live(struct md_session *s, pid_t pid, struct md_analysis *a)
{
	if (!s->plugins_loaded) {
		md_plugins_load(&s->plugins);
		s->plugins_loaded = true;
		for (size_t i = 0; i < s->plugins.n; i++)
			s->counters.plugin_dlopens += s->plugins.items[i].plugin != NULL;
	}
	struct watched_process *wp = process_of(s, pid);
	struct md_analysis_resources res = {
		.plugins = &s->plugins,
		.symbols = wp ? &wp->symbols : NULL, /* out of memory: the attach reads its own */
		.counters = &s->symbol_counters,
		.cache = s->symbol_cache,
		.tracer = s->tracer,
	};
	struct md_error *err = md_analyze_live_with(pid, &s->opts, &res, a);
	s->counters.analyses++;
	size_t n_modules = 0;
	if (wp && wp->symbols)
		md_symbols_modules(wp->symbols, &n_modules);
	s->counters.modules = n_modules;
	return err;
}

void md_session_idle(struct md_session *s)
{
	md_live_release_lingering(s->tracer);
}

void md_session_get_counters(const struct md_session *s, struct md_session_counters *ret)
{
	*ret = s->counters;
	ret->symbol_tables = s->symbol_counters.symbol_tables;
	ret->dwarf = s->symbol_counters.dwarf;
	ret->modules_read = s->symbol_counters.modules_read;
	ret->modules_kept = s->symbol_counters.modules_kept;
	ret->cached_lookups = s->symbol_counters.cached;
}
